"""The NetSuite sandbox: SuiteTalk REST records, SuiteQL, the batch RESTlet, TBA and the concurrency limit.

Every route under ``/services/rest/`` and the RESTlet pass a gate first (an
ASGI middleware outside the fault injector, so injected latency counts as time
in flight): the OAuth 1.0a signature is checked (401 ``INVALID_LOGIN``), then
the account-wide concurrency limit (429 ``CONCURRENCY_LIMIT_EXCEEDED``). The
RESTlet answers both in its own shape: 401 ``INVALID_LOGIN_ATTEMPT`` and 400
``SSS_REQUEST_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import calendar
import json
from collections import Counter, OrderedDict
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quote2cash.sandbox._base import FaultRule, Sandbox
from quote2cash.sandbox.netsuite.errors import INVALID_LOGIN_DETAIL, NsError, user_error
from quote2cash.sandbox.netsuite.oauth import TbaVerifier
from quote2cash.sandbox.netsuite.records import RECORD_PATH, RecordBook, not_found
from quote2cash.sandbox.netsuite.restlet import (
    RESTLET_PATH,
    invalid_login,
    invalid_script,
    request_limit_exceeded,
    restlet_error,
    run_batch,
)
from quote2cash.sandbox.netsuite.suiteql import SuiteQLError, execute, parse
from quote2cash.sandbox.netsuite.tables import TABLES, rows
from quote2cash.sandbox.netsuite.views import collection, render_record, render_sublist

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
MAX_PAGE = 1000
_RESOURCE_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=singular-resource"
_COLLECTION_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=collection"
_FAULT_CODES = {
    401: ("INVALID_LOGIN", INVALID_LOGIN_DETAIL),
    403: ("INSUFFICIENT_PERMISSION", "Permission Violation: the role lacks the permission for this request."),
    404: ("NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID."),
    429: ("CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. Request blocked."),
}
# Set by the gate for RESTlet requests, so injected faults answer in the RESTlet error shape.
_IN_RESTLET: ContextVar[bool] = ContextVar("netsuite_in_restlet", default=False)


def _url_as_sent(scope: Scope) -> str:
    """scheme://host:port/path?query exactly as on the wire (the OAuth base string needs it)."""
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return f"{scope['scheme']}://{host}{raw_path.decode('latin-1')}" + (
        f"?{query.decode('latin-1')}" if query else ""
    )


class _Gate:
    """Authentication and the account concurrency limit, ahead of everything else."""

    def __init__(self, app: ASGIApp, sandbox: NetSuiteSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        restlet = scope["path"] == RESTLET_PATH
        if not restlet and not scope["path"].startswith("/services/rest/"):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1") or None
        # The URL includes the query: for a RESTlet, script and deploy are signed too.
        reason = sandbox.verifier.verify(scope["method"], _url_as_sent(scope), header)
        if reason is not None:
            sandbox.rejections[f"auth: {reason}"] += 1
            refusal = (
                invalid_login() if restlet else NsError(401, "INVALID_LOGIN", INVALID_LOGIN_DETAIL).response()
            )
            await refusal(scope, receive, send)
            return
        # Single event loop: the check and the increment cannot interleave.
        if sandbox.in_flight >= sandbox.concurrency_limit:
            sandbox.rejections["concurrency"] += 1
            code, detail = _FAULT_CODES[429]
            limited = (
                request_limit_exceeded(sandbox.concurrency_limit)
                if restlet
                else NsError(429, code, detail).response()
            )
            await limited(scope, receive, send)
            return
        sandbox.in_flight += 1
        sandbox.peak_in_flight = max(sandbox.peak_in_flight, sandbox.in_flight)
        token = _IN_RESTLET.set(restlet)
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                sandbox.in_flight -= 1

        async def send_and_release(message: Message) -> None:
            # A request stops counting once its answer is complete, before the client can see it:
            # the client's next request must not find its own previous one still counted.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            _IN_RESTLET.reset(token)
            release()


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise NsError(
            400, "INVALID_CONTENT", "The request body is not valid JSON; it could not be parsed."
        ) from None
    if not isinstance(body, dict):
        raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    return body


def _int_param(request: Request, name: str, default: int, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    low = 1 if name == "limit" else 0
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise NsError(
            400,
            "INVALID_PARAMETER",
            f"Invalid '{name}' query parameter value {raw!r}; it must be an integer {bounds}.",
            query_param=name,
        )
    return int(raw)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class NetSuiteSandbox(Sandbox):
    """A NetSuite account on loopback: REST records, SuiteQL and token-based auth.

    The Python-side helpers (``add_subsidiary``, ``close_period``, ...) seed and
    change master data without HTTP; they raise :class:`NsError` on the same
    validation failures the REST API reports.
    """

    vendor = "netsuite"

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        seed: int = 0,
        account: str = "1234567_SB1",
        consumer_key: str = "q2c-ck",
        consumer_secret: str = "q2c-cs",
        token_id: str = "q2c-tid",
        token_secret: str = "q2c-ts",
        concurrency_limit: int = 15,
        restlet_script: str = "customscript_q2c_batch_upsert",
        restlet_deploy: str = "1",
    ) -> None:
        self.account = account
        self.concurrency_limit = concurrency_limit
        # The one RESTlet deployed in this account: the hub's batch upsert.
        self.restlet_script = restlet_script
        self.restlet_deploy = restlet_deploy
        self.verifier = TbaVerifier(
            realm=account,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            token_id=token_id,
            token_secret=token_secret,
        )
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rejections: Counter[str] = Counter()
        # SuiteQL pages of one query are served from one evaluation while nothing changes.
        self._query_cache: OrderedDict[str, tuple[int, list[dict[str, str]]]] = OrderedDict()
        super().__init__(path, seed=seed)
        self.book = RecordBook(self.store)

    # -- HTTP ------------------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add the gate, the record routes, SuiteQL and the batch RESTlet."""
        app.add_middleware(_Gate, sandbox=self)

        async def on_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, NsError)
            return exc.response()

        app.add_exception_handler(NsError, on_error)

        @app.post(RESTLET_PATH)
        async def restlet(request: Request) -> Response:
            params = request.query_params
            if (params.get("script"), params.get("deploy")) != (self.restlet_script, self.restlet_deploy):
                return invalid_script()
            raw = await request.body()
            # A batch is CPU work of ~10 ms; off the event loop, so other calls keep flowing.
            return await run_in_threadpool(run_batch, raw, self.book.upsert_many)

        @app.post(SUITEQL_PATH)
        async def suiteql(request: Request) -> Response:
            if "transient" not in request.headers.get("prefer", "").lower():
                detail = "SuiteQL requests need the header 'Prefer: transient'."
                raise NsError(400, "INVALID_HEADER", detail, header="Prefer")
            limit = _int_param(request, "limit", MAX_PAGE, MAX_PAGE)
            offset = _int_param(request, "offset", 0)
            query = (await _json_object(request)).get("q")
            if not isinstance(query, str) or not query.strip():
                raise NsError(400, "INVALID_PARAMETER", "The request body needs a query in 'q'.", path="q")
            rows = await run_in_threadpool(self._run_query, query)
            page = [{"links": [], **row} for row in rows[offset : offset + limit]]
            href = f"{_base(request)}{SUITEQL_PATH}"
            body = collection(page, total=len(rows), offset=offset, limit=limit, href=href)
            return JSONResponse(body, media_type=_COLLECTION_MEDIA_TYPE)

        @app.post(RECORD_PATH + "/{record_type}")
        async def create(record_type: str, request: Request) -> Response:
            self.book.record_type(record_type)
            id_ = self.book.create(record_type, await _json_object(request))
            location = f"{_base(request)}{RECORD_PATH}/{record_type}/{id_}"
            return Response(status_code=204, headers={"Location": location})

        @app.get(RECORD_PATH + "/{record_type}")
        async def list_records(record_type: str, request: Request) -> Response:
            self.book.record_type(record_type)
            limit = _int_param(request, "limit", MAX_PAGE, MAX_PAGE)
            offset = _int_param(request, "offset", 0)
            ids, total = self.book.page(record_type, limit, offset)
            href = f"{_base(request)}{RECORD_PATH}/{record_type}"
            items = [{"links": [{"rel": "self", "href": f"{href}/{i}"}], "id": i} for i in ids]
            body = collection(items, total=total, offset=offset, limit=limit, href=href)
            return JSONResponse(body, media_type=_COLLECTION_MEDIA_TYPE)

        @app.get(RECORD_PATH + "/{record_type}/{ref:path}")
        async def read(record_type: str, ref: str, request: Request) -> Response:
            self.book.record_type(record_type)
            sublist = ""
            if not ref.startswith("eid:"):  # an external id may itself contain '/'
                ref, _, sublist = ref.partition("/")
            id_ = self.book.id_of(record_type, ref)
            doc = self.book.get(record_type, id_) or {}
            base = _base(request)
            if sublist:
                value = doc.get(sublist)
                if not isinstance(value, dict) or not isinstance(value.get("items"), list):
                    raise not_found()
                href = f"{base}{RECORD_PATH}/{record_type}/{id_}/{sublist}"
                body = render_sublist(self.book, record_type, sublist, value, href, base, expand=True)
            else:
                expand = request.query_params.get("expandSubResources", "").lower() == "true"
                body = render_record(self.book, record_type, doc, base, expand=expand)
            return JSONResponse(body, media_type=_RESOURCE_MEDIA_TYPE)

        @app.patch(RECORD_PATH + "/{record_type}/{ref:path}")
        async def update(record_type: str, ref: str, request: Request) -> Response:
            self.book.record_type(record_type)
            id_ = self.book.id_of(record_type, ref)
            replace = {s for s in request.query_params.get("replace", "").split(",") if s}
            self.book.update(record_type, id_, await _json_object(request), replace)
            return Response(status_code=204)

        @app.put(RECORD_PATH + "/{record_type}/{ref:path}")
        async def upsert(record_type: str, ref: str, request: Request) -> Response:
            self.book.record_type(record_type)
            if not ref.startswith("eid:") or len(ref) == 4:
                raise user_error(
                    "PUT is the upsert operation and needs an external ID: "
                    f"{RECORD_PATH}/{record_type}/eid:{{externalId}}."
                )
            id_, _ = self.book.upsert(record_type, ref[4:], await _json_object(request))
            location = f"{_base(request)}{RECORD_PATH}/{record_type}/{id_}"
            return Response(status_code=204, headers={"Location": location})

        @app.delete(RECORD_PATH + "/{record_type}/{ref:path}")
        async def delete(record_type: str, ref: str) -> Response:
            self.book.record_type(record_type)
            self.book.delete(record_type, self.book.id_of(record_type, ref))
            return Response(status_code=204)

        @app.api_route("/services/rest/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def unknown(rest: str, request: Request) -> Response:
            raise NsError(404, "INVALID_URL", f"No REST resource at {request.method} /services/rest/{rest}.")

    def fault_response(self, rule: FaultRule) -> Response:
        """The rule's body, or a NetSuite error body for its status."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        status = rule.status
        default = (
            ("UNEXPECTED_ERROR", "An unexpected error occurred. Error ID: sandbox-injected-fault")
            if status >= 500
            else ("USER_ERROR", "The request was rejected.")
        )
        code, detail = _FAULT_CODES.get(status, default)
        if _IN_RESTLET.get():
            return restlet_error(status, code, detail)
        return NsError(status, code, detail).response()

    def _run_query(self, text: str) -> list[dict[str, str]]:
        version = self.book.version
        cached = self._query_cache.get(text)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            query = parse(text)
            if query.table not in TABLES:
                raise SuiteQLError(f"Record '{query.table}' was not found.")
            source = rows(
                self.book,
                query.table,
                None if query.star else query.columns,
                query.where,
                query.where_columns,
            )
            result = execute(query, source, filtered=True)
        except SuiteQLError as exc:
            detail = (
                "Invalid search query. Detailed unprocessed description follows. "
                f"Search error occurred: {exc}"
            )
            raise NsError(400, "INVALID_PARAMETER", detail, path="q") from None
        with self.store.lock:
            self._query_cache[text] = (version, result)
            while len(self._query_cache) > 16:
                self._query_cache.popitem(last=False)
        return result

    # -- Python-side helpers ---------------------------------------------------------
    def add_currency(self, symbol: str) -> str:
        """The id of the currency with this ISO symbol, created if missing."""
        with self.store.lock:
            for doc in self.store.all("currency"):
                if doc.get("symbol") == symbol:
                    return str(doc["id"])
            return self.book.create("currency", {"symbol": symbol, "name": symbol})

    def add_subsidiary(
        self, name: str, currency: str = "USD", country: str = "US", inactive: bool = False
    ) -> str:
        """Create a subsidiary (legal entity) with its base currency; returns its id."""
        body = {"name": name, "currency": {"id": self.add_currency(currency)}, "country": country}
        return self.book.create("subsidiary", {**body, "isInactive": inactive})

    def add_term(self, name: str, days: int) -> str:
        """Create payment terms such as ``Net 30``; returns the id."""
        return self.book.create("term", {"name": name, "daysUntilNetDue": days})

    def add_period(self, year: int, month: int, closed: bool = False) -> str:
        """The monthly accounting period (created if missing, closed as asked); returns its id."""
        with self.store.lock:
            existing = self.book.period_of(date(year, month, 1))
            if existing is not None:
                self.book.update("accountingperiod", str(existing["id"]), {"closed": closed}, None)
                return str(existing["id"])
            last = calendar.monthrange(year, month)[1]
            return self.book.create(
                "accountingperiod",
                {
                    "periodName": f"{calendar.month_abbr[month]} {year}",
                    "startDate": date(year, month, 1).isoformat(),
                    "endDate": date(year, month, last).isoformat(),
                    "closed": closed,
                },
            )

    def close_period(self, year: int, month: int) -> None:
        """Close a period: transactions dated in it are refused from now on."""
        self._set_closed(year, month, True)

    def reopen_period(self, year: int, month: int) -> None:
        """Reopen a closed period."""
        self._set_closed(year, month, False)

    def _set_closed(self, year: int, month: int, closed: bool) -> None:
        period = self.book.period_of(date(year, month, 1))
        if period is None:
            raise LookupError(f"no accounting period for {year}-{month:02d}")
        self.book.update("accountingperiod", str(period["id"]), {"closed": closed}, None)

    def add_department(self, name: str) -> str:
        """Create a department (cost centre); returns its id."""
        return self.book.create("department", {"name": name})

    def add_classification(self, name: str) -> str:
        """Create a class; returns its id."""
        return self.book.create("classification", {"name": name})

    def add_location(self, name: str) -> str:
        """Create a location; returns its id."""
        return self.book.create("location", {"name": name})

    def add_customer(self, fields: dict[str, Any]) -> str:
        """Create a customer from REST-shaped fields; returns its id."""
        # A JSON round-trip keeps the stored record exactly as if it came over HTTP.
        return self.book.create("customer", json.loads(json.dumps(fields, default=str)))

    def records(self, type_: str) -> list[dict[str, Any]]:
        """Copies of every stored record of a type (references as ``{"id"}``)."""
        self.book.record_type(type_)
        return [dict(doc) for doc in self.store.all(type_)]

    def get(self, type_: str, id_: str) -> dict[str, Any] | None:
        """A copy of one stored record, or None."""
        doc = self.book.get(type_, id_)
        return None if doc is None else dict(doc)

    def set_inactive(self, type_: str, id_: str, inactive: bool = True) -> None:
        """Mark a record (subsidiary, department, customer, ...) inactive or active again."""
        self.book.update(type_, id_, {"isInactive": inactive}, None)

    # -- planting discrepancies for reconciliation tests (no validation) -------------
    def duplicate_record(self, type_: str, id_: str, new_external_id: str) -> str:
        """Copy a record under a new id and external id (a posting made twice); returns the new id."""
        doc = self.book.get(type_, id_)
        if doc is None:
            raise LookupError(f"no {type_} record {id_}")
        copy = {k: v for k, v in doc.items() if k not in ("id", "tranId", "dateCreated", "lastModifiedDate")}
        return self.book.plant(type_, None, {**copy, "externalId": new_external_id})

    def set_field(self, type_: str, id_: str, field: str, value: Any) -> None:
        """Overwrite one field as stored (``None`` removes it), bypassing validation and period close."""
        doc = self.book.get(type_, id_)
        if doc is None:
            raise LookupError(f"no {type_} record {id_}")
        changed = {k: v for k, v in doc.items() if k != field}
        if value is not None:
            changed[field] = value
        self.book.plant(type_, id_, changed)

    def delete_record(self, type_: str, id_: str) -> None:
        """Remove a record even in a closed period (a posting lost on the ERP side)."""
        if self.book.get(type_, id_) is None:
            raise LookupError(f"no {type_} record {id_}")
        self.book.delete(type_, id_, force=True)


__all__ = ["MAX_PAGE", "RESTLET_PATH", "SUITEQL_PATH", "NetSuiteSandbox"]
