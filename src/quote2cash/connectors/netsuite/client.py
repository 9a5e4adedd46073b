"""NetSuite SuiteTalk REST and SuiteQL client with token-based authentication.

Every request is signed in :meth:`NetSuiteClient.before_request`, so each
retry carries a fresh nonce and timestamp (NetSuite refuses a reused nonce).
Creates by ``POST`` are not idempotent: a timeout leaves them in doubt, and
the caller looks the record up by external id before trying again. Upserts
(``PUT .../eid:{externalId}``) are idempotent and retried freely.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from quote2cash.connectors._http import RetryPolicy, VendorClient, require
from quote2cash.connectors.netsuite.oauth1 import TbaCredentials, authorization_header
from quote2cash.errors import BusinessRuleError, HubError, VendorPayloadError

RECORD_PATH = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
MAX_PAGE = 1000


class NetSuiteClient(VendorClient):
    """One NetSuite account, reached over SuiteTalk REST with TBA credentials."""

    system = "netsuite"

    def __init__(
        self,
        base_url: str,
        credentials: TbaCredentials,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            headers={"Accept": "application/json"},
        )
        self.credentials = credentials

    def __enter__(self) -> NetSuiteClient:
        return self

    # -- hooks -----------------------------------------------------------------------
    def before_request(self, request: httpx.Request) -> None:
        """Sign the request (OAuth 1.0a, HMAC-SHA256) with a fresh nonce and timestamp."""
        request.headers["Authorization"] = authorization_header(
            request.method,
            str(request.url),
            self.credentials,
            nonce=secrets.token_hex(10),
            timestamp=int(time.time()),
        )

    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """NetSuite ``o:errorDetails`` -> :class:`BusinessRuleError` ``netsuite.{o:errorCode}``."""
        try:
            body = response.json()
        except ValueError:
            body = None
        details = body.get("o:errorDetails") if isinstance(body, dict) else None
        first = details[0] if isinstance(details, list) and details else None
        code = first.get("o:errorCode") if isinstance(first, dict) else None
        if not isinstance(first, dict) or not isinstance(code, str):
            return VendorPayloadError(
                f"netsuite answered HTTP {response.status_code} with an unreadable error body: "
                f"{response.text[:300]!r}",
                system=self.system,
                record=record,
                details={"status": response.status_code},
            )
        return BusinessRuleError(
            str(first.get("detail") or body.get("title") or code),
            code=f"netsuite.{code}",
            system=self.system,
            record=record,
            details={"path": first.get("o:errorPath"), "status": response.status_code},
        )

    # -- records ---------------------------------------------------------------------
    def get(self, type_: str, id_: str) -> dict[str, Any]:
        """One record, sublists expanded."""
        record = f"{type_}/{id_}"
        response = self.request(
            "GET", self._path(type_, id_), params={"expandSubResources": "true"}, record=record
        )
        return self._object(response, record)

    def get_by_external_id(self, type_: str, external_id: str) -> dict[str, Any] | None:
        """The record with this external id, or None if there is none."""
        record = f"{type_}/eid:{external_id}"
        try:
            response = self.request(
                "GET",
                self._path(type_, f"eid:{external_id}"),
                params={"expandSubResources": "true"},
                record=record,
            )
        except BusinessRuleError as exc:
            # Only "no such record" means absent; an unknown record type must still fail loudly.
            if exc.code == "netsuite.NONEXISTENT_ID":
                return None
            raise
        return self._object(response, record)

    def create(self, type_: str, body: dict[str, Any]) -> str:
        """Add a record (``POST``, not idempotent); returns the new internal id.

        A timeout raises ``TransientError`` with ``details["in_doubt"] = True``:
        look the record up (by external id) before creating it again.
        """
        response = self.request("POST", self._path(type_), json=body, record=type_)
        return self._location_id(response, type_)

    def upsert(self, type_: str, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the record with this external id (idempotent); returns its id."""
        record = f"{type_}/eid:{external_id}"
        response = self.request("PUT", self._path(type_, f"eid:{external_id}"), json=body, record=record)
        return self._location_id(response, type_)

    def update(self, type_: str, id_: str, body: dict[str, Any]) -> None:
        """Change fields of a record (``PATCH``); sublists sent replace the stored ones."""
        # Naming the sublists in ``replace`` makes the PATCH idempotent (NetSuite
        # would otherwise append the lines), so a retry cannot double them.
        sublists = sorted(k for k, v in body.items() if isinstance(v, dict) and "items" in v)
        params = {"replace": ",".join(sublists)} if sublists else None
        self.request("PATCH", self._path(type_, id_), json=body, params=params, record=f"{type_}/{id_}")

    def delete(self, type_: str, id_: str) -> None:
        """Delete a record."""
        self.request("DELETE", self._path(type_, id_), record=f"{type_}/{id_}")

    def list_ids(self, type_: str) -> Iterator[str]:
        """Every internal id of a record type, page by page."""
        offset = 0
        while True:
            response = self.request(
                "GET", self._path(type_), params={"limit": MAX_PAGE, "offset": offset}, record=type_
            )
            page = self._object(response, type_)
            items = self._items(page, type_)
            for item in items:
                yield str(require(item, "id", system=self.system, what=f"{type_} list item", record=type_))
            if not page.get("hasMore") or not items:
                return
            offset += len(items)

    def suiteql(self, q: str, *, page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Rows of a SuiteQL query (lower-case columns, values as text; ``links`` removed)."""
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}, not {page_size}")
        offset = 0
        while True:
            # A query changes nothing, so the POST is safe to retry.
            response = self.request(
                "POST",
                SUITEQL_PATH,
                json={"q": q},
                params={"limit": page_size, "offset": offset},
                headers={"Prefer": "transient"},
                idempotent=True,
                record="suiteql",
            )
            page = self._object(response, "suiteql")
            items = self._items(page, "suiteql")
            for item in items:
                if not isinstance(item, dict):
                    raise VendorPayloadError(
                        "netsuite SuiteQL answered a row that is not an object",
                        system=self.system,
                        record="suiteql",
                    )
                yield {k: v for k, v in item.items() if k != "links"}
            if not page.get("hasMore") or not items:
                return
            offset += len(items)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _path(type_: str, ref: str | None = None) -> str:
        path = f"{RECORD_PATH}/{quote(type_, safe='')}"
        return path if ref is None else f"{path}/{quote(ref, safe=':')}"

    def _object(self, response: httpx.Response, record: str) -> dict[str, Any]:
        body = self.json(response, record)
        if not isinstance(body, dict):
            raise VendorPayloadError(
                f"netsuite answered {response.request.method} {response.request.url.path} with "
                f"{type(body).__name__}, expected an object",
                system=self.system,
                record=record,
            )
        return body

    def _items(self, page: dict[str, Any], record: str) -> list[Any]:
        items = require(page, "items", system=self.system, what="collection", record=record)
        if not isinstance(items, list):
            raise VendorPayloadError(
                "netsuite answered a collection whose 'items' is not a list",
                system=self.system,
                record=record,
            )
        return items

    def _location_id(self, response: httpx.Response, type_: str) -> str:
        location = response.headers.get("Location", "")
        match = re.search(rf"{RECORD_PATH}/{re.escape(type_)}/(\d+)/?$", httpx.URL(location).path)
        if match is None:
            raise VendorPayloadError(
                f"netsuite answered {response.request.method} {type_} without a usable Location header "
                f"({location!r}); the new record's id is unknown",
                system=self.system,
                record=type_,
                details={"location": location, "status": response.status_code},
            )
        return match.group(1)


__all__ = ["NetSuiteClient", "TbaCredentials"]
