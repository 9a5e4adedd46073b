"""NetSuite SuiteTalk REST and SuiteQL client with token-based authentication.

Every request is signed by :class:`~quote2cash.connectors.netsuite.auth.TokenAuth`
as httpx sends it, so each retry carries a fresh nonce and timestamp (NetSuite
refuses a reused nonce).
Creates by ``POST`` are not idempotent: a timeout leaves them in doubt, and
the caller looks the record up by external id before trying again. Upserts
(``PUT .../eid:{externalId}``) are idempotent and retried freely, and so are
batches sent to the hub's batch-upsert RESTlet (:meth:`NetSuiteClient.batch_upsert`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from quote2cash.connectors._http import Limiter, RetryPolicy, VendorClient, require
from quote2cash.connectors.netsuite.auth import TbaCredentials, TokenAuth
from quote2cash.connectors.netsuite.batch import (
    BATCH_DEPLOY,
    BATCH_SCRIPT,
    MAX_BATCH,
    RESTLET_PATH,
    BatchResult,
    encode_batch,
    parse_results,
)
from quote2cash.connectors.netsuite.errors import from_vendor
from quote2cash.errors import HubError, NotFoundError, VendorPayloadError

RECORD_PATH = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
MAX_PAGE = 1000


def suiteql_string(value: str) -> str:
    """A text value as a quoted SuiteQL string literal.

    SuiteQL over REST has no bind parameters, so every value the connector
    puts into a query goes through this: a single quote is doubled (SQL's
    rule; a backslash is an ordinary character in SuiteQL). A NUL character,
    which no NetSuite field holds, is refused rather than sent.
    """
    if "\x00" in value:
        raise ValueError("refusing to put a NUL character into a SuiteQL query")
    return "'" + value.replace("'", "''") + "'"


def restlet_base_url(account: str) -> str:
    """The RESTlet domain of an account: ``https://1234567-sb1.restlets.api.netsuite.com``."""
    return f"https://{account.lower().replace('_', '-')}.restlets.api.netsuite.com"


class NetSuiteClient(VendorClient):
    """One NetSuite account, reached over SuiteTalk REST with TBA credentials.

    ``restlet_url`` is the base of the account's RESTlet domain (NetSuite serves
    RESTlets on ``{account}.restlets.api.netsuite.com``, see
    :func:`restlet_base_url`); it defaults to ``base_url``, as in the sandbox.
    """

    system = "netsuite"

    def __init__(
        self,
        base_url: str,
        credentials: TbaCredentials,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        restlet_url: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            limiter=limiter,
            sleep=sleep,
            auth=TokenAuth(credentials),
            headers={"Accept": "application/json"},
        )
        self.credentials = credentials
        self.restlet_url = (restlet_url or base_url).rstrip("/") + RESTLET_PATH

    def __enter__(self) -> NetSuiteClient:
        return self

    # -- hooks -----------------------------------------------------------------------
    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """NetSuite ``o:errorDetails`` or a RESTlet ``error`` -> ``netsuite.{code}`` hub error.

        A RESTlet over the account's concurrency limit answers 400
        ``SSS_REQUEST_LIMIT_EXCEEDED`` where REST answers 429; both are transient.
        """
        try:
            body = response.json()
        except ValueError:
            body = None
        restlet = body.get("error") if isinstance(body, dict) else None
        if isinstance(restlet, dict) and isinstance(restlet.get("code"), str):
            return self._restlet_error(response.status_code, restlet, record)
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
        return from_vendor(
            response.status_code,
            code,
            str(first.get("detail") or body.get("title") or code),
            record,
            {"path": first.get("o:errorPath")},
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
        except NotFoundError as exc:
            # Only "no such record" means absent; an unknown record type must still fail loudly.
            if exc.details.get("vendor_code") == "NONEXISTENT_ID":
                return None
            raise
        return self._object(response, record)

    def create(self, type_: str, body: dict[str, Any]) -> str:
        """Add a record (``POST``, not idempotent); returns the new internal id.

        A timeout raises :class:`InDoubtError`: look the record up (by external
        id) before creating it again.
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

    # -- batch RESTlet ----------------------------------------------------------------
    def batch_upsert(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        script: str = BATCH_SCRIPT,
        deploy: str = BATCH_DEPLOY,
        chunk: int = MAX_BATCH,
    ) -> list[BatchResult]:
        """Upsert records by external id through the batch RESTlet; results in input order.

        Each record is ``{"type": "journalentry" | "timebill" | "expensereport",
        "externalId": ..., "fields": {...}}`` (``Decimal`` values are sent as
        text). One HTTP call per ``chunk`` records (at most 200); each call is
        an idempotent upsert and is retried like a ``PUT``, including after a
        timeout. A refused record is a result with ``success=False``; a call
        refused as a whole raises (``TransientError`` for the concurrency
        limit, retried first; ``BusinessRuleError``/``VendorPayloadError``
        otherwise) with ``details["records_done"]`` = records applied by
        earlier calls.
        """
        if not 1 <= chunk <= MAX_BATCH:
            raise ValueError(f"chunk must be between 1 and {MAX_BATCH}, not {chunk}")
        record = f"restlet:{script}"
        results: list[BatchResult] = []
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            try:
                response = self.request(
                    "POST",
                    self.restlet_url,
                    params={"script": script, "deploy": deploy},
                    content=encode_batch(part),
                    headers={"Content-Type": "application/json"},
                    idempotent=True,
                    record=record,
                )
                results.extend(parse_results(self.json(response, record), part, record))
            except HubError as exc:
                exc.details.setdefault("records_done", start)
                raise
        return results

    def _restlet_error(self, status: int, error: dict[str, Any], record: str | None) -> HubError:
        code = str(error["code"])
        message = str(error.get("message") or code)
        return from_vendor(status, code, message, record)

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


__all__ = ["BatchResult", "NetSuiteClient", "TbaCredentials", "restlet_base_url"]
