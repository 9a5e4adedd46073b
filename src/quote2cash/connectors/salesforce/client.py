"""Salesforce REST API client: OAuth client credentials, SOQL, sObjects, Collections.

The client gets a token lazily at ``{login_url}/services/oauth2/token`` and
talks to the ``instance_url`` the token answer names. A 401
``INVALID_SESSION_ID`` (expired session) re-authenticates once and repeats the
call; Salesforce checks the session before it does anything, so repeating even
a create is safe. Errors map to the hub's taxonomy:

- a Salesforce error array ``[{"message", "errorCode", "fields"}]`` →
  :class:`BusinessRuleError` with ``code="salesforce.<errorCode>"``;
- ``REQUEST_LIMIT_EXCEEDED`` (403) → :class:`TransientError` (retried);
- rejected client credentials → :class:`AuthError`;
- any other body → :class:`VendorPayloadError`.

Records come back as Salesforce sends them, ``attributes`` included (callers
that map them ignore it; it tells the type of polymorphic rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from quote2cash.connectors._http import Limiter, RetryPolicy, VendorClient, require
from quote2cash.connectors.salesforce.auth import TOKEN_PATH, SessionAuth
from quote2cash.connectors.salesforce.errors import from_vendor
from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    HubError,
    VendorPayloadError,
)

#: Records per sObject Collections call (a Salesforce limit).
COLLECTION_LIMIT = 200

# Salesforce's escape sequences in a quoted SOQL string, applied one character at a time.
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_string(value: str) -> str:
    """A text value as a quoted SOQL string literal, escaped by Salesforce's rules.

    Every value the connector puts into a SOQL query goes through this (ids
    through the adapter's ``soql_id``, which also refuses what is not an id):
    quotes, double quotes and backslashes are backslash-escaped, and so are
    newline, carriage return, tab, backspace and form feed. ``%`` and ``_``
    are not special outside LIKE and are left as they are.
    """
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one record of a Collections call.

    Attributes:
        id: the record id (None when a create or upsert failed).
        success: whether the record was written.
        created: for an upsert, whether it inserted (None for other calls).
        errors: Salesforce's ``[{"statusCode", "message", "fields"}]`` for this record.
    """

    id: str | None
    success: bool
    created: bool | None
    errors: list[dict[str, Any]]


class _SessionExpired(HubError):
    """A 401 INVALID_SESSION_ID: get a new token and repeat the call once."""

    code = "vendor.auth_failed"


class SalesforceClient(VendorClient):
    """A client of one Salesforce org's REST API."""

    system = "salesforce"

    def __init__(
        self,
        login_url: str,
        client_id: str,
        client_secret: str,
        *,
        api_version: str = "v62.0",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = SessionAuth()
        super().__init__(
            login_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            limiter=limiter,
            auth=self._session,
        )
        self.api_version = api_version
        self.instance_url: str | None = None
        self.token_requests = 0
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: str | None = None

    # -- session ---------------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a new access token by the client-credentials flow (raises AuthError if refused)."""
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            }
        ).encode()
        self.token_requests += 1
        response = VendorClient.request(
            self,
            "POST",
            TOKEN_PATH,
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            idempotent=True,
        )
        body = self.json(response)
        token = require(body, "access_token", system=self.system, what="token answer")
        instance = require(body, "instance_url", system=self.system, what="token answer")
        if not isinstance(token, str) or not isinstance(instance, str):
            raise VendorPayloadError("salesforce token answer has non-text fields", system=self.system)
        self._token, self.instance_url = token, instance.rstrip("/")
        self._session.token = token

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool | None = None,
        record: str | None = None,
    ) -> httpx.Response:
        """Send an API call; ``url`` is a path on the instance (``/services/data/...``)."""
        if self._token is None:
            self.authenticate()
        for attempt in (1, 2):
            try:
                return VendorClient.request(
                    self,
                    method,
                    f"{self.instance_url}{url}",
                    json=json,
                    params=params,
                    headers=headers,
                    content=content,
                    idempotent=idempotent,
                    record=record,
                )
            except _SessionExpired as exc:
                if attempt == 2:
                    raise AuthError(
                        "salesforce rejected a freshly issued session token; check the connected "
                        "app's policies for this integration user",
                        code="vendor.auth_failed",
                        system=self.system,
                        record=record,
                    ) from exc
                self.authenticate()
        raise AssertionError("unreachable")  # pragma: no cover

    def _api(self, path: str) -> str:
        return f"/services/data/{self.api_version}{path}"

    # -- errors ----------------------------------------------------------------------
    def is_auth_failure(self, response: httpx.Response) -> bool:
        """A 401 is a bad credential unless it says the session expired (then we re-authenticate)."""
        return response.status_code == 401 and _error_code(response) != "INVALID_SESSION_ID"

    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """Map a Salesforce error answer to the hub's error taxonomy."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            # OAuth errors come from the token endpoint: the credentials are wrong.
            return AuthError(
                f"salesforce refused the client credentials ({body['error']}: "
                f"{body.get('error_description', '')}); check the client id and secret",
                code="vendor.auth_failed",
                system=self.system,
                record=record,
                details={"status": status, "error": body["error"]},
            )
        errors = _error_array(body)
        if errors is None:
            return VendorPayloadError(
                f"salesforce answered HTTP {status} with a body that is not a Salesforce error array: "
                f"{response.text[:200]!r}",
                system=self.system,
                record=record,
                details={"status": status, "body": response.text[:2000]},
            )
        first = errors[0]
        code = first["errorCode"]
        details: dict[str, Any] = {"fields": list(first.get("fields") or []), "status": status}
        if len(errors) > 1:
            details["errors"] = errors
        if status == 401 and code == "INVALID_SESSION_ID":
            return _SessionExpired(first["message"], system=self.system, record=record)
        return from_vendor(status, code, first["message"], record, details)

    # -- queries ---------------------------------------------------------------------
    def query(
        self, soql: str, *, batch_size: int | None = None, include_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every record a SOQL query returns, following ``nextRecordsUrl`` lazily.

        ``batch_size`` (200..2000) asks for smaller pages; ``include_deleted``
        uses ``queryAll`` so deleted records come back too. Records keep their
        ``attributes`` member.
        """
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        resource = "/queryAll" if include_deleted else "/query"
        response = self.request("GET", self._api(resource), params={"q": soql}, headers=headers)
        while True:
            body = self.json(response)
            records = require(body, "records", system=self.system, what="query answer")
            if not isinstance(records, list):
                raise VendorPayloadError("salesforce query answer has non-list records", system=self.system)
            yield from records
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            response = self.request("GET", str(next_url), headers=headers)

    # -- single records --------------------------------------------------------------
    def get(self, sobject: str, id_: str) -> dict[str, Any]:
        """One record by id, every field."""
        record = f"{sobject}/{id_}"
        body = self.json(self.request("GET", self._api(f"/sobjects/{sobject}/{id_}"), record=record), record)
        if not isinstance(body, dict):
            raise VendorPayloadError(
                "salesforce answered a record that is not an object", system=self.system, record=record
            )
        return body

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Insert one record; returns its id. Not idempotent: a timeout is in doubt."""
        response = self.request("POST", self._api(f"/sobjects/{sobject}"), json=fields, record=sobject)
        return self._id(self.json(response, sobject), sobject)

    def update(self, sobject: str, id_: str, fields: dict[str, Any]) -> None:
        """Update fields of one record."""
        self.request("PATCH", self._api(f"/sobjects/{sobject}/{id_}"), json=fields, record=f"{sobject}/{id_}")

    def delete(self, sobject: str, id_: str) -> None:
        """Delete one record (to the recycle bin)."""
        self.request("DELETE", self._api(f"/sobjects/{sobject}/{id_}"), record=f"{sobject}/{id_}")

    def upsert(
        self, sobject: str, ext_field: str, ext_value: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        """Insert or update the record whose ``ext_field`` is ``ext_value``; returns (id, created).

        Idempotent, so retried after a timeout. Raises ``BusinessRuleError``
        ``salesforce.MULTIPLE_MATCHES`` when the value matches several records.
        """
        record = f"{sobject}.{ext_field}={ext_value}"
        path = self._api(f"/sobjects/{sobject}/{ext_field}/{quote(ext_value, safe='')}")
        response = self.request("PATCH", path, json=fields, record=record)
        body = self.json(response, record)
        if response.status_code == 300:
            urls = [str(u) for u in body] if isinstance(body, list) else []
            ids = [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]
            raise BusinessRuleError(
                f"{sobject} {ext_field} = '{ext_value}' matches {len(ids)} records ({', '.join(ids)}); "
                "merge the duplicates in Salesforce or clear the external id on all but one",
                code="vendor.ambiguous_match",
                system=self.system,
                record=record,
                details={"ids": ids, "records": urls, "status": 300, "vendor_code": "MULTIPLE_MATCHES"},
            )
        created = body.get("created") if isinstance(body, dict) else None
        if not isinstance(created, bool):
            created = response.status_code == 201
        return self._id(body, record), created

    def _id(self, body: Any, record: str) -> str:
        id_ = require(body, "id", system=self.system, what="write answer", record=record)
        if not isinstance(id_, str):
            raise VendorPayloadError("salesforce answered a non-text id", system=self.system, record=record)
        return id_

    # -- collections -----------------------------------------------------------------
    def upsert_many(
        self, sobject: str, ext_field: str, records: list[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[ItemResult]:
        """Upsert records by external id, 200 a call; one result per record, in order.

        ``all_or_none`` makes Salesforce roll a call back if one record fails; it
        holds within one call only, so more than 200 records raise ValueError.
        """
        self._check_all_or_none(all_or_none, records)
        path = self._api(f"/composite/sobjects/{sobject}/{ext_field}")
        return self._collection("PATCH", path, sobject, records, all_or_none, upsert=True)

    def update_many(
        self, sobject: str, records: list[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[ItemResult]:
        """Update records by their ``Id``, 200 a call; one result per record, in order."""
        self._check_all_or_none(all_or_none, records)
        return self._collection("PATCH", self._api("/composite/sobjects"), sobject, records, all_or_none)

    @staticmethod
    def _check_all_or_none(all_or_none: bool, records: list[dict[str, Any]]) -> None:
        if all_or_none and len(records) > COLLECTION_LIMIT:
            raise ValueError(
                f"all_or_none covers one call of at most {COLLECTION_LIMIT} records; "
                f"got {len(records)}: split them yourself or drop all_or_none"
            )

    def _collection(
        self,
        method: str,
        path: str,
        sobject: str,
        records: list[dict[str, Any]],
        all_or_none: bool,
        *,
        upsert: bool = False,
    ) -> list[ItemResult]:
        results: list[ItemResult] = []
        for start in range(0, len(records), COLLECTION_LIMIT):
            batch = records[start : start + COLLECTION_LIMIT]
            chunk = [{"attributes": {"type": sobject}, **r} for r in batch]
            response = self.request(
                method, path, json={"allOrNone": all_or_none, "records": chunk}, record=sobject
            )
            body = self.json(response, sobject)
            if not isinstance(body, list) or len(body) != len(chunk):
                raise VendorPayloadError(
                    f"salesforce answered {len(chunk)} records with {body!r:.200}",
                    system=self.system,
                    record=sobject,
                )
            results.extend(_item(entry, upsert, sobject) for entry in body)
        return results


def _item(entry: Any, upsert: bool, sobject: str) -> ItemResult:
    if not isinstance(entry, dict) or not isinstance(entry.get("success"), bool):
        raise VendorPayloadError(
            f"salesforce collection result is malformed: {entry!r:.200}", system="salesforce", record=sobject
        )
    errors = entry.get("errors") or []
    created = entry.get("created") if upsert else None
    return ItemResult(
        id=entry.get("id"),
        success=entry["success"],
        created=created if isinstance(created, bool) else None,
        errors=[e for e in errors if isinstance(e, dict)],
    )


def _error_array(body: Any) -> list[dict[str, Any]] | None:
    """The body as Salesforce's error array, or None if it is not one."""
    if not isinstance(body, list) or not body:
        return None
    if all(isinstance(e, dict) and isinstance(e.get("errorCode"), str) and "message" in e for e in body):
        return body
    return None


def _error_code(response: httpx.Response) -> str | None:
    try:
        errors = _error_array(response.json())
    except ValueError:
        return None
    return errors[0]["errorCode"] if errors else None
