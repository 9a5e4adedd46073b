"""What the billing flows share: the systems they use, issuing one invoice, and the write-backs.

An invoice is planned on the hub first (a ``billing_invoice`` row whose key is
the billing system's idempotency key), then issued: created with that key,
finalized and sent, and recorded; then settled in the ERP: the AR invoice with
the billing system's id as its external id, the payment applied or the credit
memo of a void, each created once by its external id. Every step here may run
again after a crash and changes nothing the second time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.model import Invoice, InvoiceLine, IssuedInvoice, Money, from_minor, to_minor
from quote2cash.ports import (
    ArInvoice,
    ArPayment,
    Billing,
    BillingStatus,
    CrmBillingFeedback,
    ErpReceivables,
    PsaBilling,
)
from quote2cash.runtime.hub import Hub
from quote2cash.store import repo
from quote2cash.store.tables import billing_invoice, billing_schedule, kpi_sample, project_registry

#: The order of invoice states: an event never moves an invoice back to an earlier one.
RANK = {"planned": 0, "failed": 0, "draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
#: Invoices that count as billed.
BILLED = ("open", "paid", "uncollectible")


def billing(hub: Hub) -> Billing:
    """The billing system's port."""
    return cast(Billing, hub.system("billing"))


def receivables(hub: Hub, erp: str | None) -> ErpReceivables:
    """The ERP's receivables, or a case naming what is missing."""
    port = hub.erp(erp)
    if not isinstance(port, ErpReceivables):
        raise BusinessRuleError(
            f"the ERP system '{port.name}' keeps no receivables the hub can write, so the project is not "
            "billed (no invoice is sent that the ERP could not record); route the project to an ERP that "
            "does and resubmit",
            code="billing.system_missing",
            owner=Owner.INTEGRATION,
            system=port.name,
        )
    return port


def row(conn: sa.Connection, key: str) -> dict[str, Any] | None:
    """A billing invoice by its key."""
    found = conn.execute(sa.select(billing_invoice).where(billing_invoice.c.key == key)).mappings().first()
    return dict(found) if found is not None else None


def schedule_of(conn: sa.Connection, project: str) -> dict[str, Any] | None:
    """A project's billing schedule."""
    found = (
        conn.execute(sa.select(billing_schedule).where(billing_schedule.c.project == project))
        .mappings()
        .first()
    )
    return dict(found) if found is not None else None


def line_dict(
    description: str, amount: Decimal, quantity: Decimal = Decimal(1), ref: str = ""
) -> dict[str, str]:
    """One planned invoice line as JSON: ``amount`` is the unit amount, already in the currency's unit."""
    return {
        "description": description,
        "quantity": str(quantity),
        "unit_amount": str(amount),
        "source_ref": ref,
    }


def line_total_minor(line: dict[str, str], currency: str) -> int:
    """A planned line's amount in minor units, rounded once as the billing system rounds it."""
    return to_minor(Decimal(line["unit_amount"]) * Decimal(line["quantity"]), currency)


def canonical(inv: dict[str, Any]) -> Invoice:
    """A planned invoice row as the canonical invoice the billing port takes."""
    currency = str(inv["currency"])
    return Invoice(
        source_system="q2c",
        source_id=str(inv["key"]),
        customer_id=str(inv["customer_id"]),
        currency=currency,
        legal_entity=None,
        lines=[
            InvoiceLine(
                description=line["description"],
                quantity=Decimal(line["quantity"]),
                unit_amount=Money.of(line["unit_amount"], currency),
                project_id=str(inv["project"]),
                source_ref=line.get("source_ref") or None,
            )
            for line in inv["lines"]
        ],
    )


def issue(hub: Hub, key: str) -> dict[str, Any]:
    """Create, finalize and send a planned invoice (idempotent by its key), then settle it in the ERP."""
    inv = hub.read(row, key)
    if inv is None:
        raise KeyError(key)
    sched = hub.read(schedule_of, str(inv["project"]))
    if sched is None or not sched.get("billing_customer"):
        raise BusinessRuleError(
            f"project {inv['project']} has no billing schedule with a billing customer",
            code="billing.contract_incomplete",
            owner=Owner.SALES_OPS,
            record=str(inv["project"]),
        )
    if inv["sent_at"] is None:
        port = billing(hub)
        billing_id = port.create_invoice(canonical(inv), str(sched["billing_customer"]), key)
        hub.tx(_record_issued, key, billing_id, port.finalize_invoice(billing_id))
    settle_erp(hub, key)
    return hub.read(row, key) or {}


def _record_issued(conn: sa.Connection, key: str, billing_id: str, issued: IssuedInvoice) -> None:
    inv = row(conn, key) or {}
    status = issued.status.value
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "billing_id": billing_id,
        "number": issued.number,
        "total_minor": issued.amount_total.to_minor(),
        "tax_minor": issued.tax.to_minor(),
        "issue_date": issued.issue_date or now.date(),
        "due_date": issued.due_date,
        "sent_at": inv.get("sent_at") or now,
        "error": None,
    }
    if RANK.get(status, 0) > int(inv["state_rank"]) or inv["status"] in ("planned", "failed"):
        values.update(status=status, state_rank=max(RANK.get(status, 0), int(inv["state_rank"])))
        values["payment_status"] = inv.get("payment_status") or ("paid" if status == "paid" else "unpaid")
    conn.execute(sa.update(billing_invoice).where(billing_invoice.c.key == key).values(**values))
    trigger = inv.get("trigger_at")
    if trigger is not None:
        trigger = trigger if trigger.tzinfo else trigger.replace(tzinfo=UTC)
        repo.insert_ignore(
            conn,
            kpi_sample,
            {
                "kpi": "invoice_cycle_seconds",
                "subject": key,
                "value": max((now - trigger).total_seconds(), 0.0),
                "labels": {"kind": inv["kind"], "project": inv["project"]},
                "at": now,
            },
        )


def _set(conn: sa.Connection, /, key: str, **values: Any) -> None:
    conn.execute(sa.update(billing_invoice).where(billing_invoice.c.key == key).values(**values))


def settle_erp(hub: Hub, key: str) -> None:
    """Bring the ERP in line with the invoice: the AR invoice, its payment, the credit memo of a void."""
    inv = hub.read(row, key)
    if inv is None or inv["billing_id"] is None or inv["number"] is None or inv["sent_at"] is None:
        return  # not issued yet: issuing settles it
    project = hub.read(
        lambda c: (
            c.execute(sa.select(project_registry).where(project_registry.c.canonical_id == inv["project"]))
            .mappings()
            .first()
        )
    )
    if project is None:
        return
    erp = receivables(hub, project["erp"])
    currency = str(inv["currency"])
    master = hub.erp(project["erp"]).master_data()
    currency_id = master.currencies.get(currency)
    if currency_id is None:
        raise BusinessRuleError(
            f"the ERP has no currency {currency} for invoice {inv['number']}",
            code="billing.ar_rejected",
            owner=Owner.FINANCE,
            record=key,
        )
    lines = [
        (line["description"], from_minor(line_total_minor(line, currency), currency)) for line in inv["lines"]
    ]
    total = from_minor(int(inv["total_minor"] or 0), currency)
    tax = from_minor(int(inv["tax_minor"] or 0), currency)
    if sum((a for _, a in lines), Decimal(0)) + tax != total and lines:
        # The billing system's total wins (e.g. a subscription invoice's own lines): one line for it.
        lines = [(f"Invoice {inv['number']}", total - tax)]
    ar = ArInvoice(
        external_id=str(inv["billing_id"]),
        number=inv["number"],
        customer=str(project["customer_erp_id"]),
        project=str(project["erp_job_id"]) if project["erp_job_id"] else None,
        subsidiary=str(project["subsidiary"]),
        currency=currency_id,
        tran_date=inv["issue_date"] or datetime.now(UTC).date(),
        due_date=inv["due_date"],
        lines=lines,
        tax=tax,
        memo=f"{inv['kind'].replace('_', ' ')} {inv['period'] or ''} — {project['name']}".strip()[:250],
    )
    if inv["erp_id"] is None:
        erp_id = erp.upsert_ar_invoice(ar)
        hub.tx(_set, key, erp_id=erp_id, erp=project["erp"])
        inv["erp_id"] = erp_id
    if inv["status"] == "paid" and inv["erp_payment_id"] is None:
        paid = from_minor(int(inv["paid_minor"] or inv["total_minor"] or 0), currency)
        payment = ArPayment(
            external_id=f"{inv['billing_id']}-paid",
            invoice=str(inv["erp_id"]),
            customer=ar.customer,
            subsidiary=ar.subsidiary,
            currency=currency_id,
            amount=paid,
            tran_date=(inv["paid_at"] or datetime.now(UTC)).date(),
        )
        hub.tx(_set, key, erp_payment_id=erp.apply_payment(payment))
    if inv["status"] == "void" and inv["erp_void_id"] is None:
        hub.tx(_set, key, erp_void_id=erp.void_ar_invoice(ar, f"{inv['billing_id']}-void"))


# -- write-backs (F8) -----------------------------------------------------------------------
def billing_status(conn: sa.Connection, project: str, today: date) -> BillingStatus | None:
    """What the CRM shows about a project's billing, from the invoices as last applied."""
    reg = conn.execute(
        sa.select(project_registry.c.customer_id, project_registry.c.currency).where(
            project_registry.c.canonical_id == project
        )
    ).first()
    if reg is None or reg.customer_id is None:
        return None
    account_projects = sa.select(project_registry.c.canonical_id).where(
        project_registry.c.customer_id == reg.customer_id
    )
    rows = [
        dict(r)
        for r in conn.execute(
            sa.select(billing_invoice).where(billing_invoice.c.project.in_(account_projects))
        ).mappings()
    ]
    currency = str(reg.currency)

    def billed(items: list[dict[str, Any]]) -> Money:
        minor = sum(
            int(r["total_minor"] or 0) - int(r["refunded_minor"] or 0)
            for r in items
            if r["status"] in BILLED and r["currency"] == currency
        )
        return Money.from_minor(minor, currency)

    own = [r for r in rows if r["project"] == project]
    issued = sorted(
        (r for r in own if r["number"] is not None), key=lambda r: (r["sent_at"] or r["planned_at"], r["key"])
    )
    last = issued[-1] if issued else None
    unpaid = [r["issue_date"] for r in own if r["status"] in ("open", "uncollectible") and r["issue_date"]]
    return BillingStatus(
        opportunity_id=project,
        account_id=str(reg.customer_id),
        billed=billed(own),
        account_billed=billed(rows),
        last_invoice=last["number"] if last else None,
        last_status=last["status"] if last else None,
        payment_status=last["payment_status"] if last else None,
        days_outstanding=max(((today - d).days for d in unpaid), default=0),
    )


def write_back(hub: Hub, project: str) -> dict[str, Any]:
    """Billed to date, last invoice and payment status to the CRM deal and account; billed to date to the PSA."""
    status = hub.read(billing_status, project, datetime.now(UTC).date())
    if status is None:
        return {}
    crm = hub.crm()
    if isinstance(crm, CrmBillingFeedback):
        crm.write_back_billing(status)
    sched = hub.read(schedule_of, project)
    psa = hub.psa()
    if sched is not None and isinstance(psa, PsaBilling):
        psa.write_back_billed(str(sched["psa_workspace_id"]), status.billed)
    return {"billed": str(status.billed.amount), "currency": status.billed.currency}


__all__ = [
    "BILLED",
    "RANK",
    "billing",
    "billing_status",
    "canonical",
    "issue",
    "line_dict",
    "line_total_minor",
    "receivables",
    "row",
    "schedule_of",
    "settle_erp",
    "write_back",
]
