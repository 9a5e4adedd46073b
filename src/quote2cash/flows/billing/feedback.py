"""F8 — invoice and payment feedback from the billing system.

Stripe's webhook events become business events (:func:`stripe_event`) of type
``stripe.<event type>`` about ``Invoice/<id>`` or ``Charge/<id>``, whose
payload is the event's object as it was when the event happened. One flow per
event type applies them, so every kind of change of one invoice runs once.

Deliveries come duplicated and in any order, so nothing is applied by arrival:
each invoice keeps the version of the state last applied — the rank of its
status (open < uncollectible < paid, void), its payment attempts and what was
refunded — and an event whose state is not newer changes nothing. What the
state implies is then brought about idempotently: in the ERP the payment
applied to the AR invoice, or the invoice credited when voided (each once, by
external id); in the CRM the deal's and account's billed to date, last invoice
number and status, payment status and days outstanding; in the PSA the
project's billed to date (absolute values, so a repeat writes the same).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.flows.billing.common import RANK, row, settle_erp, write_back
from quote2cash.model import BusinessEvent, from_minor
from quote2cash.runtime.flow import Flow, Run, declare
from quote2cash.store import repo
from quote2cash.store.tables import billing_invoice, billing_schedule

SOURCE = "stripe"
#: The Stripe event types the hub applies, and the flow applying each.
FLOWS = {
    "invoice.finalized": "record_invoice_finalized",
    "invoice.paid": "record_invoice_paid",
    "invoice.voided": "record_invoice_voided",
    "invoice.payment_failed": "record_invoice_payment_failed",
    "charge.refunded": "record_charge_refunded",
}
TYPES = tuple(f"stripe.{t}" for t in FLOWS)


def stripe_event(event: dict[str, Any]) -> tuple[str, BusinessEvent]:
    """A verified Stripe event as (its event id, the business event the hub routes)."""
    obj = event["data"]["object"]
    kind = "Charge" if obj.get("object") == "charge" else "Invoice"
    subject = f"{kind}/{obj['id']}"
    key = (obj.get("metadata") or {}).get("q2c_key")
    template = BusinessEvent(
        id=str(event["id"]),
        type="stripe.event",  # the real type has two dots; the envelope's pattern allows one (see the copy)
        source=SOURCE,
        subject=subject,
        time=datetime.fromtimestamp(int(event.get("created") or 0), UTC),
        correlation_id=str(key or subject),
        payload=obj,
    )
    return str(event["id"]), template.model_copy(update={"type": f"stripe.{event['type']}"})


def _version(obj: dict[str, Any], current: dict[str, Any]) -> tuple[int, int, int]:
    if obj.get("object") == "charge":
        return int(current["state_rank"]), int(current["attempts"]), int(obj.get("amount_refunded") or 0)
    return (
        RANK.get(str(obj.get("status")), 0),
        int(obj.get("attempt_count") or 0),
        int(current["refunded_minor"]),
    )


def _payment_status(status: str, attempts: int, paid: int, refunded: int) -> str:
    if refunded:
        return "refunded" if refunded >= paid else "partially_refunded"
    if status == "paid":
        return "paid"
    if status == "void":
        return "void"
    return "failed" if attempts else "unpaid"


def _find(conn: sa.Connection, invoice: dict[str, Any] | None, stripe_id: str) -> dict[str, Any] | None:
    key = ((invoice or {}).get("metadata") or {}).get("q2c_key")
    if key and (found := row(conn, str(key))) is not None:
        return found
    hit = conn.execute(
        sa.select(billing_invoice.c.key).where(billing_invoice.c.stripe_id == stripe_id)
    ).first()
    if hit is not None:
        return row(conn, str(hit.key))
    sub = (invoice or {}).get("subscription")
    if not sub:
        return None
    sched = (
        conn.execute(sa.select(billing_schedule).where(billing_schedule.c.subscription_id == str(sub)))
        .mappings()
        .first()
    )
    if sched is None or invoice is None:
        return None
    # An invoice the subscription raised: the hub learns of it here.
    key = f"Q2C-SI-{stripe_id}"
    repo.insert_ignore(
        conn,
        billing_invoice,
        {
            "key": key,
            "kind": "subscription",
            "project": sched["project"],
            "customer_id": sched["customer_id"],
            "period": datetime.fromtimestamp(int(invoice.get("created") or 0), UTC).strftime("%Y-%m"),
            "currency": str(invoice["currency"]).upper(),
            "subtotal_minor": int(invoice.get("subtotal") or 0),
            "lines": [],
            "status": "planned",
            "stripe_id": stripe_id,
            "planned_at": datetime.now(UTC),
        },
    )
    return row(conn, key)


def apply(conn: sa.Connection, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply one event's state to its invoice if it is newer than the state applied; one transaction."""
    invoice = obj if obj.get("object") == "invoice" else None
    stripe_id = str(obj["id"] if invoice is not None else obj.get("invoice") or "")
    found = _find(conn, invoice, stripe_id)
    if found is None:
        return {"applied": False, "reason": "not an invoice the hub billed", "invoice": stripe_id}
    # Serialise concurrent events of one invoice (PostgreSQL; SQLite writes one at a time anyway).
    current = dict(
        conn.execute(
            sa.select(billing_invoice).where(billing_invoice.c.key == found["key"]).with_for_update()
        )
        .mappings()
        .one()
    )
    new = _version(obj, current)
    old = (int(current["state_rank"]), int(current["attempts"]), int(current["refunded_minor"]))
    if new <= old and current["number"] is not None:
        return {
            "applied": False,
            "reason": "not newer than the state applied",
            "key": current["key"],
            "project": current["project"],
        }
    values: dict[str, Any] = {"state_rank": new[0], "attempts": new[1], "refunded_minor": new[2]}
    status = str(current["status"])
    if invoice is not None:
        status = str(invoice["status"])
        transitions = invoice.get("status_transitions") or {}
        paid_at = transitions.get("paid_at")
        finalized = transitions.get("finalized_at")
        values.update(
            status=status,
            stripe_id=stripe_id,
            number=invoice.get("number") or current["number"],
            total_minor=int(invoice.get("total") or 0),
            tax_minor=int(invoice.get("tax") or 0),
            paid_minor=int(invoice.get("amount_paid") or 0),
            paid_at=datetime.fromtimestamp(int(paid_at), UTC) if paid_at else current["paid_at"],
            issue_date=current["issue_date"]
            or (datetime.fromtimestamp(int(finalized), UTC).date() if finalized else None),
            due_date=current["due_date"]
            or (
                datetime.fromtimestamp(int(invoice["due_date"]), UTC).date()
                if invoice.get("due_date")
                else None
            ),
        )
        if current["kind"] == "subscription" and finalized and current["sent_at"] is None:
            # Stripe sends a subscription's invoices itself; the hub's own are sent by the hub.
            values["sent_at"] = datetime.fromtimestamp(int(finalized), UTC)
        if not current["lines"]:
            values["lines"] = [
                {
                    "description": str(line.get("description") or ""),
                    "quantity": "1",
                    "unit_amount": str(
                        from_minor(int(line.get("amount") or 0), str(invoice["currency"]).upper())
                    ),
                    "source_ref": "",
                }
                for line in (invoice.get("lines") or {}).get("data", [])
            ]
    paid = int(values.get("paid_minor", current["paid_minor"]))
    values["payment_status"] = _payment_status(status, new[1], paid, new[2])
    conn.execute(sa.update(billing_invoice).where(billing_invoice.c.key == current["key"]).values(**values))
    return {
        "applied": True,
        "key": current["key"],
        "project": current["project"],
        "status": status,
        "payment": values["payment_status"],
    }


def steps(run: Run) -> dict[str, Any]:
    """Apply one Stripe event, then bring the ERP, the CRM and the PSA in line."""
    with run.hub.engine.begin() as conn:
        result = apply(conn, run.payload)
    if "key" not in result:
        return result
    settle_erp(run.hub, str(result["key"]))
    write_back(run.hub, str(result["project"]))
    return result


FEEDBACK = {
    f"stripe.{event_type}": declare(
        Flow(
            name=name,
            triggers=(f"stripe.{event_type}",),
            writes=("erp", "crm", "psa"),
            replayable=True,
            body=steps,
            one_step=True,
        )
    )
    for event_type, name in FLOWS.items()
}

__all__ = ["FEEDBACK", "FLOWS", "SOURCE", "TYPES", "apply", "steps", "stripe_event"]
