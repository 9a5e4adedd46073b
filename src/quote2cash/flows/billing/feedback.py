"""F8 — invoice and payment feedback from the billing system.

The billing connector turns its system's notifications into business events
of type ``billing.<change>`` (``billing.invoice_paid``, …) about
``Invoice/<id>``, whose payload is an :class:`~quote2cash.model.InvoiceChange`:
the invoice's state when the change happened. One flow per kind of change
applies them, so every kind of change of one invoice runs once.

Deliveries come duplicated and in any order, so nothing is applied by arrival:
each invoice keeps the version of the state last applied — the rank of its
status (open < uncollectible < paid, void), its payment attempts and what was
refunded — and a change whose state is not newer changes nothing. What the
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
from quote2cash.model import InvoiceChange, InvoiceChangeKind, Money
from quote2cash.runtime.flow import Flow, Run, declare
from quote2cash.store import repo
from quote2cash.store.tables import billing_invoice, billing_schedule

#: The flow applying each kind of change.
FLOWS = {
    InvoiceChangeKind.FINALIZED: "record_invoice_finalized",
    InvoiceChangeKind.PAID: "record_invoice_paid",
    InvoiceChangeKind.VOIDED: "record_invoice_voided",
    InvoiceChangeKind.PAYMENT_FAILED: "record_invoice_payment_failed",
    InvoiceChangeKind.REFUNDED: "record_charge_refunded",
}
#: The business event types of the changes.
TYPES = tuple(f"billing.{kind.value}" for kind in FLOWS)


def _minor(amount: Money | None) -> int:
    return 0 if amount is None else amount.to_minor()


def _version(change: InvoiceChange, current: dict[str, Any]) -> tuple[int, int, int]:
    if change.status is None:  # a refund: only what was refunded moves
        return int(current["state_rank"]), int(current["attempts"]), _minor(change.refunded)
    return RANK.get(change.status.value, 0), change.attempts, int(current["refunded_minor"])


def _payment_status(status: str, attempts: int, paid: int, refunded: int) -> str:
    if refunded:
        return "refunded" if refunded >= paid else "partially_refunded"
    if status == "paid":
        return "paid"
    if status == "void":
        return "void"
    return "failed" if attempts else "unpaid"


def _find(conn: sa.Connection, change: InvoiceChange) -> dict[str, Any] | None:
    if change.hub_key and (found := row(conn, change.hub_key)) is not None:
        return found
    hit = conn.execute(
        sa.select(billing_invoice.c.key).where(billing_invoice.c.billing_id == change.invoice_id)
    ).first()
    if hit is not None:
        return row(conn, str(hit.key))
    if not change.subscription_id or change.currency is None:
        return None
    sched = (
        conn.execute(
            sa.select(billing_schedule).where(billing_schedule.c.subscription_id == change.subscription_id)
        )
        .mappings()
        .first()
    )
    if sched is None:
        return None
    # An invoice the subscription raised: the hub learns of it here.
    key = f"Q2C-SI-{change.invoice_id}"
    created = change.created_at or datetime.fromtimestamp(0, UTC)
    repo.insert_ignore(
        conn,
        billing_invoice,
        {
            "key": key,
            "kind": "subscription",
            "project": sched["project"],
            "customer_id": sched["customer_id"],
            "period": created.strftime("%Y-%m"),
            "currency": change.currency,
            "subtotal_minor": _minor(change.subtotal),
            "lines": [],
            "status": "planned",
            "billing_id": change.invoice_id,
            "planned_at": datetime.now(UTC),
        },
    )
    return row(conn, key)


def apply(conn: sa.Connection, change: InvoiceChange) -> dict[str, Any]:
    """Apply one change's state to its invoice if it is newer than the state applied; one transaction."""
    found = _find(conn, change)
    if found is None:
        return {"applied": False, "reason": "not an invoice the hub billed", "invoice": change.invoice_id}
    # Serialise concurrent events of one invoice (PostgreSQL; SQLite writes one at a time anyway).
    current = dict(
        conn.execute(
            sa.select(billing_invoice).where(billing_invoice.c.key == found["key"]).with_for_update()
        )
        .mappings()
        .one()
    )
    new = _version(change, current)
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
    if change.status is not None:
        status = change.status.value
        values.update(
            status=status,
            billing_id=change.invoice_id,
            number=change.number or current["number"],
            total_minor=_minor(change.total),
            tax_minor=_minor(change.tax),
            paid_minor=_minor(change.paid),
            paid_at=change.paid_at or current["paid_at"],
            issue_date=current["issue_date"] or (change.finalized_at.date() if change.finalized_at else None),
            due_date=current["due_date"] or change.due_date,
        )
        if current["kind"] == "subscription" and change.finalized_at and current["sent_at"] is None:
            # The billing system sends a subscription's invoices itself; the hub sends its own.
            values["sent_at"] = change.finalized_at
        if not current["lines"]:
            values["lines"] = [
                {
                    "description": line.description,
                    "quantity": "1",
                    "unit_amount": str(line.amount.amount),
                    "source_ref": "",
                }
                for line in change.lines
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
    """Apply one change of an invoice, then bring the ERP, the CRM and the PSA in line."""
    change = InvoiceChange.model_validate(run.payload)
    with run.hub.engine.begin() as conn:
        result = apply(conn, change)
    if "key" not in result:
        return result
    settle_erp(run.hub, str(result["key"]))
    write_back(run.hub, str(result["project"]))
    return result


FEEDBACK = {
    f"billing.{kind.value}": declare(
        Flow(
            name=name,
            triggers=(f"billing.{kind.value}",),
            writes=("erp", "crm", "psa"),
            replayable=True,
            body=steps,
            one_step=True,
        )
    )
    for kind, name in FLOWS.items()
}

__all__ = ["FEEDBACK", "FLOWS", "TYPES", "apply", "steps"]
