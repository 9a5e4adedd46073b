"""F9 for cash: billing-system invoices vs ERP AR invoices, and CRM closed-won deals vs PSA projects.

The same shape as the reconciliation of time (:mod:`quote2cash.flows.reconcile_work`):
figures per line, a break for each difference with its cause, an exception case
per break, and the report as JSON and CSV.

- ``billing``: the period's finalized invoices in the billing system (those the
  hub billed or heard of) against the ERP's AR invoices of the period, matched by
  the billing id the ERP invoice carries as external id: count, amount, tax and
  status (a paid invoice has its payment applied, a void one is credited).
- ``projects``: deals won in the CRM against the PSA's projects, by the
  opportunity reference the project carries.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.flows.billing.common import billing, receivables
from quote2cash.flows.billing.periods import bounds
from quote2cash.model import from_minor
from quote2cash.ports import ArInvoiceRecord, PsaBilling
from quote2cash.runtime.hub import Hub
from quote2cash.store import cases
from quote2cash.store.tables import billing_invoice

FLOW = "reconcile_billing"
CODES = {
    "invoice_not_in_erp": ("recon.invoice_not_in_erp", Owner.FINANCE),
    "invoice_not_billed": ("recon.invoice_not_billed", Owner.FINANCE),
    "amount_mismatch": ("recon.invoice_mismatch", Owner.FINANCE),
    "tax_mismatch": ("recon.invoice_mismatch", Owner.FINANCE),
    "status_mismatch": ("recon.invoice_mismatch", Owner.FINANCE),
    "deal_without_project": ("recon.deal_without_project", Owner.SALES_OPS),
    "project_without_deal": ("recon.project_without_deal", Owner.PMO),
}


@dataclass
class Break:
    """One difference, with its cause."""

    kind: str
    record: str
    cause: str
    billing_id: str | None = None
    erp_id: str | None = None
    amount: str = "0"


@dataclass
class Line:
    """Billing vs ERP figures for one currency (``billing``), or the counts of one side (``projects``)."""

    currency: str
    billing_count: int = 0
    billing_amount: str = "0"
    billing_tax: str = "0"
    erp_count: int = 0
    erp_amount: str = "0"
    erp_tax: str = "0"
    status: str = "ok"


@dataclass
class Report:
    """The result of one reconciliation."""

    kind: str
    period: str
    lines: list[Line]
    breaks: list[Break]
    cases_opened: int = 0
    files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Breaks by kind."""
        out: dict[str, int] = defaultdict(int)
        for b in self.breaks:
            out[b.kind] += 1
        return dict(out)


def reconcile_billing(hub: Hub, period: str, *, out: Path | None = None, open_cases: bool = True) -> Report:
    """Billing-system invoices vs ERP AR invoices of a month."""
    start, end = bounds(period)
    known = hub.read(
        lambda c: {
            str(r.billing_id): (str(r.key), str(r.project), r.erp)
            for r in c.execute(
                sa.select(
                    billing_invoice.c.billing_id,
                    billing_invoice.c.key,
                    billing_invoice.c.project,
                    billing_invoice.c.erp,
                ).where(billing_invoice.c.billing_id.is_not(None))
            )
        }
    )
    billed = [i for i in billing(hub).invoices_between(start, end) if i.hub_key or i.id in known]
    erps = sorted({e for _, _, e in known.values() if e} or {hub.config.system_for("erp")})
    ar: dict[str, ArInvoiceRecord] = {}
    for name in erps:
        for held in receivables(hub, name).ar_invoices(start, end):
            ar[held.external_id or f"erp:{held.erp_id}"] = held
    lines: dict[str, Line] = {}
    sums: dict[str, list[int | Decimal]] = defaultdict(
        lambda: [0, Decimal(0), Decimal(0), 0, Decimal(0), Decimal(0)]
    )
    breaks: list[Break] = []
    for inv in billed:
        total, tax = from_minor(inv.total_minor, inv.currency), from_minor(inv.tax_minor, inv.currency)
        s = sums[inv.currency]
        s[0], s[1], s[2] = int(s[0]) + 1, Decimal(s[1]) + total, Decimal(s[2]) + tax
        record = ar.pop(inv.id) if inv.id in ar else None
        name = inv.number or inv.id
        if record is None:
            breaks.append(
                Break(
                    "invoice_not_in_erp",
                    name,
                    f"invoice {name} ({total} {inv.currency}) has no AR invoice in the ERP",
                    inv.id,
                    None,
                    str(total),
                )
            )
            continue
        s[3], s[4], s[5] = int(s[3]) + 1, Decimal(s[4]) + record.amount, Decimal(s[5]) + record.tax
        if record.amount != total:
            breaks.append(
                Break(
                    "amount_mismatch",
                    name,
                    f"billed {total} {inv.currency}, the ERP holds {record.amount}",
                    inv.id,
                    record.erp_id,
                    str(total - record.amount),
                )
            )
        if record.tax != tax:
            breaks.append(
                Break(
                    "tax_mismatch",
                    name,
                    f"tax billed {tax} {inv.currency}, the ERP holds {record.tax}",
                    inv.id,
                    record.erp_id,
                    str(tax - record.tax),
                )
            )
        if inv.status == "void" and record.credited < record.amount:
            breaks.append(
                Break(
                    "status_mismatch",
                    name,
                    "void in billing, not credited in the ERP",
                    inv.id,
                    record.erp_id,
                    str(record.amount - record.credited),
                )
            )
        elif inv.status == "paid" and record.paid < record.amount - record.credited:
            breaks.append(
                Break(
                    "status_mismatch",
                    name,
                    "paid in billing, the ERP has no payment applied",
                    inv.id,
                    record.erp_id,
                    str(record.amount - record.paid),
                )
            )
        elif inv.status == "open" and (record.paid > 0 or record.credited > 0):
            breaks.append(
                Break(
                    "status_mismatch",
                    name,
                    "open in billing, paid or credited in the ERP",
                    inv.id,
                    record.erp_id,
                    str(record.paid + record.credited),
                )
            )
    for ext, left in ar.items():
        breaks.append(
            Break(
                "invoice_not_billed",
                left.number or left.erp_id,
                f"AR invoice {left.number or left.erp_id} has no invoice in the billing system",
                ext,
                left.erp_id,
                str(left.amount),
            )
        )
    for currency, s in sorted(sums.items()):
        lines[currency] = Line(currency, int(s[0]), str(s[1]), str(s[2]), int(s[3]), str(s[4]), str(s[5]))
    broken = {b.billing_id for b in breaks}
    for inv in billed:
        if inv.id in broken:
            lines[inv.currency].status = "break"
    return _finish(hub, Report("billing", period, list(lines.values()), breaks), out, open_cases)


def reconcile_projects(hub: Hub, period: str, *, out: Path | None = None, open_cases: bool = True) -> Report:
    """Deals won in the CRM (closed in the month) vs the PSA's projects."""
    start, end = bounds(period)
    crm = hub.crm()
    deals = {}
    for e in crm.won_deals(None).events:
        opp = str(e.event.payload.get("Id") or e.event.subject.partition("/")[2])
        close = e.event.payload.get("CloseDate")
        day = datetime.fromisoformat(str(close)[:10]).date() if close else e.event.time.date()
        deals[opp] = (day, str(e.event.payload.get("Name") or opp))
    psa = hub.psa()
    projects = psa.projects() if isinstance(psa, PsaBilling) else []
    by_ref = {p.reference: p for p in projects if p.reference}
    breaks = [
        Break("deal_without_project", opp, f"deal '{name}' won on {day} has no PSA project")
        for opp, (day, name) in sorted(deals.items())
        if start <= day <= end and opp not in by_ref
    ]
    breaks += [
        Break(
            "project_without_deal",
            p.id,
            f"PSA project '{p.name}' carries deal {p.reference}, which is not won in the CRM",
        )
        for ref, p in sorted(by_ref.items())
        if ref not in deals
    ]
    in_period = [o for o, (d, _) in deals.items() if start <= d <= end]
    line = Line(
        "deals",
        len(in_period),
        "0",
        "0",
        sum(1 for o in in_period if o in by_ref),
        "0",
        "0",
        "break" if breaks else "ok",
    )
    return _finish(hub, Report("projects", period, [line], breaks), out, open_cases)


def _finish(hub: Hub, report: Report, out: Path | None, open_cases: bool) -> Report:
    if open_cases and report.breaks:
        with hub.engine.begin() as conn:
            report.cases_opened = _open_cases(conn, report)
    if out is not None:
        report.files = write(report, out)
    return report


def _open_cases(conn: sa.Connection, report: Report) -> int:
    for b in report.breaks:
        code, owner = CODES[b.kind]
        err = BusinessRuleError(
            f"{report.kind} {report.period}: {b.cause}",
            code=code,
            owner=owner,
            record=b.record,
            details=asdict(b),
        )
        subject = f"recon:{report.kind}:{report.period}:{b.kind}:{b.record}"
        cases.open_case(conn, err, flow=FLOW, subject=subject, correlation_id=None)
    return len(report.breaks)


def write(report: Report, folder: Path) -> list[str]:
    """The report as JSON (everything) and CSV (lines, breaks)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"recon-{report.kind}-{report.period}"
    data: dict[str, Any] = {
        "kind": report.kind,
        "period": report.period,
        "breaks_by_kind": report.counts(),
        "lines": [asdict(x) for x in report.lines],
        "breaks": [asdict(b) for b in report.breaks],
        "generated_at": datetime.now(UTC).isoformat(),
    }
    Path(f"{stem}.json").write_text(json.dumps(data, indent=2))
    for suffix, rows, cls in ((".csv", report.lines, Line), ("-breaks.csv", report.breaks, Break)):
        with open(f"{stem}{suffix}", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(cls.__dataclass_fields__))
            for x in rows:
                writer.writerow(list(asdict(x).values()))
    return [f"{stem}.json", f"{stem}.csv", f"{stem}-breaks.csv"]


__all__ = ["Break", "Line", "Report", "reconcile_billing", "reconcile_projects", "write"]
