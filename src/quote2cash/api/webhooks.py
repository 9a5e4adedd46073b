"""Webhook intake, one route per source, each verified by that source's own scheme.

==========  ==============================================================================
source      verification
==========  ==============================================================================
salesforce  the body's ``organizationId`` is the configured org, and the hub's own HMAC
            signature (:mod:`._signing`) under the shared secret; outbound messages carry
            no signature of their own, so the org's callout signs.
stripe      ``Stripe-Signature`` (HMAC-SHA256 of ``t.body``) with the replay window. Its invoice
            and refund events become neutral ``billing.*`` events; other types are ignored.
hubspot     ``X-HubSpot-Signature-v3`` over method, URI, body and timestamp. Its deal events
            carry no deal: where HubSpot is the CRM they make the hub read its closed-won
            feed at once (the poll's query, cursor and de-duplication).
netsuite,   the hub's own HMAC signature, for their scripts and subscribed events.
kantata
==========  ==============================================================================

Every delivery is read whole (up to ``api.max_body_bytes``), verified, parsed
into business events and checked *before* anything is stored; then each event
is accepted into the inbox, de-duplicated by its source event id (the same id
polling gives a change, so a change seen both ways is processed once), and the
answer is sent only after the commit. A sender that gets no 2xx sends again;
a redelivery is acknowledged as a duplicate. The dispatcher is woken to start
the flows at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from quote2cash.api import _signing
from quote2cash.api._auth import check, hub_of
from quote2cash.api._problems import responses
from quote2cash.config import WebhookConfig
from quote2cash.connectors.hubspot import webhooks as hubspot_webhooks
from quote2cash.connectors.salesforce.adapter import closed_won_event
from quote2cash.connectors.stripe import webhooks as stripe_webhooks
from quote2cash.errors import AuthError, HubError, VendorPayloadError
from quote2cash.flows.intake import deliver
from quote2cash.model import BusinessEvent
from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import webhook_delivery

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class Ack(BaseModel):
    """The acknowledgement of a delivery, sent after its events are committed."""

    ack: bool
    accepted: int
    duplicates: int
    ignored: int


@dataclass(frozen=True)
class Delivery:
    """A verified delivery's events, ready to store: (source event id, event) each.

    ``poll``: the events say a deal changed without carrying it (HubSpot's
    subscription events name the deal and one property): where the source is the
    CRM, its closed-won feed is read at once, as the scheduled poll reads it, so
    a deal won there starts its flow now and is still started once.
    """

    events: list[tuple[str, BusinessEvent]]
    ignored: int = 0
    poll: bool = False


def _malformed(source: str, what: str) -> HubError:
    return HubError(
        f"the {source} delivery cannot be read: {what}; nothing was stored", code="webhook.malformed"
    )


def _json(source: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise _malformed(source, "the body is not JSON") from None


async def read_body(request: Request, limit: int, source: str) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HubError(
            f"the {source} delivery is {declared} bytes, over the {limit} accepted", code="api.too_large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HubError(f"the {source} delivery is over the {limit} bytes accepted", code="api.too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _config(request: Request, source: str) -> WebhookConfig:
    hook: WebhookConfig | None = hub_of(request).config.api.webhooks.get(source)  # type: ignore[call-overload]
    if hook is None or hook.secret is None:
        raise HubError(
            f"the hub takes no {source} webhooks (no api.webhooks.{source})", code="webhook.not_configured"
        )
    if hook.token_required:
        check(request, f"webhook:{source}")
    return hook


def _time(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


# -- per source: verify, then parse into events ------------------------------------------------
def salesforce(request: Request, body: bytes, hook: WebhookConfig) -> Delivery:
    """Outbound-message notifications (as JSON) of closed-won deals, signed by the org's callout."""
    assert hook.secret is not None
    _signing.verify(
        body, request.headers.get(_signing.HEADER), hook.secret.get_secret_value(),
        tolerance=hook.tolerance_seconds, source="salesforce",
    )  # fmt: skip
    data = _json("salesforce", body)
    if not isinstance(data, dict) or not isinstance(data.get("notifications"), list):
        raise _malformed("salesforce", "it has no 'notifications' list")
    if hook.org_id is not None and data.get("organizationId") != hook.org_id:
        raise HubError(
            f"the Salesforce delivery names organisation {data.get('organizationId')!r}, not the configured one",
            code="webhook.org_mismatch",
            system="salesforce",
        )
    events, ignored = [], 0
    for n in data["notifications"]:
        record = n.get("sObject") if isinstance(n, dict) else None
        if not isinstance(record, dict):
            raise _malformed("salesforce", "a notification has no sObject")
        if record.get("type") != "Opportunity" or not (
            record.get("IsWon") and record.get("Terms_Approved__c")
        ):
            ignored += 1  # only closed-won deals with approved terms start a flow
            continue
        try:
            source = closed_won_event({k: v for k, v in record.items() if k != "type"})
        except (VendorPayloadError, ValueError) as exc:
            raise _malformed("salesforce", str(exc)) from None
        events.append((source.source_event_id, source.event))
    return Delivery(events, ignored)


def event_type(source: str, kind: str) -> str:
    """``source.kind`` as the envelope spells a type (lower case, one dot)."""
    return f"{source}.{re.sub(r'[^a-z_]+', '_', kind.lower()).strip('_') or 'event'}"


def stripe(request: Request, body: bytes, hook: WebhookConfig) -> Delivery:
    """A Stripe event, signed with the endpoint's ``whsec_`` secret."""
    assert hook.secret is not None
    header = request.headers.get("stripe-signature")
    if not header:
        raise HubError("the Stripe delivery has no Stripe-Signature header", code="webhook.signature_invalid")
    try:
        event = stripe_webhooks.verify(
            body, header, hook.secret.get_secret_value(), tolerance=hook.tolerance_seconds
        )
    except AuthError as exc:
        stale = exc.details.get("reason") == "stale_timestamp"
        raise HubError(
            exc.message,
            code="webhook.stale" if stale else "webhook.signature_invalid",
            system="stripe",
            details={"reason": exc.details.get("reason") or "signature"},
        ) from None
    except (VendorPayloadError, UnicodeDecodeError, ValueError, KeyError) as exc:
        message = exc.message if isinstance(exc, HubError) else str(exc)
        code = "webhook.signature_invalid" if "header" in message.lower() else "webhook.malformed"
        raise HubError(message, code=code, system="stripe") from None
    try:
        translated = stripe_webhooks.billing_event(event)
    except VendorPayloadError as exc:
        raise _malformed("stripe", exc.message) from None
    return Delivery([translated]) if translated is not None else Delivery([], ignored=1)


def hubspot(request: Request, body: bytes, hook: WebhookConfig) -> Delivery:
    """HubSpot's batch of subscription events, signed v3."""
    assert hook.secret is not None
    public = hub_of(request).config.api.public_url
    uri = str(request.url) if public is None else public.rstrip("/") + request.url.path
    try:
        hubspot_webhooks.verify_v3(
            request.method, uri, body, dict(request.headers), hook.secret.get_secret_value(),
            max_age=hook.tolerance_seconds,
        )  # fmt: skip
    except AuthError as exc:
        stale = exc.details.get("reason") == "stale_timestamp"
        raise HubError(
            exc.message, code="webhook.stale" if stale else "webhook.signature_invalid", system="hubspot"
        ) from None
    except UnicodeDecodeError:
        raise _malformed("hubspot", "the body is not UTF-8") from None
    data = _json("hubspot", body)
    if not isinstance(data, list):
        raise _malformed("hubspot", "the body is not a list of events")
    events = []
    for item in data:
        if not isinstance(item, dict) or "eventId" not in item or "subscriptionType" not in item:
            raise _malformed("hubspot", "an event has no eventId or subscriptionType")
        kind = str(item["subscriptionType"])
        try:
            at = _time(item.get("occurredAt"))
        except (ValueError, OverflowError, OSError) as exc:
            raise _malformed("hubspot", str(exc)) from None
        event = BusinessEvent(
            type=event_type("hubspot", kind),
            source="hubspot",
            subject=f"{kind.split('.', 1)[0]}/{item.get('objectId')}",
            time=at,
            payload=item,
        )
        events.append((f"{item['eventId']}", event))
    return Delivery(events, poll=any(str(item["subscriptionType"]).startswith("deal.") for item in data))


def _own_scheme(source: str) -> Callable[[Request, bytes, WebhookConfig], Delivery]:
    def parse(request: Request, body: bytes, hook: WebhookConfig) -> Delivery:
        assert hook.secret is not None
        _signing.verify(
            body, request.headers.get(_signing.HEADER), hook.secret.get_secret_value(),
            tolerance=hook.tolerance_seconds, source=source,
        )  # fmt: skip
        data = _json(source, body)
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _malformed(source, "it has no 'events' list")
        events = []
        for item in items:
            if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item[k] for k in ("id", "type", "subject")
            ):
                raise _malformed(source, "an event needs a string id, type and subject")
            payload = item.get("payload", {})
            if not isinstance(payload, dict):
                raise _malformed(source, "an event's payload is not an object")
            try:
                at = _time(item.get("occurred_at"))
            except (ValueError, OverflowError, OSError) as exc:
                raise _malformed(source, str(exc)) from None
            event = BusinessEvent(
                type=event_type(source, item["type"]),
                source=source,
                subject=item["subject"],
                time=at,
                payload=payload,
            )
            events.append((item["id"], event))
        return Delivery(events)

    return parse


PARSERS: dict[str, Callable[[Request, bytes, WebhookConfig], Delivery]] = {
    "salesforce": salesforce,
    "stripe": stripe,
    "hubspot": hubspot,
    "netsuite": _own_scheme("netsuite"),
    "kantata": _own_scheme("kantata"),
}


def _record(hub: Hub, source: str, rows: list[dict[str, Any]]) -> None:
    """Note deliveries in ``webhook_delivery``: each event accepted or a duplicate, or the
    delivery rejected with its reason (what an operator checks when a sender says it sent)."""
    if rows:
        now = datetime.now(UTC)
        with hub.engine.begin() as conn:
            conn.execute(
                sa.insert(webhook_delivery), [{"source": source, "received_at": now, **r} for r in rows]
            )


async def _intake(request: Request, source: str) -> Response:
    hub = hub_of(request)
    hook = _config(request, source)
    body = await read_body(request, hub.config.api.max_body_bytes, source)
    try:
        delivery = PARSERS[source](request, body, hook)
    except HubError as exc:
        reason = str(exc.details.get("reason") or exc.code)[:60]
        rejected = {"outcome": "rejected", "reason": reason, "message": exc.message}
        await run_in_threadpool(_record, hub, source, [rejected])
        raise

    def store() -> tuple[int, int]:
        outcomes = [(sid, event, deliver(hub, sid, event)) for sid, event in delivery.events]
        _record(
            hub,
            source,
            [
                {
                    "event_id": sid[:120],
                    "event_type": event.type[:60],
                    "outcome": "accepted" if ok else "duplicate",
                }
                for sid, event, ok in outcomes
            ],
        )
        accepted = sum(ok for _, _, ok in outcomes)
        return accepted, len(delivery.events) - accepted

    accepted, duplicates = await run_in_threadpool(store)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.webhook(source, accepted, duplicates)
    crm = hub.config.systems[hub.config.system_for("crm")]
    if delivery.poll and accepted and crm.kind == source:
        request.app.state.dispatcher.poll_crm()
    elif accepted:
        request.app.state.dispatcher.wake()
    return JSONResponse(
        {"ack": True, "accepted": accepted, "duplicates": duplicates, "ignored": delivery.ignored}
    )


_DOC = responses(400, 401, 403, 404, 413, 503)


def _route(source: str) -> None:
    async def receive(request: Request) -> Response:
        return await _intake(request, source)

    receive.__name__ = f"webhook_{source}"
    receive.__doc__ = f"Take a {source} webhook delivery (verified by its scheme); acknowledged after commit."
    router.add_api_route(
        f"/{source}", receive, methods=["POST"], response_model=Ack, responses=_DOC,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
        summary=f"{source} webhook",
    )  # fmt: skip


for _source in PARSERS:
    _route(_source)
