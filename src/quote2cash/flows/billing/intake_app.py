"""The billing webhook intake that ``q2c run`` serves until the hub's HTTP API does.

``POST /webhooks/stripe`` verifies the ``Stripe-Signature`` header with the
billing connector (HMAC and the 5-minute replay window), turns the event into
a business event (:func:`.feedback.stripe_event`), accepts it once into the
inbox by its event id and dispatches it. Stripe is answered 200 only after the
event is committed; a bad signature, a stale timestamp or an unreadable body is
answered 400, applies nothing, and is recorded in ``webhook_delivery`` with its
reason, as every accepted and duplicate delivery is.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from quote2cash.errors import AuthError, HubError
from quote2cash.flows import intake
from quote2cash.flows.billing.common import billing
from quote2cash.flows.billing.feedback import FLOWS, SOURCE, stripe_event
from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import webhook_delivery

PATH = "/webhooks/stripe"


def _note(
    hub: Hub, outcome: str, event: dict[str, Any] | None, reason: str | None, message: str | None
) -> None:
    with hub.engine.begin() as conn:
        conn.execute(
            sa.insert(webhook_delivery).values(
                source=SOURCE,
                event_id=None if event is None else str(event.get("id")),
                event_type=None if event is None else str(event.get("type")),
                outcome=outcome,
                reason=reason,
                message=message,
                received_at=datetime.now(UTC),
            )
        )


def receive(hub: Hub, body: bytes, signature: str, *, now: float | None = None) -> tuple[int, dict[str, Any]]:
    """Handle one delivery: (HTTP status, answer). Everything is committed before the answer."""
    port = billing(hub)
    verify = getattr(port, "verify_webhook", None)
    if verify is None:
        return 404, {"error": "the billing system takes no webhooks"}
    try:
        event: dict[str, Any] = verify(body, signature, now=now)
    except HubError as exc:
        reason = str(
            exc.details.get("reason") or ("signature" if isinstance(exc, AuthError) else "malformed")
        )
        _note(hub, "rejected", None, reason, exc.message)
        return 400, {"error": exc.message, "reason": reason}
    if event.get("type") not in FLOWS:
        _note(hub, "ignored", event, "type_not_handled", None)
        return 200, {"received": True, "applied": False}
    source_event_id, business = stripe_event(event)
    accepted = intake.deliver(hub, source_event_id, business)
    _note(hub, "accepted" if accepted else "duplicate", event, None, None)
    if accepted:
        intake.dispatch(hub)
    return 200, {"received": True, "duplicate": not accepted}


def app(hub: Hub) -> FastAPI:
    """The intake as an ASGI app."""
    api = FastAPI(title="quote2cash billing webhook intake", openapi_url=None, docs_url=None, redoc_url=None)

    @api.post(PATH)
    async def stripe_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        status, answer = await run_in_threadpool(
            receive, hub, body, request.headers.get("stripe-signature", "")
        )
        return JSONResponse(answer, status)

    return api


class IntakeServer:
    """The intake served by uvicorn in a daemon thread."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(
                app(hub), host=host, port=port, log_level="warning", lifespan="off", access_log=False
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="q2c-billing-intake")

    def start(self, timeout: float = 10.0) -> IntakeServer:
        """Start serving and wait until the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the billing intake on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """Where Stripe sends deliveries."""
        return f"http://{self.host}:{self.port}{PATH}"

    def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


__all__ = ["PATH", "IntakeServer", "app", "receive"]
