"""Verifying Stripe's webhook deliveries: signature and replay window.

Stripe signs ``"{t}.{raw body}"`` with HMAC-SHA256 under the endpoint's
``whsec_`` secret and sends ``Stripe-Signature: t=…,v1=…[,v1=…]``. The
signature is checked by the SDK (``stripe.WebhookSignature``); the timestamp
is checked here against ``now`` so that a replayed delivery older than
``tolerance`` seconds is refused even with a valid signature. Stripe delivers
at least once and in no particular order: consumers de-duplicate on the
event ``id``.

:func:`billing_event` turns a verified event into the hub's neutral billing
event (``billing.invoice_paid`` and so on, with an
:class:`~quote2cash.model.InvoiceChange` as payload), so the billing flows
never read a Stripe object.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import stripe

from quote2cash.connectors.stripe.amounts import from_stripe
from quote2cash.errors import AuthError, VendorPayloadError
from quote2cash.model import (
    BusinessEvent,
    ChangedLine,
    InvoiceChange,
    InvoiceChangeKind,
    InvoiceStatus,
    Money,
)

DEFAULT_TOLERANCE = 300


def verify(
    payload: bytes, header: str, secret: str, *, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> dict[str, Any]:
    """The event of a signed delivery, or a hub error.

    Raises:
        AuthError: the signature does not match (tampered body, wrong secret) or the
            timestamp is more than ``tolerance`` seconds old (a replay).
        VendorPayloadError: the header or the body cannot be read.
    """
    text = payload.decode("utf-8")
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)  # type: ignore[no-untyped-call]
    except stripe.SignatureVerificationError as exc:
        unreadable = "Unable to extract" in str(exc) or "No signatures found with expected scheme" in str(exc)
        if unreadable:
            raise VendorPayloadError(
                f"the Stripe-Signature header cannot be read: {exc}",
                system="stripe",
                details={"header": header},
            ) from exc
        raise AuthError(
            "a webhook delivery's signature does not match its body under the endpoint's secret; "
            "it was altered or did not come from Stripe",
            system="stripe",
            details={"reason": "signature_mismatch"},
        ) from exc
    timestamp = int(dict(p.split("=", 1) for p in header.split(",") if "=" in p)["t"])
    age = (time.time() if now is None else now) - timestamp
    if tolerance and age > tolerance:
        raise AuthError(
            f"a webhook delivery is {int(age)} s old, beyond the {tolerance} s replay window; it is refused "
            "as a possible replay",
            system="stripe",
            details={"reason": "stale_timestamp", "age_seconds": int(age), "tolerance": tolerance},
        )
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise VendorPayloadError("a webhook delivery's body is not JSON", system="stripe") from exc
    if not isinstance(event, dict) or event.get("object") != "event" or "id" not in event:
        raise VendorPayloadError("a webhook delivery's body is not a Stripe event", system="stripe")
    return event


#: The Stripe event types the hub acts on, as the change each reports.
CHANGES = {
    "invoice.finalized": InvoiceChangeKind.FINALIZED,
    "invoice.paid": InvoiceChangeKind.PAID,
    "invoice.voided": InvoiceChangeKind.VOIDED,
    "invoice.payment_failed": InvoiceChangeKind.PAYMENT_FAILED,
    "charge.refunded": InvoiceChangeKind.REFUNDED,
}
_STATUS = {s.value: s for s in InvoiceStatus}


def _moment(stamp: Any) -> datetime | None:
    return datetime.fromtimestamp(int(stamp), UTC) if stamp else None


def _change(kind: InvoiceChangeKind, obj: dict[str, Any]) -> InvoiceChange:
    if kind is InvoiceChangeKind.REFUNDED:
        currency = str(obj["currency"]).upper()
        return InvoiceChange(
            kind=kind,
            invoice_id=str(obj.get("invoice") or ""),
            currency=currency,
            refunded=Money.of(from_stripe(int(obj.get("amount_refunded") or 0), currency), currency),
        )
    currency = str(obj["currency"]).upper()

    def money(units: Any) -> Money:
        return Money.of(from_stripe(int(units or 0), currency), currency)

    transitions = obj.get("status_transitions") or {}
    due = obj.get("due_date")
    return InvoiceChange(
        kind=kind,
        invoice_id=str(obj["id"]),
        hub_key=(obj.get("metadata") or {}).get("q2c_key") or None,
        subscription_id=obj.get("subscription") or None,
        status=_STATUS.get(str(obj.get("status"))),
        number=obj.get("number") or None,
        currency=currency,
        subtotal=money(obj.get("subtotal")),
        total=money(obj.get("total")),
        tax=money(obj.get("tax")),
        paid=money(obj.get("amount_paid")),
        attempts=int(obj.get("attempt_count") or 0),
        created_at=_moment(obj.get("created")),
        finalized_at=_moment(transitions.get("finalized_at")),
        paid_at=_moment(transitions.get("paid_at")),
        due_date=datetime.fromtimestamp(int(due), UTC).date() if due else None,
        lines=[
            ChangedLine(description=str(line.get("description") or ""), amount=money(line.get("amount")))
            for line in (obj.get("lines") or {}).get("data", [])
        ],
    )


def billing_event(event: dict[str, Any]) -> tuple[str, BusinessEvent] | None:
    """A verified Stripe event as (its event id, the hub's billing event), or None for a type the
    hub does not act on.

    Raises:
        VendorPayloadError: the event's object cannot be read as an invoice or a charge.
    """
    kind = CHANGES.get(str(event.get("type")))
    if kind is None:
        return None
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict) or not obj.get("id"):
        raise VendorPayloadError(
            f"Stripe event {event.get('id')}: data.object is not an object", system="stripe"
        )
    if kind is InvoiceChangeKind.REFUNDED and not obj.get("invoice"):
        return None  # a refund of a charge no invoice was paid with: not the hub's
    try:
        change = _change(kind, obj)
        created = event.get("created")
        at = datetime.fromtimestamp(int(created), UTC) if created else datetime.now(UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise VendorPayloadError(
            f"Stripe event {event.get('id')} ({event.get('type')}) cannot be read: {exc}",
            system="stripe",
            record=str(obj.get("id")),
        ) from None
    subject = f"Invoice/{change.invoice_id}"
    return str(event["id"]), BusinessEvent(
        id=str(event["id"]),
        type=f"billing.{kind.value}",
        source="stripe",
        subject=subject,
        time=at,
        correlation_id=change.hub_key or subject,
        payload=change.model_dump(mode="json"),
    )


__all__ = ["CHANGES", "DEFAULT_TOLERANCE", "billing_event", "verify"]
