"""The Salesforce REST sandbox: OAuth client credentials, SOQL, sObjects, Collections.

Wire format as in VENDORS.md §1.1: ``/services/oauth2/token`` issues bearer
tokens; ``/services/data/vNN.N/...`` needs one and answers errors as a JSON
array ``[{"message", "errorCode", "fields"?}]``; every API answer carries
``Sforce-Limit-Info: api-usage=N/5000``. Records, tokens and sequences live in
the sandbox's :class:`~quote2cash.sandbox._base.DocStore`, so a restart on the
same file keeps them; query cursors are in memory only, as they expire anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from quote2cash.sandbox._base import FaultRule, Sandbox
from quote2cash.sandbox.salesforce import collections
from quote2cash.sandbox.salesforce.errors import SalesforceError
from quote2cash.sandbox.salesforce.org import Org
from quote2cash.sandbox.salesforce.query import CompiledQuery, attributes, compile_query
from quote2cash.sandbox.salesforce.schema import OBJECTS, ObjectSpec, is_custom, make_id
from quote2cash.sandbox.salesforce.soql import SoqlError
from quote2cash.sandbox.salesforce.webhooks import OutboundMessenger

API = "/services/data/{version}"
ORG_ID = "00DHp0000000001AAA"
_VERSION = re.compile(r"v\d+\.\d+")
_TOKEN_KIND = "sf_oauth_token"
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_MAX_CURSORS = 100
_FAULTS = {
    400: ("INVALID_INPUT", "The request could not be processed"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
}
_INVALID_SESSION = SalesforceError("INVALID_SESSION_ID", "Session expired or invalid", status=401)


@dataclass
class _Cursor:
    query: CompiledQuery
    ids: list[str]
    batch: int
    resource: str


class SalesforceSandbox(Sandbox):
    """A Salesforce org on loopback: the REST resources the hub uses, with faults.

    Python-side helpers (no HTTP) seed and inspect the org with the API's
    validation: :meth:`insert`, :meth:`insert_many`, :meth:`update`,
    :meth:`delete`, :meth:`records`, :meth:`get`.
    """

    vendor = "salesforce"
    #: The daily API allocation echoed in ``Sforce-Limit-Info`` (not enforced).
    api_limit = 5000

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        seed: int = 0,
        client_id: str = "q2c",
        client_secret: str = "sandbox-secret",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_usage = 0
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_seq = 0
        super().__init__(path, seed=seed)
        self.org = Org(self.store)
        self.messenger: OutboundMessenger | None = None

    # -- Python-side helpers ---------------------------------------------------------
    def insert(self, sobject: str, fields: dict[str, Any]) -> str:
        """Insert one record as the API would (validation, derived fields); returns its id."""
        return self.org.insert_many(sobject, [fields])[0]

    def insert_many(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        """Insert many records in one store transaction (all or none); returns their ids."""
        return self.org.insert_many(sobject, records)

    def update(self, sobject: str, id_: str, fields: dict[str, Any]) -> None:
        """Update one record as the API would."""
        self.org.update(sobject, id_, fields)

    def delete(self, sobject: str, id_: str) -> None:
        """Delete one record (to the recycle bin) and what cascades from it."""
        with self.store.lock:
            self.org.commit(self.org.plan_delete(sobject, id_))

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every live record of a type, in insertion order."""
        return [dict(d) for d in self.org.rows(self.org.spec(sobject).name)]

    def get(self, sobject: str, id_: str) -> dict[str, Any]:
        """A copy of one live record; raises KeyError if there is none."""
        try:
            return dict(self.org.live(self.org.spec(sobject).name, id_))
        except SalesforceError as exc:
            raise KeyError(f"{sobject} {id_}: {exc.message}") from None

    def register_webhook(self, url: str, secret: str, **options: Any) -> OutboundMessenger:
        """Send an outbound message to ``url`` for every deal that becomes closed-won with approved
        terms, signed with ``secret`` (see :mod:`.webhooks`); returns the messenger."""
        self.unregister_webhooks()
        self.messenger = OutboundMessenger(url, secret, ORG_ID, **options)
        self.org.listeners.append(self.messenger.observe)
        return self.messenger

    def unregister_webhooks(self) -> None:
        """Stop sending outbound messages."""
        messenger = getattr(self, "messenger", None)
        if messenger is not None:
            self.org.listeners.remove(messenger.observe)
            messenger.stop()
            self.messenger = None

    def stop(self) -> None:
        """Stop serving and sending outbound messages."""
        self.unregister_webhooks()
        super().stop()

    def issue_token(self) -> str:
        """A new valid access token, as the token endpoint would issue."""
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        issued = {"issued_at": int(time.time() * 1000), "client_id": self.client_id}
        self.store.put(_TOKEN_KIND, token, issued)
        return token

    def expire_tokens(self) -> int:
        """Invalidate every issued token (a session timeout); returns how many there were."""
        tokens = [token for token, _ in self.store.items(_TOKEN_KIND)]
        for token in tokens:
            self.store.delete(_TOKEN_KIND, token)
        return len(tokens)

    def fault_response(self, rule: FaultRule) -> Response:
        """An injected ``reject``/``error``: the rule's body, or a Salesforce error array."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        code, message = _FAULTS.get(rule.status, ("UNKNOWN_EXCEPTION", "An unexpected error occurred."))
        return JSONResponse([{"message": message, "errorCode": code}], rule.status)

    # -- routes ----------------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add the OAuth, query, sObject and Collections resources."""

        async def salesforce_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, SalesforceError)
            return JSONResponse(exc.body(), exc.status)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, StarletteHTTPException)
            if exc.status_code == 405:
                message = f"HTTP Method '{request.method}' not allowed"
                body = [{"message": message, "errorCode": "METHOD_NOT_ALLOWED"}]
            else:
                body = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
            return JSONResponse(body, exc.status_code)

        app.add_exception_handler(SalesforceError, salesforce_error)
        app.add_exception_handler(StarletteHTTPException, http_error)

        @app.middleware("http")
        async def session(request: Request, call_next: Any) -> Response:
            path = request.url.path
            if not path.startswith("/services/data/"):
                response: Response = await call_next(request)
                return response
            self.api_usage += 1
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            if not _VERSION.fullmatch(path.split("/")[3]):
                response = JSONResponse(
                    [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}], 404
                )
            elif not token or self.store.get(_TOKEN_KIND, token) is None:
                response = JSONResponse(_INVALID_SESSION.body(), 401)
            else:
                response = await call_next(request)
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.api_limit}"
            return response

        @app.post("/services/oauth2/token")
        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
            if form.get("grant_type") != "client_credentials":
                return JSONResponse(
                    {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400
                )
            if not (
                hmac.compare_digest(form.get("client_id", ""), self.client_id)
                and hmac.compare_digest(form.get("client_secret", ""), self.client_secret)
            ):
                return JSONResponse(
                    {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
                )
            base = str(request.base_url).rstrip("/")
            issued_at = str(int(time.time() * 1000))
            identity = f"{base}/id/{ORG_ID}/{self.org.default_user}"
            # Salesforce signs id + issued_at with the client secret so a client can check the answer.
            signed = (identity + issued_at).encode()
            digest = hmac.new(self.client_secret.encode(), signed, hashlib.sha256).digest()
            return JSONResponse(
                {
                    "access_token": self.issue_token(),
                    "instance_url": base,
                    "id": identity,
                    "token_type": "Bearer",
                    "issued_at": issued_at,
                    "signature": base64.b64encode(digest).decode(),
                    "scope": "api",
                }
            )

        @app.get("/services/data")
        async def versions() -> Response:
            return JSONResponse([{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}])

        @app.get(API + "/limits")
        async def limits(version: str) -> Response:
            remaining = self.api_limit - self.api_usage
            return JSONResponse({"DailyApiRequests": {"Max": self.api_limit, "Remaining": remaining}})

        for resource in ("query", "queryAll"):
            self._install_query(app, resource)
        self._install_sobjects(app)
        self._install_collections(app)

    # -- query -----------------------------------------------------------------------
    def _install_query(self, app: FastAPI, resource: str) -> None:
        deleted = resource == "queryAll"

        @app.get(f"{API}/{resource}", name=resource)
        async def query(version: str, request: Request) -> Response:
            text = request.query_params.get("q")
            if not text:
                raise SalesforceError("MALFORMED_QUERY", "A query string (q) must be provided")
            try:
                compiled = compile_query(text, self.org)
            except SoqlError as exc:
                raise SalesforceError(exc.code, exc.message) from None
            with self.store.lock:
                rows = self._rows(compiled, deleted=deleted)
            if compiled.is_count:
                return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
            cursor = _Cursor(compiled, [r["Id"] for r in rows], self._batch_size(request), resource)
            self._cursor_seq += 1
            return self._page(make_id("01g", self._cursor_seq), cursor, 0, version, cursor.batch)

        @app.get(f"{API}/{resource}/{{locator}}", name=f"{resource}More")
        async def query_more(version: str, locator: str, request: Request) -> Response:
            key, _, offset = locator.rpartition("-")
            cursor = self._cursors.get(key)
            if cursor is None or not offset.isdigit() or int(offset) > len(cursor.ids):
                raise SalesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
            self._cursors.move_to_end(key)
            batch = self._batch_size(request) if "sforce-query-options" in request.headers else cursor.batch
            return self._page(key, cursor, int(offset), version, batch)

    def _rows(self, compiled: CompiledQuery, *, deleted: bool) -> list[dict[str, Any]]:
        name = compiled.spec.name
        if compiled.ids is None:
            return compiled.run(self.org.rows(name, deleted=deleted))
        docs = [self.store.get(name, i) for i in dict.fromkeys(compiled.ids)]
        return compiled.run(d for d in docs if d is not None and (deleted or not d.get("IsDeleted")))

    @staticmethod
    def _batch_size(request: Request) -> int:
        match = _BATCH.search(request.headers.get("sforce-query-options", ""))
        return 2000 if match is None else min(max(int(match.group(1)), 200), 2000)

    def _page(self, key: str, cursor: _Cursor, offset: int, version: str, batch: int) -> Response:
        end = min(offset + batch, len(cursor.ids))
        name = cursor.query.spec.name
        records = [
            cursor.query.project(doc, version)
            for i in cursor.ids[offset:end]
            if (doc := self.store.get(name, i)) is not None
        ]
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": end >= len(cursor.ids)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/{cursor.resource}/{key}-{end}"
            self._cursors[key] = cursor
            self._cursors.move_to_end(key)
            while len(self._cursors) > _MAX_CURSORS:
                self._cursors.popitem(last=False)
        body["records"] = records
        return JSONResponse(body)

    # -- sObject rows ----------------------------------------------------------------
    def _install_sobjects(self, app: FastAPI) -> None:
        # The org is created after the routes; handlers read ``self.org`` when called.
        @app.get(API + "/sobjects/{sobject}/describe")
        async def describe(version: str, sobject: str) -> Response:
            return JSONResponse(self._describe(sobject))

        @app.post(API + "/sobjects/{sobject}")
        async def create(version: str, sobject: str, request: Request) -> Response:
            spec = self._writable(sobject)
            body = await _json(request)
            with self.store.lock:
                write = self.org.plan_insert(spec.name, self.org.clean(spec.name, body))
                self.org.commit([write])
            return JSONResponse({"id": write.id, "success": True, "errors": []}, 201)

        @app.get(API + "/sobjects/{sobject}/{id_}")
        async def read(version: str, sobject: str, id_: str, request: Request) -> Response:
            spec = self.org.spec(sobject)
            return self._record(spec.name, self.org.live(spec.name, id_), version, request)

        @app.patch(API + "/sobjects/{sobject}/{id_}")
        async def update(version: str, sobject: str, id_: str, request: Request) -> Response:
            spec = self._writable(sobject)
            body = await _json(request)
            with self.store.lock:
                self.org.commit([self.org.plan_update(spec.name, id_, self.org.clean(spec.name, body))])
            return Response(status_code=204)

        @app.delete(API + "/sobjects/{sobject}/{id_}")
        async def delete(version: str, sobject: str, id_: str) -> Response:
            spec = self._writable(sobject)
            with self.store.lock:
                self.org.commit(self.org.plan_delete(spec.name, id_))
            return Response(status_code=204)

        @app.get(API + "/sobjects/{sobject}/{field}/{value}")
        async def read_by_external_id(
            version: str, sobject: str, field: str, value: str, request: Request
        ) -> Response:
            spec = self.org.spec(sobject)
            name = collections.external_field(self.org, spec.name, field)
            ids = [value] if name == "Id" else self.org.find_ids(spec.name, name, value)
            if len(ids) > 1:
                return self._multiple(spec.name, ids, version)
            if not ids:
                raise SalesforceError("NOT_FOUND", "The requested resource does not exist", status=404)
            return self._record(spec.name, self.org.live(spec.name, ids[0]), version, request)

        @app.patch(API + "/sobjects/{sobject}/{field}/{value}")
        async def upsert(version: str, sobject: str, field: str, value: str, request: Request) -> Response:
            spec = self._writable(sobject)
            body = await _json(request)
            update_only = request.query_params.get("updateOnly", "").lower() == "true"
            with self.store.lock:
                name = collections.external_field(self.org, spec.name, field)
                try:
                    fields = self.org.clean(spec.name, body)
                    write = collections.plan_upsert(
                        self.org, spec.name, name, value, fields, update_only=update_only
                    )
                except collections.MultipleMatches as exc:
                    return self._multiple(spec.name, exc.ids, version)
                self.org.commit([write])
            return JSONResponse(
                {"id": write.id, "success": True, "errors": [], "created": write.created},
                201 if write.created else 200,
            )

    def _writable(self, sobject: str) -> ObjectSpec:
        spec = self.org.spec(sobject)
        if not spec.api_writable:
            raise SalesforceError(
                "INVALID_TYPE_FOR_OPERATION", f"entity type {spec.name} does not support this operation"
            )
        return spec

    @staticmethod
    def _multiple(sobject: str, ids: list[str], version: str) -> Response:
        return JSONResponse([f"/services/data/{version}/sobjects/{sobject}/{i}" for i in ids], 300)

    def _record(self, sobject: str, doc: dict[str, Any], version: str, request: Request) -> Response:
        spec = OBJECTS[sobject]
        wanted = request.query_params.get("fields")
        if wanted:
            names = []
            for raw in wanted.split(","):
                field = spec.field(raw.strip())
                if field is None:
                    raise SalesforceError(
                        "INVALID_FIELD", f"No such column '{raw.strip()}' on entity '{sobject}'"
                    )
                names.append(field.name)
        else:
            names = [*spec.fields, *(k for k in doc if k not in spec.fields)]
        body = {"attributes": attributes(sobject, doc["Id"], version), **{n: doc.get(n) for n in names}}
        return JSONResponse(body)

    def _describe(self, sobject: str) -> dict[str, Any]:
        spec = self.org.spec(sobject)
        fields = [
            {
                "name": f.name,
                "type": f.type,
                "createable": f.createable,
                "updateable": f.updateable,
                "nillable": not f.required,
                "referenceTo": [f.refers_to] if f.refers_to else [],
                "relationshipName": f.relationship,
                "custom": is_custom(f.name),
                "length": f.length or 0,
                "picklistValues": [{"value": v, "active": True} for v in sorted(f.picklist or ())],
            }
            for f in spec.fields.values()
        ]
        return {
            "name": spec.name,
            "label": spec.name,
            "keyPrefix": spec.prefix,
            "custom": False,
            "createable": spec.api_writable,
            "updateable": spec.api_writable,
            "queryable": True,
            "fields": fields,
        }

    # -- sObject Collections ---------------------------------------------------------
    def _install_collections(self, app: FastAPI) -> None:
        @app.post(API + "/composite/sobjects")
        async def create_many(version: str, request: Request) -> Response:
            return JSONResponse(collections.create(self.org, await _json(request)))

        @app.patch(API + "/composite/sobjects")
        async def update_many(version: str, request: Request) -> Response:
            return JSONResponse(collections.update(self.org, await _json(request)))

        @app.patch(API + "/composite/sobjects/{sobject}/{field}")
        async def upsert_many(version: str, sobject: str, field: str, request: Request) -> Response:
            return JSONResponse(collections.upsert(self.org, sobject, field, await _json(request)))


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise SalesforceError(
            "JSON_PARSER_ERROR", f"Unexpected character in request body: {raw[:40]!r}"
        ) from None
