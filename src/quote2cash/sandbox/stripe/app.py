"""The Stripe sandbox: Stripe's v1 API on loopback, with idempotency, events and webhooks.

Wire format as in VENDORS.md §1.6: ``Authorization: Bearer sk_test_…``,
form-encoded requests with bracketed keys, JSON answers, errors as
``{"error": {"type", "code", "message", "param"}}``, lists with ``limit``,
``starting_after``/``ending_before`` and ``has_more``, ``expand[]``.

Idempotency follows Stripe's rules: a ``POST`` with an ``Idempotency-Key``
stores its first answer once it starts to run (failures included; a request
refused by parameter checks is not stored) and replays it, with
``Idempotent-Replayed: true``, to the same key with the same parameters; the
same key with other parameters is ``400 idempotency_error``; a key still in
flight is ``409 idempotency_error``. Keys belong to one API key and are
forgotten after 24 hours (of the sandbox's clock).

Objects, events and idempotency records live in the DocStore, so a restart
on the same file keeps them; the webhook deliverer (:mod:`._webhooks`)
sends each event to the registered endpoints in a background thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from quote2cash.sandbox._base import FaultRule, Sandbox, SandboxServer
from quote2cash.sandbox.stripe._recurring import Billing
from quote2cash.sandbox.stripe._routes import Route, route
from quote2cash.sandbox.stripe._state import public
from quote2cash.sandbox.stripe._webhooks import Attempt, Deliverer
from quote2cash.sandbox.stripe._wire import StripeError, decode_form

#: The secret key the sandbox accepts unless told otherwise (test data, not a credential).
DEFAULT_KEY = "sk_test_q2c_sandbox"
DEFAULT_VERSION = "2022-04-12"
_IDEMPOTENCY = "stripe_idempotency"
_KEY_TTL = 24 * 3600
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
_FAULTS = {
    429: (
        "invalid_request_error",
        "rate_limit",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
    ),
    500: ("api_error", None, "Something went wrong on Stripe's end."),
    502: ("api_error", None, "Bad gateway."),
    503: ("api_error", None, "Stripe is temporarily unavailable."),
    504: ("api_error", None, "The request timed out."),
}


class Hold:
    """Requests to matching paths stop after claiming their idempotency key, until released."""

    def __init__(self, path: str) -> None:
        self.path = re.compile(path)
        self.entered = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        """Let held requests go on."""
        self._release.set()

    def wait(self, timeout: float = 10.0) -> None:
        """Called by a held request."""
        self.entered.set()
        self._release.wait(timeout)


class StripeSandbox(Sandbox):
    """A Stripe account on loopback: the resources billing uses, idempotency, events, webhooks.

    Methods that act without HTTP, as Stripe or a customer would:
    :meth:`pay` (with a card that works or is declined), :meth:`refund`,
    :meth:`advance` (the clock, with what Stripe automates meanwhile),
    :meth:`expire_idempotency_keys`, :meth:`hold`; :attr:`webhooks` is the
    deliverer with its recorded :attr:`~Deliverer.attempts`.

    Args:
        path: the SQLite file (None: in memory).
        seed: seeds fault injection and webhook duplication/reordering.
        api_keys: secret keys accepted (each has its own idempotency keys).
        rate_limit: requests per second per API key before ``429 rate_limit`` (None: unlimited).
        webhook_retry_initial: seconds before a failed delivery is retried.
        webhook_backoff: factor applied to that wait after each failed attempt.
        webhook_max_attempts: deliveries tried per event and endpoint.
        webhook_duplicate_rate: chance that a delivered event is delivered again.
        webhook_reorder_window: seconds over which deliveries are randomly delayed.
    """

    vendor = "stripe"

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        seed: int = 0,
        api_keys: tuple[str, ...] = (DEFAULT_KEY,),
        rate_limit: float | None = None,
        webhook_retry_initial: float = 0.05,
        webhook_backoff: float = 2.0,
        webhook_max_attempts: int = 5,
        webhook_duplicate_rate: float = 0.0,
        webhook_reorder_window: float = 0.0,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.rate_limit = rate_limit
        self._buckets: dict[str, tuple[float, float]] = {}
        self._holds: list[Hold] = []
        super().__init__(path, seed=seed)
        self.billing = Billing(self.store)
        self.webhooks = Deliverer(
            self.store,
            seed=seed,
            retry_initial=webhook_retry_initial,
            retry_backoff=webhook_backoff,
            max_attempts=webhook_max_attempts,
            duplicate_rate=webhook_duplicate_rate,
            reorder_window=webhook_reorder_window,
        )
        self.billing.on_event = self.webhooks.enqueue

    # -- life cycle --------------------------------------------------------------------------
    def start(self, port: int = 0) -> SandboxServer:
        """Serve on loopback and start delivering webhooks."""
        server = super().start(port)
        self.webhooks.start()
        return server

    def stop(self) -> None:
        """Stop delivering webhooks and serving."""
        self.webhooks.stop()
        super().stop()

    # -- acting as Stripe or a customer -------------------------------------------------------------------
    def pay(self, invoice_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """Pay an invoice with a test card that works, or one that is declined (``StripeError`` 402)."""
        method = "pm_card_visa" if succeed else "pm_card_chargeDeclined"
        with self.store.lock:
            return public(self.billing.pay(invoice_id, {"payment_method": method}))

    def refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund all or part of a charge."""
        with self.store.lock:
            return self.billing.refund({"charge": charge_id, **({"amount": amount} if amount else {})})

    def advance(self, seconds: float) -> None:
        """Move the account's clock on: auto-advancing drafts finalize, subscriptions renew."""
        with self.store.lock:
            self.billing.advance(seconds)

    def expire_idempotency_keys(self) -> int:
        """Forget every stored idempotency key (as Stripe does after 24 hours); returns how many."""
        keys = [k for k, _ in self.store.items(_IDEMPOTENCY)]
        for key in keys:
            self.store.delete(_IDEMPOTENCY, key)
        return len(keys)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every live object of a type (``customer``, ``invoice``, …), newest first."""
        return [public(d) for d in self.billing.newest_first(kind)]

    def deliveries(self) -> list[Attempt]:
        """Every webhook delivery attempt so far."""
        return list(self.webhooks.attempts)

    @contextmanager
    def hold(self, path: str) -> Iterator[Hold]:
        """Hold requests whose path matches ``path`` once they claimed their idempotency key."""
        hold = Hold(path)
        self._holds.append(hold)
        try:
            yield hold
        finally:
            hold.release()
            self._holds.remove(hold)

    def fault_response(self, rule: FaultRule) -> Response:
        """An injected ``reject``/``error``: the rule's body, or a Stripe error object."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        type_, code, message = _FAULTS.get(rule.status, ("api_error", None, "An unknown error occurred."))
        return JSONResponse(
            StripeError(message, status=rule.status, type_=type_, code=code).body(), rule.status
        )

    # -- routes ------------------------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add ``/v1/…`` and the sandbox's own ``/__sandbox/stripe/…`` routes."""

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, StarletteHTTPException)
            message = f"Unrecognized request URL ({request.method}: {request.url.path})."
            return JSONResponse(StripeError(message, status=exc.status_code).body(), exc.status_code)

        app.add_exception_handler(StarletteHTTPException, http_error)

        @app.middleware("http")
        async def stripe_shaped_faults(request: Request, call_next: Any) -> Response:
            # The shared fault middleware answers throttling and timeouts in a generic shape;
            # Stripe clients need Stripe's error object to read them.
            response: Response = await call_next(request)
            if response.status_code not in (429, 504) or not request.url.path.startswith("/v1/"):
                return response
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            try:
                shaped = isinstance(json.loads(body).get("error"), dict)
            except (ValueError, AttributeError):
                shaped = False
            headers = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in ("content-length", "content-type")
            }
            if shaped:
                return Response(body, response.status_code, headers=headers, media_type="application/json")
            type_, code, message = _FAULTS[response.status_code]
            error = StripeError(message, status=response.status_code, type_=type_, code=code)
            return JSONResponse(error.body(), response.status_code, headers=headers)

        @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"])
        async def v1(request: Request, rest: str) -> Response:
            body = await request.body()
            status, payload, headers = await run_in_threadpool(
                self._handle, request.method, request.url.path, request.url.query, body, dict(request.headers)
            )
            return Response(
                json.dumps(payload, indent=2), status, headers=headers, media_type="application/json"
            )

        @app.post("/__sandbox/stripe/advance")
        async def advance(request: Request) -> dict[str, Any]:
            seconds = float((await request.json()).get("seconds", 0))
            await run_in_threadpool(self.advance, seconds)
            return {"now": self.billing.now()}

        @app.get("/__sandbox/stripe/webhooks")
        def deliveries() -> list[dict[str, Any]]:
            return [{**a.__dict__, "ok": a.ok} for a in self.deliveries()]

        @app.post("/__sandbox/stripe/invoices/{invoice_id}/pay")
        async def admin_pay(invoice_id: str, request: Request) -> Response:
            succeed = bool((await request.json()).get("succeed", True)) if await request.body() else True
            try:
                return JSONResponse(await run_in_threadpool(lambda: self.pay(invoice_id, succeed=succeed)))
            except StripeError as exc:
                return JSONResponse(exc.body(), exc.status)

    # -- one API request -----------------------------------------------------------------------
    def _handle(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        request_id = "req_" + secrets.token_hex(7)
        out = {"Request-Id": request_id}
        try:
            key = self._authenticate(headers)
            version = headers.get("stripe-version") or DEFAULT_VERSION
            if not _VERSION.match(version):
                raise StripeError(f"Invalid Stripe API version: {version}", param="Stripe-Version")
            out["Stripe-Version"] = version
            self._throttle(key)
            r, ids = route(method, path)
            if method == "POST" and "json" in headers.get("content-type", ""):
                raise StripeError(
                    "Invalid request: the Stripe API expects form-encoded bodies "
                    "(Content-Type: application/x-www-form-urlencoded)."
                )
            raw = decode_form(body.decode("utf-8", "replace") if method == "POST" else query)
            params = r.spec.check(raw)
        except StripeError as exc:
            return exc.status, exc.body(), {**out, **exc.headers}
        idem = headers.get("idempotency-key") if method == "POST" else None
        if idem is None:
            status, payload = self._run(r, path, ids, params, version, request_id, None)
            return status, payload, out
        if len(idem) > 255:
            error = StripeError(
                "Idempotency keys can be at most 255 characters long.", type_="idempotency_error"
            )
            return error.status, error.body(), out
        out["Idempotency-Key"] = idem
        record_id = f"{hashlib.sha256(key.encode()).hexdigest()[:16]}:{idem}"
        fingerprint = hashlib.sha256(json.dumps([method, path, raw], sort_keys=True).encode()).hexdigest()
        with self.store.lock:
            record = self.store.get(_IDEMPOTENCY, record_id)
            if record is not None and record["created"] + _KEY_TTL < self.billing.now():
                record = None
            if record is not None:
                return self._replay(record, fingerprint, idem, out)
            self.store.put(
                _IDEMPOTENCY,
                record_id,
                {
                    "state": "in_progress",
                    "fingerprint": fingerprint,
                    "created": self.billing.now(),
                    "request": request_id,
                },
            )
        status, payload = self._run(r, path, ids, params, version, request_id, idem)
        with self.store.lock:
            self.store.put(
                _IDEMPOTENCY,
                record_id,
                {
                    "state": "done",
                    "fingerprint": fingerprint,
                    "created": self.billing.now(),
                    "request": request_id,
                    "status": status,
                    "body": payload,
                },
            )
        return status, payload, out

    def _replay(
        self, record: dict[str, Any], fingerprint: str, idem: str, out: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if record["fingerprint"] != fingerprint:
            error = StripeError(
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{idem}' if you meant to execute a different request.",
                type_="idempotency_error",
            )
            return error.status, error.body(), out
        if record["state"] != "done":
            error = StripeError(
                "There is currently another in-progress request using this Idempotent Key (that probably means "
                f"you submitted twice, and the other request is still going through): '{idem}'. Please try "
                "again later.",
                status=409,
                type_="idempotency_error",
                code="idempotency_key_in_use",
            )
            return error.status, error.body(), out
        headers = {**out, "Idempotent-Replayed": "true", "Original-Request": record["request"]}
        return record["status"], record["body"], headers

    def _run(
        self,
        r: Route,
        path: str,
        ids: tuple[str, ...],
        params: dict[str, Any],
        version: str,
        request_id: str,
        idem: str | None,
    ) -> tuple[int, dict[str, Any]]:
        for hold in list(self._holds):
            if hold.path.search(path):
                hold.wait()
        expand = [p for p in params.pop("expand", None) or [] if p]
        with self.store.lock:
            ctx = self.billing.request
            ctx.id, ctx.idempotency_key, ctx.version = request_id, idem, version
            try:
                status, payload = r.handler(self.billing, ids, params, version)
                if expand:
                    payload = self.billing.expand(payload, expand)
                return status, payload
            except StripeError as exc:
                return exc.status, exc.body()
            except Exception as exc:  # an emulator bug must still answer like Stripe's 500
                return 500, StripeError(
                    f"Internal error: {type(exc).__name__}: {exc}", status=500, type_="api_error"
                ).body()
            finally:
                ctx.id = ctx.idempotency_key = ctx.version = None

    def _authenticate(self, headers: dict[str, str]) -> str:
        header = headers.get("authorization", "")
        key = ""
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        elif header[:6].lower() == "basic ":
            try:
                key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status=401,
            )
        if key not in self.api_keys:
            raise StripeError(f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}", status=401)
        return key

    def _throttle(self, key: str) -> None:
        if self.rate_limit is None:
            return
        now = time.monotonic()
        with self.store.lock:
            tokens, stamp = self._buckets.get(key, (self.rate_limit, now))
            tokens = min(self.rate_limit, tokens + (now - stamp) * self.rate_limit)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                type_, code, message = _FAULTS[429]
                raise StripeError(message, status=429, type_=type_, code=code)
            self._buckets[key] = (tokens - 1, now)
