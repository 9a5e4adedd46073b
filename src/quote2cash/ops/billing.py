"""Billing services: bill a period, look for signed-off milestones, reconcile cash, billing KPIs.

The KPIs (SPEC §5):

- invoice cycle time: milestone approved in the PSA → invoice sent, p50/p95 seconds;
- billing leakage: approved billable time not invoiced once its month has closed,
  per project and client, per currency;
- DSO: what is still receivable over what was billed in the last ``window`` days,
  times those days, per currency (from the invoice and payment feedback), with
  the average days from issue to payment beside it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import UsageError
from quote2cash.flows import outbox
from quote2cash.flows.billing import periods
from quote2cash.flows.billing.milestones import poll_milestones
from quote2cash.flows.billing.reconcile import Report, reconcile_billing, reconcile_projects
from quote2cash.model import from_minor
from quote2cash.ops._args import period as month
from quote2cash.ops._source import Source, read
from quote2cash.ops.kpis import _pct
from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import billing_invoice, invoiced_work, kpi_sample, project_registry, work_entry


def bill(hub: Hub, period: str) -> dict[str, Any]:
    """Relay activations, bill signed-off milestones, then run the period's T&M and retainer billing."""
    outbox.relay(hub)
    poll_milestones(hub)
    return periods.bill_now(month(period))


def reconcile(hub: Hub, kind: str, period: str, *, out: Path | None = None) -> Report:
    """``billing`` (billing vs ERP invoices) or ``projects`` (CRM closed-won vs PSA projects) for a month."""
    if kind == "billing":
        return reconcile_billing(hub, month(period), out=out)
    if kind == "projects":
        return reconcile_projects(hub, month(period), out=out)
    raise UsageError(f"unknown reconciliation {kind!r}: use billing or projects")


def leakage(source: Source, as_of: date | None = None) -> dict[str, Any]:
    """Approved billable time not invoiced after its month closed, per project and client."""
    return read(source, _leakage, as_of or datetime.now(UTC).date())


def _leakage(conn: sa.Connection, as_of: date) -> dict[str, Any]:
    first_open = as_of.replace(day=1)
    locked = sa.select(invoiced_work.c.source_id).where(invoiced_work.c.kind == work_entry.c.kind)
    rows = conn.execute(
        sa.select(
            project_registry.c.canonical_id,
            project_registry.c.name,
            project_registry.c.customer_id,
            work_entry.c.currency,
            sa.func.count(),
            sa.func.sum(work_entry.c.minutes),
            sa.func.sum(work_entry.c.amount_minor),
        )
        .join(project_registry, project_registry.c.psa_workspace_id == work_entry.c.workspace_id)
        .where(
            work_entry.c.kind == "time",
            work_entry.c.approved.is_(True),
            work_entry.c.deleted.is_(False),
            work_entry.c.billable.is_(True),
            work_entry.c.status != "withdrawn",
            project_registry.c.billing_model.in_(("time_and_materials", "retainer")),
            work_entry.c.work_date < first_open,
            ~work_entry.c.source_id.in_(locked),
        )
        .group_by(
            project_registry.c.canonical_id,
            project_registry.c.name,
            project_registry.c.customer_id,
            work_entry.c.currency,
        )
        .order_by(project_registry.c.canonical_id)
    )
    projects: list[dict[str, Any]] = []
    clients: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    for project, name, client, currency, n, minutes, minor in rows:
        projects.append(
            {
                "project": project,
                "name": name,
                "client": client,
                "currency": currency,
                "entries": int(n),
                "hours": str(round(int(minutes or 0) / 60, 2)),
                "amount": str(from_minor(int(minor or 0), currency)),
            }
        )
        clients[str(client)][currency] += int(minor or 0)
        totals[currency] += int(minor or 0)
    return {
        "as_of": as_of.isoformat(),
        "by_currency": {c: str(from_minor(v, c)) for c, v in sorted(totals.items())},
        "projects": projects,
        "clients": {
            k: {c: str(from_minor(v, c)) for c, v in sorted(cur.items())}
            for k, cur in sorted(clients.items())
        },
    }


def kpis(source: Source, as_of: date | None = None, window: int = 90) -> dict[str, Any]:
    """Invoices sent, billed and received by currency, cycle time, leakage and DSO."""
    return read(source, _kpis, as_of or datetime.now(UTC).date(), window)


def _kpis(conn: sa.Connection, as_of: date, window: int) -> dict[str, Any]:
    cycle = [
        float(v)
        for (v,) in conn.execute(
            sa.select(kpi_sample.c.value).where(kpi_sample.c.kpi == "invoice_cycle_seconds")
        )
    ]
    invoices = [dict(r) for r in conn.execute(sa.select(billing_invoice)).mappings()]
    sent = [i for i in invoices if i["number"] is not None]
    billed: dict[str, int] = defaultdict(int)
    received: dict[str, int] = defaultdict(int)
    open_ar: dict[str, int] = defaultdict(int)
    recent: dict[str, int] = defaultdict(int)
    days_to_pay: list[float] = []
    since = as_of - timedelta(days=window)
    for i in sent:
        cur, total = i["currency"], int(i["total_minor"] or 0)
        if i["status"] in ("open", "paid", "uncollectible"):
            billed[cur] += total - int(i["refunded_minor"] or 0)
            if i["issue_date"] and i["issue_date"] >= since:
                recent[cur] += total
        if i["status"] in ("open", "uncollectible"):
            open_ar[cur] += total
        if i["status"] == "paid":
            received[cur] += int(i["paid_minor"] or 0)
            if i["paid_at"] and i["issue_date"]:
                days_to_pay.append(float((i["paid_at"].date() - i["issue_date"]).days))

    def money(values: dict[str, int]) -> dict[str, str]:
        return {c: str(from_minor(v, c)) for c, v in sorted(values.items())}

    return {
        "invoices_sent": len(sent),
        "invoices_by_status": dict(sorted(_count(i["status"] for i in invoices).items())),
        "payments_failed": sum(1 for i in sent if i["payment_status"] == "failed"),
        "billed_by_currency": money(billed),
        "received_by_currency": money(received),
        "receivable_by_currency": money(open_ar),
        "invoice_cycle": {"invoices": len(cycle), "p50_s": _pct(cycle, 50), "p95_s": _pct(cycle, 95)},
        "dso_days": {c: round(open_ar[c] / recent[c] * window, 1) for c in sorted(recent) if recent[c]},
        "average_days_to_pay": round(sum(days_to_pay) / len(days_to_pay), 1) if days_to_pay else None,
        "leakage": _leakage(conn, as_of),
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[str(v)] += 1
    return out


__all__ = ["bill", "kpis", "leakage", "reconcile"]
