"""The Business Central sandbox: API v2.0 over OData v4, ``$batch``, and Entra ID client credentials.

API routes live under ``/v2.0/{tenant}/{environment}/api/v2.0/`` on the plain
HTTP server; the identity endpoints (``/{tenant}/oauth2/v2.0/token`` and the
OpenID discovery document) are served on a second, TLS, server because
``msal`` only accepts an ``https`` authority (see :mod:`.identity`). Both
servers serve the same app.

Every API request passes a gate first (outside the fault injector): the
environment must exist, the bearer token must be one this tenant issued and
not expired (401 ``Authentication_InvalidCredentials``), and the client must
be within its request budget (429 ``Application_TooManyRequests`` with
``Retry-After``; Business Central allows 6 000 requests per 5-minute sliding
window per service principal). A ``$batch`` answers each of its (at most 100)
requests separately; without ``Isolation: snapshot`` they are independent.
"""

from __future__ import annotations

import calendar
import json
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from quote2cash.sandbox._base import FaultRule, Sandbox
from quote2cash.sandbox.business_central.entities import Environment
from quote2cash.sandbox.business_central.errors import (
    BcError,
    bad_request,
    invalid_credentials,
    method_not_allowed,
    no_resource,
    too_many_requests,
)
from quote2cash.sandbox.business_central.identity import Directory, TlsFiles, TlsServer, make_tls_files
from quote2cash.sandbox.business_central.odata import compile_filter, order, parse_select
from quote2cash.sandbox.business_central.schema import COMPANIES, SETS, EntitySet

API = "api/v2.0"
MAX_BATCH = 100
# The identity host answers once per connection: a token is asked for once an hour, and a
# kept-alive TLS connection would hold the server open at shutdown.
_CLOSE = {"Connection": "close"}
#: Business Central's page size for API pages (``@odata.nextLink`` beyond it).
MAX_PAGE = 20000
_FAULT_CODES = {
    401: ("Authentication_InvalidCredentials", "The server has rejected the client credentials."),
    404: ("BadRequest_NotFound", "The record does not exist."),
    429: ("Application_TooManyRequests", "Too many requests reached."),
    500: ("Internal_ServerError", "An unexpected error occurred."),
    503: ("Internal_ServiceUnavailable", "The service is temporarily unavailable."),
}


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] | None = None


def _parse_segment(segment: str) -> tuple[str, str | None]:
    """``customers(3f..)`` -> ("customers", "3f.."); ``customers`` -> ("customers", None)."""
    if segment.endswith(")") and "(" in segment:
        name, _, key = segment[:-1].partition("(")
        key = key.strip()
        if key.startswith("id="):
            key = key[3:]
        return name, key.strip("'")
    return segment, None


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


class BusinessCentralSandbox(Sandbox):
    """One Business Central tenant and environment on loopback.

    Attributes:
        tenant: the Entra ID tenant (a GUID or domain) in the URLs and the authority.
        environment: the environment name (``production``, ``sandbox``).
        client_id / client_secret: the one app registration allowed to call the API.
        max_page: entities per page before ``@odata.nextLink``.
        rate_limit / rate_window: requests per sliding window (seconds) per client.
        directory: the identity side (tokens issued, their lifetime).
    """

    vendor = "business_central"

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        seed: int = 0,
        tenant: str = "3b5f6c1e-9a1d-4c7e-8d4b-2f6a1e0c9b7d",
        environment: str = "sandbox",
        client_id: str = "6f1c0e2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b",
        client_secret: str = "q2c-bc-secret",
        token_lifetime: float = 3599.0,
        max_page: int = MAX_PAGE,
        rate_limit: int = 6000,
        rate_window: float = 300.0,
        tls_folder: Path | str | None = None,
    ) -> None:
        self.tenant = tenant
        self.environment = environment
        self.client_id = client_id
        self.client_secret = client_secret
        self.max_page = max_page
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.rejections: Counter[str] = Counter()
        self._recent: dict[str, deque[float]] = {}
        self._tls_folder = Path(tls_folder) if tls_folder is not None else None
        self._tls: TlsFiles | None = None
        self._tls_server: TlsServer | None = None
        super().__init__(path, seed=seed)
        self.directory = Directory(self.store, tenant, {client_id: client_secret}, token_lifetime)
        self.env = Environment(self.store)

    # -- serving ----------------------------------------------------------------------
    def start(self, port: int = 0) -> Any:
        """Serve the API over HTTP and the identity endpoints over TLS (certificate made now)."""
        server = super().start(port)
        self._tls = make_tls_files(self._tls_folder)
        tls_server = TlsServer(self.app, self._tls)
        tls_server.start()
        self._tls_server = tls_server
        return server

    def stop(self) -> None:
        """Stop both servers (the store stays usable)."""
        if self._tls_server is not None:
            self._tls_server.stop()
            self._tls_server = None
        super().stop()

    @property
    def login_url(self) -> str:
        """``https://127.0.0.1:PORT``: the identity host (Entra ID's ``login.microsoftonline.com``)."""
        if self._tls_server is None:
            raise RuntimeError("the business_central sandbox is not running")
        return self._tls_server.url

    @property
    def authority(self) -> str:
        """The authority ``msal`` is given: ``https://127.0.0.1:PORT/{tenant}``."""
        return f"{self.login_url}/{self.tenant}"

    @property
    def ca_file(self) -> str:
        """Path of the PEM CA certificate that signs the identity server's certificate."""
        if self._tls is None:
            raise RuntimeError("the business_central sandbox is not running")
        return str(self._tls.ca_file)

    @property
    def api_url(self) -> str:
        """The API root: ``http://127.0.0.1:PORT/v2.0/{tenant}/{environment}/api/v2.0``."""
        return f"{self.url}/v2.0/{self.tenant}/{self.environment}/{API}"

    # -- routes -----------------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add the gate, the identity endpoints, the API and ``$batch``."""

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            parts = request.url.path.split("/")
            if len(parts) < 4 or parts[1] != "v2.0":
                response: Response = await call_next(request)
                return response
            refusal = self._admit(parts[2], parts[3], request.headers.get("authorization"))
            if refusal is not None:
                return refusal.response()
            response = await call_next(request)
            return response

        async def on_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, BcError)
            return exc.response()

        app.add_exception_handler(BcError, on_error)

        @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
        async def openid(tenant: str, request: Request) -> Response:
            if tenant != self.tenant:
                body = {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                }
                return JSONResponse(body, 400, headers=_CLOSE)
            base = str(request.base_url).rstrip("/")
            return JSONResponse(self.directory.openid_configuration(base), headers=_CLOSE)

        @app.post("/{tenant}/oauth2/v2.0/token")
        async def token(tenant: str, request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
            status, body = self.directory.token(tenant, form)
            return JSONResponse(body, status, headers={"Cache-Control": "no-store, no-cache", **_CLOSE})

        @app.api_route(
            "/v2.0/{tenant}/{environment}/api/v2.0/{rest:path}",
            methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
        )
        async def api(rest: str, request: Request) -> Response:
            root = f"{str(request.base_url).rstrip('/')}/v2.0/{self.tenant}/{self.environment}/{API}"
            raw = await request.body()
            if rest == "$batch":
                if request.method != "POST":
                    raise method_not_allowed(request.method, "$batch")
                answer = self._batch(root, _json(raw), request.headers.get("isolation"))
            else:
                query = dict(request.query_params)
                answer = self.dispatch(request.method, rest, query, dict(request.headers), raw, root)
            if answer.body is None:
                return Response(status_code=answer.status, headers=answer.headers)
            return JSONResponse(answer.body, answer.status, headers=answer.headers)

    def _admit(self, tenant: str, environment: str, authorization: str | None) -> BcError | None:
        client = self.directory.client_of(authorization, tenant)
        if client is None:
            self.rejections["auth"] += 1
            return invalid_credentials()
        if environment != self.environment:
            return BcError(404, "NoEnvironment", f"Environment '{environment}' does not exist.")
        now = time.monotonic()
        recent = self._recent.setdefault(client, deque())
        while recent and recent[0] <= now - self.rate_window:
            recent.popleft()
        if len(recent) >= self.rate_limit:
            self.rejections["throttled"] += 1
            return too_many_requests(len(recent) + 1, self.rate_limit, recent[0] + self.rate_window - now)
        recent.append(now)
        return None

    def fault_response(self, rule: FaultRule) -> Response:
        """The rule's body, or a Business Central error body for its status."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        code, message = _FAULT_CODES.get(rule.status, ("BadRequest", "The request was rejected."))
        return BcError(rule.status, code, message).response()

    # -- the API, shared by plain requests and $batch ---------------------------------
    def dispatch(
        self, method: str, rest: str, query: dict[str, str], headers: dict[str, str], raw: bytes, root: str
    ) -> _Answer:
        """Handle one API request (path relative to ``api/v2.0/``); BC errors become answers."""
        try:
            return self._dispatch(
                method.upper(), rest, query, {k.lower(): v for k, v in headers.items()}, raw, root
            )
        except BcError as exc:
            return _Answer(exc.status, exc.body(), exc.headers or None)

    def _dispatch(
        self, method: str, rest: str, query: dict[str, str], headers: dict[str, str], raw: bytes, root: str
    ) -> _Answer:
        segments = [unquote(s) for s in rest.strip("/").split("/") if s]
        if not segments:
            raise no_resource(rest)
        name, company_id = _parse_segment(segments[0])
        if name != COMPANIES.name:
            raise no_resource(segments[0])
        if len(segments) == 1:
            if method != "GET":
                raise method_not_allowed(method, COMPANIES.name)
            if company_id is None:
                docs = self.store.all(COMPANIES.name)
                return self._collection(COMPANIES, docs, query, root, rest, "companies")
            doc = self.env.company(company_id)
            return self._entity(COMPANIES, doc, query, root, "companies/$entity", 200)
        company = self.env.company(company_id or "")["id"]
        parent: str | None = None
        context = f"companies({company})"
        es: EntitySet | None = None
        key: str | None = None
        for i, segment in enumerate(segments[1:]):
            name, key_ = _parse_segment(segment)
            child = SETS.get(name)
            if child is None or (es is None and child.parent is not None and child.name != "dimensionValues"):
                raise no_resource(segment)
            if es is not None:
                if name not in es.children or key is None:
                    raise no_resource(segment)
                parent = self.env.get(es, company, parent, key)["id"]
                context += f"/{es.name}({parent})"
            if i < len(segments) - 2 and key_ is None:
                raise no_resource(segment)
            es, key = child, key_
        assert es is not None
        context += f"/{es.name}"
        if (
            method not in es.methods
            or (method == "POST" and key is not None)
            or (method in ("PATCH", "DELETE") and key is None)
        ):
            raise method_not_allowed(method, es.name)
        if es.name == "journalLines" and parent is None and method == "POST":
            raise method_not_allowed(method, es.name)
        if method == "GET" and key is None:
            docs = self.env.scope(es, company, parent)
            return self._collection(es, docs, query, root, rest, context)
        if method == "GET":
            assert key is not None
            return self._entity(
                es, self.env.get(es, company, parent, key), query, root, f"{context}/$entity", 200
            )
        if method == "POST":
            doc = self.env.create(es, company, parent, _json(raw))
            return self._entity(es, doc, {}, root, f"{context}/$entity", 201)
        assert key is not None
        if method == "PATCH":
            doc = self.env.update(es, company, parent, key, _json(raw), headers.get("if-match"))
            return self._entity(es, doc, {}, root, f"{context}/$entity", 200)
        self.env.delete(es, company, parent, key, headers.get("if-match"))
        return _Answer(204)

    def _entity(
        self, es: EntitySet, doc: dict[str, Any], query: dict[str, str], root: str, context: str, status: int
    ) -> _Answer:
        select = parse_select(query["$select"], es.fields, es.entity_type) if "$select" in query else None
        body = {
            "@odata.context": f"{root}/$metadata#{context}",
            **self.env.render(es, doc, select, self._expand(es, query)),
        }
        return _Answer(status, body, {"ETag": body["@odata.etag"]})

    @staticmethod
    def _expand(es: EntitySet, query: dict[str, str]) -> bool:
        wanted = query.get("$expand")
        if wanted is None:
            return False
        if es.name != "journalLines" or wanted.strip() != "dimensionSetLines":
            raise bad_request(
                f"Could not find a property named '{wanted}' on type 'Microsoft.NAV.{es.entity_type}'."
            )
        return True

    def _collection(
        self,
        es: EntitySet,
        docs: list[dict[str, Any]],
        query: dict[str, str],
        root: str,
        rest: str,
        context: str,
    ) -> _Answer:
        for option in query:
            if option.startswith("$") and option not in (
                "$filter",
                "$select",
                "$orderby",
                "$top",
                "$skip",
                "$skiptoken",
                "$expand",
                "$count",
            ):
                raise bad_request(f"The query parameter '{option}' is not supported.")
        if "$filter" in query:
            predicate = compile_filter(query["$filter"], es.fields, es.entity_type)
            docs = [d for d in docs if predicate(d)]
        if "$orderby" in query:
            docs = order(docs, query["$orderby"], es.fields, es.entity_type)
        skip, top = self._int(query, "$skip"), self._int(query, "$top")
        docs = docs[skip or 0 :]
        if top is not None:
            docs = docs[:top]
        select = parse_select(query["$select"], es.fields, es.entity_type) if "$select" in query else None
        expand = self._expand(es, query)
        start = self._int(query, "$skiptoken") or 0
        page = docs[start : start + self.max_page]
        body: dict[str, Any] = {"@odata.context": f"{root}/$metadata#{context}"}
        if query.get("$count") == "true":
            body["@odata.count"] = len(docs)
        body["value"] = [self.env.render(es, d, select, expand) for d in page]
        if start + self.max_page < len(docs):
            following = {**query, "$skiptoken": str(start + self.max_page)}
            body["@odata.nextLink"] = f"{root}/{rest}?{urlencode(following)}"
        return _Answer(200, body)

    @staticmethod
    def _int(query: dict[str, str], name: str) -> int | None:
        raw = query.get(name)
        if raw is None:
            return None
        if not raw.isdigit():
            raise bad_request(
                f"Invalid value '{raw}' for the query option '{name}'; it must be a non-negative integer."
            )
        return int(raw)

    def _batch(self, root: str, body: dict[str, Any], isolation: str | None) -> _Answer:
        requests = body.get("requests")
        if not isinstance(requests, list):
            raise bad_request("The batch request body must have a 'requests' array.")
        if len(requests) > MAX_BATCH:
            raise bad_request(
                f"The batch request contains {len(requests)} operations; the maximum is {MAX_BATCH}."
            )
        if isolation is not None and isolation.strip().lower() == "snapshot":
            raise bad_request(
                "Transactional batches (Isolation: snapshot) are not supported by this sandbox."
            )
        ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise bad_request("Every request of a batch needs a unique, non-empty 'id'.")
        responses = []
        for item in requests:
            method, url = str(item.get("method", "")).upper(), str(item.get("url", ""))
            parts = urlsplit(url)
            path = parts.path
            marker = f"/{API}/"
            if marker in path:
                path = path.split(marker, 1)[1]
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            raw = json.dumps(item["body"], default=_number).encode() if item.get("body") is not None else b""
            if method not in ("GET", "POST", "PATCH", "DELETE"):
                answer = _Answer(405, bad_request(f"The method '{method}' is not supported.").body())
            else:
                self.stats[f"{method} batch:{path.split('?')[0]}"] += 1
                answer = self.dispatch(
                    method, path.lstrip("/"), query, dict(item.get("headers") or {}), raw, root
                )
            out: dict[str, Any] = {"id": item["id"], "status": answer.status, "headers": answer.headers or {}}
            if answer.body is not None:
                out["body"] = answer.body
            responses.append(out)
        return _Answer(200, {"responses": responses})

    # -- seeding and inspection from Python ----------------------------------------------
    def add_company(self, name: str) -> str:
        """Create a company (legal entity); returns its id."""
        return self.env.add_company(name)

    def _seed(self, set_name: str, company: str, fields: dict[str, Any], parent: str | None = None) -> str:
        # The same validation as over HTTP, with read-only fields seeded afterwards.
        es = SETS[set_name]
        writable = {k: v for k, v in fields.items() if not es.fields[k].read_only}
        doc = self.env.create(
            es, company, parent, json.loads(json.dumps(writable, default=str), parse_float=Decimal)
        )
        extra = {k: v for k, v in fields.items() if es.fields[k].read_only}
        if extra:
            self.store.put(set_name, doc["id"], {**doc, **extra})
        return str(doc["id"])

    def add_currency(self, company: str, code: str, name: str | None = None) -> str:
        """A currency of the company (not its local currency, which BC leaves blank); returns its id."""
        return self._seed("currencies", company, {"code": code, "displayName": name or code, "symbol": code})

    def add_payment_terms(self, company: str, code: str, name: str, days: int) -> str:
        """Payment terms such as ``30 DAYS`` / ``Net 30 days``; returns the id."""
        return self._seed(
            "paymentTerms", company, {"code": code, "displayName": name, "dueDateCalculation": f"{days}D"}
        )

    def add_dimension(self, company: str, code: str, name: str) -> str:
        """A dimension (``DEPARTMENT``, ``AREA``); returns its id."""
        return self._seed("dimensions", company, {"code": code, "displayName": name})

    def add_dimension_value(self, company: str, dimension: str, code: str, name: str) -> str:
        """A value of a dimension (a department or cost centre); returns its id."""
        found = self.env.by_key("dimensions", company, "code", dimension)
        if found is None:
            raise LookupError(f"no dimension {dimension} in company {company}")
        doc = self.env.create(
            SETS["dimensionValues"], company, found["id"], {"code": code, "displayName": name}
        )
        self.store.put("dimensionValues", doc["id"], {**doc, "dimensionId": found["id"]})
        return str(doc["id"])

    def add_account(self, company: str, number: str, name: str, category: str = "Income") -> str:
        """A G/L account that accepts postings; returns its id."""
        return self._seed(
            "accounts",
            company,
            {
                "number": number,
                "displayName": name,
                "category": category,
                "accountType": "Posting",
                "directPosting": True,
            },
        )

    def add_period(self, company: str, year: int, month: int, closed: bool = False) -> str:
        """The monthly accounting period starting on the 1st; returns its id."""
        start = date(year, month, 1).isoformat()
        for doc in self.store.find("accountingPeriods", _company=company):
            if doc["startingDate"] == start:
                self.store.put(
                    "accountingPeriods", doc["id"], {**doc, "closed": closed, "dateLocked": closed}
                )
                return str(doc["id"])
        fields = {"startingDate": start, "name": calendar.month_name[month][:10], "newFiscalYear": month == 1}
        return self._seed("accountingPeriods", company, {**fields, "closed": closed, "dateLocked": closed})

    def close_period(self, company: str, year: int, month: int) -> None:
        """Close a month: journal lines dated in it are refused from now on."""
        self.add_period(company, year, month, closed=True)

    def records(self, set_name: str, company: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored entities of a set (every company, or one)."""
        docs = self.store.all(set_name) if company is None else self.store.find(set_name, _company=company)
        return [dict(d) for d in docs]

    def expire_tokens(self) -> int:
        """Expire every issued access token now; returns how many there were."""
        return self.directory.expire_tokens()

    @property
    def tokens_issued(self) -> int:
        """Access tokens issued since the sandbox was made."""
        return self.directory.issued


__all__ = ["API", "MAX_BATCH", "MAX_PAGE", "BusinessCentralSandbox"]
