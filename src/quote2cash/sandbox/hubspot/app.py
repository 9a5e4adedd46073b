"""The HubSpot CRM v3 sandbox: objects, properties, pipelines, search,
batches, associations v4, private-app auth, rate limits and signed webhooks.

Wire format as in VENDORS.md §1.3. Every ``/crm`` call needs
``Authorization: Bearer <private app token>`` (else 401 with HubSpot's body),
counts against a burst limit per interval and a daily limit (429 with
``RATE_LIMIT`` once spent) and answers the ``X-HubSpot-RateLimit-*`` headers.
Records, property definitions, pipelines, associations and pending webhook
deliveries live in the sandbox's :class:`~quote2cash.sandbox._base.DocStore`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from quote2cash.sandbox._base import FaultRule, Sandbox
from quote2cash.sandbox.hubspot import associations, objects
from quote2cash.sandbox.hubspot.errors import HubSpotError, correlation_id, validation
from quote2cash.sandbox.hubspot.portal import Portal
from quote2cash.sandbox.hubspot.schema import object_type
from quote2cash.sandbox.hubspot.search import search
from quote2cash.sandbox.hubspot.webhooks import DEFAULT_SUBSCRIPTIONS, Subscription, WebhookSender

V3 = "/crm/v3/objects/{object_type}"
V4 = "/crm/v4/associations/{from_type}/{to_type}"
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITS",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


class HubSpotSandbox(Sandbox):
    """A HubSpot portal on loopback, with the API's validation and limits.

    Attributes:
        tokens: private-app access tokens the portal accepts.
        rate_max: requests allowed per ``rate_interval_ms`` (HubSpot: 100–190 per 10 s by tier).
        daily_max: requests allowed per day.
        search_cap: results one search query can reach (HubSpot: 10 000).
        clock: epoch milliseconds for record stamps (tests freeze it to plant equal stamps).
        webhooks: the webhook sender (``webhooks.url`` is the app's target URL).
    """

    vendor = "hubspot"

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        seed: int = 0,
        tokens: tuple[str, ...] = ("pat-na1-q2c-sandbox",),
        rate_max: int = 100,
        rate_interval_ms: int = 10_000,
        daily_max: int = 500_000,
        search_cap: int = 10_000,
        client_secret: str = "hubspot-sandbox-client-secret",
        app_id: int = 2_468_001,
        portal_id: int = 62_515,
        webhook_url: str | None = None,
        subscriptions: tuple[Subscription, ...] = DEFAULT_SUBSCRIPTIONS,
        webhook_retry_seconds: float = 1.0,
        webhook_max_attempts: int = 10,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.tokens = set(tokens)
        self.rate_max = rate_max
        self.rate_interval_ms = rate_interval_ms
        self.daily_max = daily_max
        self.search_cap = search_cap
        self.portal_id = portal_id
        self.clock: Callable[[], int] = clock or _now_ms
        self._window_start = 0
        self._window_used = 0
        self._daily_used = 0
        self._limit_lock = threading.Lock()
        super().__init__(path, seed=seed)
        self.portal = Portal(self.store, lambda: self.clock())
        self.webhooks = WebhookSender(
            self.store,
            lambda: self.clock(),
            client_secret=client_secret,
            app_id=app_id,
            portal_id=portal_id,
            subscriptions=subscriptions,
            retry_seconds=webhook_retry_seconds,
            max_attempts=webhook_max_attempts,
        )
        self.webhooks.url = webhook_url
        self.portal.on_change = self.webhooks.on_change

    # -- Python-side helpers ---------------------------------------------------------
    def create(self, object_type_: str, properties: dict[str, Any], **links: str | list[str]) -> str:
        """Create a record as the API would (validation, stamps, webhooks); returns its id.

        Keyword arguments associate it with the default type: ``company="10001"``,
        ``deal="30001"`` (a list for several).
        """
        type_ = object_type(object_type_)
        with self.store.lock:
            doc = self.portal.create(type_.name, self.portal.clean(type_.name, properties, None, None))
            for to, ids in links.items():
                for to_id in [ids] if isinstance(ids, str) else ids:
                    self.portal.associate(type_.name, doc["id"], object_type(to).name, to_id)
        return str(doc["id"])

    def update(self, object_type_: str, id_: str, properties: dict[str, Any]) -> None:
        """Update a record as the API would."""
        type_ = object_type(object_type_)
        with self.store.lock:
            current = self.portal.live(type_.name, id_)
            self.portal.update(
                type_.name, id_, self.portal.clean(type_.name, properties, current["properties"], id_)
            )

    def get(self, object_type_: str, id_: str) -> dict[str, str]:
        """A copy of a live record's properties; KeyError if there is none."""
        try:
            return dict(self.portal.live(object_type(object_type_).name, id_)["properties"])
        except HubSpotError as exc:
            raise KeyError(f"{object_type_} {id_}: {exc.message}") from None

    def records(self, object_type_: str) -> list[dict[str, str]]:
        """Copies of the properties of every live record of a type, in creation order."""
        return [dict(d["properties"]) for d in self.portal.rows(object_type(object_type_).name)]

    def define_property(self, object_type_: str, definition: dict[str, Any]) -> None:
        """Define a custom property (as ``POST /crm/v3/properties/{objectType}``)."""
        self.portal.create_property(object_type(object_type_).name, definition)

    def property_names(self, object_type_: str) -> list[str]:
        """The names of every property of a type."""
        return list(self.portal.properties(object_type(object_type_).name))

    def start(self, port: int = 0) -> Any:
        """Serve on loopback and start delivering webhooks."""
        server = super().start(port)
        self.webhooks.start()
        return server

    def stop(self) -> None:
        """Stop serving and delivering."""
        self.webhooks.stop()
        super().stop()

    def fault_response(self, rule: FaultRule) -> Response:
        """An injected ``reject``/``error``: the rule's body, or HubSpot's error body."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        category = _CATEGORIES.get(rule.status, "INTERNAL_ERROR")
        return JSONResponse(
            HubSpotError(rule.status, category, "internal error" if rule.status >= 500 else category).body(),
            rule.status,
        )

    # -- limits ----------------------------------------------------------------------
    def _spend(self) -> tuple[bool, dict[str, str]]:
        """Count one request; (allowed, rate-limit headers)."""
        with self._limit_lock:
            now = _now_ms()
            if now - self._window_start >= self.rate_interval_ms:
                self._window_start, self._window_used = now, 0
            allowed = self._window_used < self.rate_max and self._daily_used < self.daily_max
            if allowed:
                self._window_used += 1
                self._daily_used += 1
            seconds = max(self.rate_interval_ms // 1000, 1)
            headers = {
                "X-HubSpot-RateLimit-Daily": str(self.daily_max),
                "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily_max - self._daily_used),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
                "X-HubSpot-RateLimit-Max": str(self.rate_max),
                "X-HubSpot-RateLimit-Remaining": str(self.rate_max - self._window_used),
                "X-HubSpot-RateLimit-Secondly": str(self.rate_max // seconds),
                "X-HubSpot-RateLimit-Secondly-Remaining": str((self.rate_max - self._window_used) // seconds),
            }
            return allowed, headers

    def _rate_limited(self, headers: dict[str, str]) -> Response:
        daily = headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
        policy = "DAILY" if daily else "TEN_SECONDLY_ROLLING"
        body = {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "category": "RATE_LIMITS",
            "policyName": policy,
            "errors": [{"message": f"{policy.lower()} limit reached", "code": "RATE_LIMIT"}],
        }
        return JSONResponse(body, 429, headers=headers)

    # -- routes ----------------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add the CRM resources, auth and limits."""

        async def hubspot_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HubSpotError)
            return JSONResponse(exc.body(), exc.status, headers=exc.headers)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, StarletteHTTPException)
            category = "VALIDATION_ERROR" if exc.status_code == 405 else "OBJECT_NOT_FOUND"
            message = f"{request.method} {request.url.path} is not a HubSpot API resource"
            return JSONResponse(HubSpotError(exc.status_code, category, message).body(), exc.status_code)

        app.add_exception_handler(HubSpotError, hubspot_error)
        app.add_exception_handler(StarletteHTTPException, http_error)

        @app.middleware("http")
        async def auth_and_limits(request: Request, call_next: Any) -> Response:
            if not request.url.path.startswith("/crm/"):
                response: Response = await call_next(request)
                return response
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            if token not in self.tokens:
                message = (
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                    "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
                    if not token
                    else "The access token provided is not valid for this portal."
                )
                return JSONResponse(HubSpotError(401, "INVALID_AUTHENTICATION", message).body(), 401)
            allowed, headers = self._spend()
            if not allowed:
                return self._rate_limited(headers)
            response = await call_next(request)
            response.headers.update(headers)
            return response

        self._install_properties(app)
        self._install_objects(app)
        self._install_associations(app)

    def _install_properties(self, app: FastAPI) -> None:
        @app.get("/crm/v3/properties/{object_type}")
        async def all_properties(object_type: str) -> Response:
            type_ = _type(object_type)
            return JSONResponse({"results": [p.wire() for p in self.portal.properties(type_.name).values()]})

        @app.get("/crm/v3/properties/{object_type}/{name}")
        async def one_property(object_type: str, name: str) -> Response:
            type_ = _type(object_type)
            prop = self.portal.properties(type_.name).get(name)
            if prop is None:
                raise HubSpotError(
                    404,
                    "OBJECT_NOT_FOUND",
                    f"Unable to find property {name} on {type_.label}",
                    context={"name": [name]},
                )
            return JSONResponse(prop.wire())

        @app.post("/crm/v3/properties/{object_type}")
        async def create_property(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            prop = self.portal.create_property(type_.name, await _json(request))
            return JSONResponse(prop.wire(), 201)

        @app.post("/crm/v3/properties/{object_type}/batch/create")
        async def create_properties(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            results, errors = [], []
            for item in objects._inputs(await _json(request), {"inputs"}, _PROPERTY_KEYS):
                try:
                    results.append(self.portal.create_property(type_.name, item).wire())
                except HubSpotError as exc:
                    errors.append(exc)
            status, body = objects.batch_answer(self.portal, results, errors)
            return JSONResponse(body, 201 if status == 200 else status)

        @app.post("/crm/v3/properties/{object_type}/batch/read")
        async def read_properties(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            known = self.portal.properties(type_.name)
            raw = await _json(request)
            inputs = objects._inputs(raw, {"inputs", "archived"}, {"name"})
            names = [str(i.get("name")) for i in inputs]
            found = [known[n].wire() for n in names if n in known]
            missing = [n for n in names if n not in known]
            errors = (
                [
                    HubSpotError(
                        404, "OBJECT_NOT_FOUND", "Some properties do not exist", context={"name": missing}
                    )
                ]
                if missing
                else []
            )
            status, body = objects.batch_answer(self.portal, found, errors)
            return JSONResponse(body, status)

        @app.get("/crm/v3/pipelines/{object_type}")
        async def pipelines(object_type: str) -> Response:
            return JSONResponse({"results": self.portal.pipelines(_type(object_type).name)})

        @app.get("/crm/v3/pipelines/{object_type}/{pipeline_id}")
        async def pipeline(object_type: str, pipeline_id: str) -> Response:
            for doc in self.portal.pipelines(_type(object_type).name):
                if doc["id"] == pipeline_id:
                    return JSONResponse(doc)
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Pipeline {pipeline_id} does not exist")

    def _install_objects(self, app: FastAPI) -> None:
        @app.get(V3)
        async def list_objects(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            params = request.query_params
            limit = _int(params.get("limit"), 10)
            body = objects.page(
                self.portal,
                type_,
                limit,
                params.get("after"),
                _names(request, "properties"),
                _names(request, "associations"),
            )
            return JSONResponse(body)

        @app.post(V3)
        async def create(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            return JSONResponse(objects.create(self.portal, type_, await _json(request)), 201)

        @app.post(V3 + "/search")
        async def do_search(object_type: str, request: Request) -> Response:
            type_ = _type(object_type)
            return JSONResponse(search(self.portal, type_, await _json(request), self.search_cap))

        for action, handler in (
            ("read", objects.batch_read),
            ("create", objects.batch_create),
            ("update", objects.batch_update),
            ("upsert", objects.batch_upsert),
        ):
            self._batch_route(app, action, handler)

        @app.post(V3 + "/batch/archive")
        async def batch_archive(object_type: str, request: Request) -> Response:
            objects.batch_archive(self.portal, _type(object_type), await _json(request))
            return Response(status_code=204)

        @app.get(V3 + "/{object_id}")
        async def read(object_type: str, object_id: str, request: Request) -> Response:
            type_ = _type(object_type)
            doc = objects.resolve(self.portal, type_, object_id, request.query_params.get("idProperty"))
            body = self.portal.wire(type_, doc, _names(request, "properties"))
            links = objects.associations_of(self.portal, type_, doc["id"], _names(request, "associations"))
            if links:
                body["associations"] = links
            return JSONResponse(body)

        @app.patch(V3 + "/{object_id}")
        async def update(object_type: str, object_id: str, request: Request) -> Response:
            type_ = _type(object_type)
            id_property = request.query_params.get("idProperty")
            body = objects.update(self.portal, type_, object_id, await _json(request), id_property)
            return JSONResponse(body)

        @app.delete(V3 + "/{object_id}")
        async def archive(object_type: str, object_id: str) -> Response:
            self.portal.archive(_type(object_type).name, object_id)
            return Response(status_code=204)

    def _batch_route(self, app: FastAPI, action: str, handler: Any) -> None:
        @app.post(V3 + f"/batch/{action}", name=f"batch_{action}")
        async def batch(object_type: str, request: Request) -> Response:
            status, body = handler(self.portal, _type(object_type), await _json(request))
            return JSONResponse(body, status)

    def _install_associations(self, app: FastAPI) -> None:
        base = "/crm/v4/objects/{from_type}/{from_id}/associations"

        @app.put(base + "/default/{to_type}/{to_id}")
        async def create_default(from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
            body = associations.create_default(self.portal, _type(from_type), from_id, _type(to_type), to_id)
            return JSONResponse(body)

        @app.put(base + "/{to_type}/{to_id}")
        async def create(
            from_type: str, from_id: str, to_type: str, to_id: str, request: Request
        ) -> Response:
            body = associations.create(
                self.portal, _type(from_type), from_id, _type(to_type), to_id, await _json(request)
            )
            return JSONResponse(body, 201)

        @app.get(base + "/{to_type}")
        async def list_associations(from_type: str, from_id: str, to_type: str, request: Request) -> Response:
            params = request.query_params
            body = associations.list_page(
                self.portal,
                _type(from_type),
                from_id,
                _type(to_type),
                _int(params.get("limit"), 500),
                params.get("after"),
            )
            return JSONResponse(body)

        @app.get(V4 + "/labels")
        async def labels(from_type: str, to_type: str) -> Response:
            return JSONResponse(associations.labels(_type(from_type), _type(to_type)))

        for action, handler in (
            ("create", associations.batch_create),
            ("associate/default", associations.batch_default),
            ("read", associations.batch_read),
        ):
            self._association_batch(app, action, handler)

    def _association_batch(self, app: FastAPI, action: str, handler: Any) -> None:
        @app.post(V4 + f"/batch/{action}", name=f"associations_{action}")
        async def batch(from_type: str, to_type: str, request: Request) -> Response:
            status, body = handler(self.portal, _type(from_type), _type(to_type), await _json(request))
            return JSONResponse(body, status)


_PROPERTY_KEYS = {
    "name",
    "label",
    "type",
    "fieldType",
    "groupName",
    "description",
    "options",
    "displayOrder",
    "hasUniqueValue",
    "hidden",
    "formField",
    "calculationFormula",
    "referencedObjectType",
    "externalOptions",
}


def _type(name: str) -> Any:
    return object_type(name)


def _int(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise validation(f"{value!r} is not a number", code="INVALID_INTEGER")
    return int(value)


def _names(request: Request, param: str) -> list[str]:
    """A list parameter given repeated (``?p=a&p=b``) or comma-separated (``?p=a,b``)."""
    return [n for raw in request.query_params.getlist(param) for n in raw.split(",") if n]


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise validation(f"Invalid input JSON on line 1: {exc}") from None


__all__ = ["HubSpotSandbox"]
