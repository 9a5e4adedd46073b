"""F9 for time and expenses: PSA approved vs ERP posted, by project, legal
entity and period, with every break listed with its cause.

Three sources are compared: what the PSA says is approved for the period, what
the ERP holds (the hub's postings, read back through the ERP port) and the hub's own
ledger of which entry went into which posting — the ledger is what turns a
difference into a cause.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from quote2cash.errors import BusinessRuleError, Owner, UsageError
from quote2cash.flows.posting.internal import internal_projects
from quote2cash.flows.posting.work_type import FLOW as POSTING_FLOW
from quote2cash.flows.posting.work_type import WORK_TYPES
from quote2cash.model import from_minor, round_money
from quote2cash.rules.work import valued
from quote2cash.runtime.hub import Hub, current
from quote2cash.store import cases
from quote2cash.store.tables import posting, project_registry, work_entry

FLOW = "reconcile_work"
CODES = {
    "missing": "recon.missing",
    "duplicated": "recon.duplicated",
    "amount_mismatch": "recon.amount_mismatch",
    "posted_not_approved": "recon.posted_not_approved",
}
OWNERS = {
    "missing": Owner.FINANCE,
    "duplicated": Owner.FINANCE,
    "amount_mismatch": Owner.FINANCE,
    "posted_not_approved": Owner.PMO,
}


@dataclass
class Break:
    """One difference between the PSA and the ERP, with its cause."""

    kind: str  # missing | duplicated | amount_mismatch | posted_not_approved
    project: str
    legal_entity: str
    period: str
    cause: str
    entries: list[str] = field(default_factory=list)
    postings: list[str] = field(default_factory=list)
    amount: str = "0.00"
    #: Open cases that already explain the break (a quarantined or held entry's own case):
    #: it is reported as explained and linked to them, and opens no case of its own.
    explained_by: list[int] = field(default_factory=list)


@dataclass
class Line:
    """PSA vs ERP figures for one project × legal entity × period."""

    project: str
    legal_entity: str
    period: str
    currency: str
    psa_count: int = 0
    psa_hours: str = "0.00"
    psa_amount: str = "0.00"
    erp_count: int = 0
    erp_hours: str = "0.00"
    erp_amount: str = "0.00"
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
        """Breaks by kind (explained ones under ``explained``)."""
        out: dict[str, int] = defaultdict(int)
        for b in self.breaks:
            out["explained" if b.explained_by else b.kind] += 1
        return dict(out)

    @property
    def unexplained(self) -> list[Break]:
        """The breaks no open case explains yet: the ones a person must look at."""
        return [b for b in self.breaks if not b.explained_by]


def _dec(minor: int, currency: str) -> str:
    return str(from_minor(minor, currency))


def _hours(minutes: int) -> str:
    return str((Decimal(minutes) / 60).quantize(Decimal("0.01")))


def _bounds(period: str) -> tuple[date, date]:
    try:
        start = datetime.strptime(period, "%Y-%m").date()
    except ValueError as exc:
        raise UsageError(f"period {period!r} is not YYYY-MM (e.g. 2026-10)") from exc
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return start, end


def reconcile(
    hub: Hub, kind: str, period: str, *, out: Path | None = None, open_cases: bool = True
) -> Report:
    """Compare PSA approved with ERP posted for one kind and period; write CSV/JSON to ``out``."""
    work = WORK_TYPES.get(kind)
    if work is None:
        raise UsageError(f"unknown kind {kind!r}: use time or expenses")
    start, end = _bounds(period)
    registry = hub.read(
        lambda c: {
            r.psa_workspace_id: (r.canonical_id, r.legal_entity, r.currency)
            for r in c.execute(sa.select(project_registry))
        }
    )
    erps = {name: hub.erp(name).master_data() for name in hub.erp_names()}
    for p in internal_projects(hub, erps):
        registry[p["psa_workspace_id"]] = (p["canonical_id"], p["legal_entity"], p["currency"])
    # PSA: approved entries of the period, valued as the hub posts them (non-billable time at cost).
    approved = list(hub.psa().approved_work(work.kind, start, end))
    cost_rates = {cur: dict(rates) for cur, rates in hub.config.cost_rates.items()}
    roles = (
        hub.psa().master_data(work.kind, {str(r["workspace_id"]) for r in approved}).roles
        if cost_rates
        else {}
    )
    psa: dict[str, dict[str, Any]] = {}
    for raw in approved:
        ws = raw["workspace_id"]
        project, le, cur = registry.get(ws, (f"workspace:{ws}", "?", raw["currency"]))
        minutes, amount = raw["minutes"], valued(raw, roles, cost_rates)
        psa[str(raw["id"])] = {
            "key": (project, le, period),
            "minutes": minutes,
            "amount": amount,
            "currency": cur,
        }
    # Hub ledger.
    # Hub ledger: an entry is posted when the posting it is assigned to is.
    ledger = hub.read(
        lambda c: {
            r.source_id: (
                "posted" if r.status == "assigned" and r.posted == "posted" else r.status,
                r.posting_key,
                r.reason_code,
            )
            for r in c.execute(
                sa.select(
                    work_entry.c.source_id,
                    work_entry.c.status,
                    work_entry.c.posting_key,
                    work_entry.c.reason_code,
                    posting.c.status.label("posted"),
                )
                .select_from(work_entry.outerjoin(posting, posting.c.key == work_entry.c.posting_key))
                .where(
                    work_entry.c.kind == kind, work_entry.c.work_date >= start, work_entry.c.work_date <= end
                )
            )
        }
    )
    hub_postings = hub.read(
        lambda c: {
            r["key"]: dict(r)
            for r in c.execute(
                sa.select(posting).where(posting.c.kind == kind, posting.c.period == period)
            ).mappings()
        }
    )
    # ERP: the hub's postings for the period, read back.
    erp_rows = [
        {
            "id": r.erp_id,
            "key": r.key,
            "project": r.project,
            "subsidiary": r.subsidiary,
            "hours": r.hours,
            "amount": r.amount,
            "entries": r.entries,
        }
        for name in hub.erp_names()
        if name != hub.config.erp_routing.shadow
        for r in hub.erp(name).posted(work.kind, period)
    ]
    le_of = {v: k for k, v in hub.subsidiary_of.items()}
    breaks: list[Break] = []
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in erp_rows:
        by_ref[str(row["key"])].append(row)

    lines: dict[tuple[str, str, str], Line] = {}

    def line(key: tuple[str, str, str], currency: str) -> Line:
        if key not in lines:
            lines[key] = Line(key[0], key[1], key[2], currency)
        return lines[key]

    erp_totals: dict[tuple[str, str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0), Decimal(0)]
    )
    for ref, rows in by_ref.items():
        first = rows[0]
        key = (str(first.get("project")), le_of.get(str(first.get("subsidiary")), "?"), period)
        for row in rows:
            t = erp_totals[key]
            t[0] += Decimal(str(row.get("entries") or 0))
            t[1] += Decimal(str(row.get("hours") or 0))
            t[2] += Decimal(str(row.get("amount") or 0))
        mine = hub_postings.get(ref)
        if len(rows) > 1:
            breaks.append(
                Break(
                    "duplicated",
                    key[0],
                    key[1],
                    period,
                    f"posting {ref} exists {len(rows)} times in the ERP (ids "
                    f"{', '.join(str(r['id']) for r in rows)}); all but one must be reversed",
                    postings=[str(r["id"]) for r in rows],
                    amount=str(first.get("amount")),
                )
            )
        if mine is None:
            breaks.append(
                Break(
                    "posted_not_approved",
                    key[0],
                    key[1],
                    period,
                    f"ERP posting {ref} (id {first['id']}) was not made by the hub for any approved entry",
                    postings=[str(first["id"])],
                    amount=str(first.get("amount")),
                )
            )
        elif Decimal(str(first.get("amount") or 0)) != from_minor(mine["amount_minor"], mine["currency"]):
            breaks.append(
                Break(
                    "amount_mismatch",
                    key[0],
                    key[1],
                    period,
                    f"ERP posting {ref} (id {first['id']}) holds {first.get('amount')} "
                    f"but the hub posted {_dec(mine['amount_minor'], mine['currency'])}: it was changed in the ERP",
                    postings=[str(first["id"])],
                    amount=_dec(mine["amount_minor"], mine["currency"]),
                )
            )
    # Per entry: approved but not in the ERP, and in the ERP but no longer approved.
    missing: dict[tuple[tuple[str, str, str], str], list[str]] = defaultdict(list)
    for sid, e in psa.items():
        status, pkey, reason = ledger.get(sid, ("not pulled", None, None))
        if status == "posted" and pkey in by_ref:
            continue
        if status == "posted":
            cause = f"posting {pkey} is not in the ERP (deleted there?)"
        elif status in ("quarantined", "held"):
            cause = f"{status}: {reason}"
        elif status in ("assigned", "staged"):
            cause = "not posted yet (run the posting)"
        else:
            cause = "not seen by the hub yet (run the posting)"
        missing[(e["key"], cause)].append(sid)
    held = [sid for sid, e in psa.items() if ledger.get(sid, ("",))[0] in ("quarantined", "held")]
    entry_cases = hub.read(cases.open_by_subject, POSTING_FLOW, [f"{kind}/{sid}" for sid in held])
    for (key, cause), ids in missing.items():
        amount = sum(psa[i]["amount"] for i in ids)
        explaining = [entry_cases.get(f"{kind}/{i}") for i in ids]
        breaks.append(
            Break(
                "missing",
                key[0],
                key[1],
                period,
                f"{len(ids)} approved entries: {cause}",
                entries=sorted(ids)[:50],
                amount=_dec(amount, psa[ids[0]]["currency"]),
                explained_by=sorted({c for c in explaining if c is not None})
                if all(c is not None for c in explaining)
                else [],
            )
        )
    stale = [
        sid
        for sid, (status, pkey, _) in ledger.items()
        if status == "posted" and sid not in psa and pkey in by_ref
    ]
    by_project: dict[str, list[str]] = defaultdict(list)
    for sid in stale:
        by_project[str(hub_postings.get(ledger[sid][1], {}).get("project", "?"))].append(sid)
    for project, ids in by_project.items():
        le = next((p["legal_entity"] for p in hub_postings.values() if p["project"] == project), "?")
        breaks.append(
            Break(
                "posted_not_approved",
                project,
                le,
                period,
                f"{len(ids)} entries are posted but no longer approved (or deleted) in the PSA; "
                "the next posting run reverses them",
                entries=sorted(ids)[:50],
            )
        )
    # Figures by project × legal entity × period.
    for e in psa.values():
        ln = line(e["key"], e["currency"])
        ln.psa_count += 1
        ln.psa_hours = str(Decimal(ln.psa_hours) + Decimal(e["minutes"]) / 60)
        ln.psa_amount = str(Decimal(ln.psa_amount) + from_minor(e["amount"], e["currency"]))
    for key, (count, hours, total) in erp_totals.items():
        ln = line(key, "")
        ln.erp_count, ln.erp_hours, ln.erp_amount = int(count), str(hours), str(total)
    broken = {(b.project, b.legal_entity, b.period) for b in breaks if not b.explained_by}
    explained = {(b.project, b.legal_entity, b.period) for b in breaks if b.explained_by}
    for key, ln in lines.items():
        ln.psa_hours = str(Decimal(ln.psa_hours).quantize(Decimal("0.01")))
        ln.psa_amount = str(round_money(Decimal(ln.psa_amount), ln.currency or "USD"))
        ln.erp_hours = str(Decimal(ln.erp_hours).quantize(Decimal("0.01")))
        ln.erp_amount = str(round_money(Decimal(ln.erp_amount), ln.currency or "USD"))
        ln.status = "break" if key in broken else "explained" if key in explained else "ok"
    report = Report(kind, period, sorted(lines.values(), key=lambda x: (x.project, x.legal_entity)), breaks)
    if open_cases and report.unexplained:
        with hub.engine.begin() as conn:
            report.cases_opened = _open_cases(conn, report)
    if out is not None:
        report.files = write(report, out)
    return report


def _open_cases(conn: sa.Connection, report: Report) -> int:
    for b in report.unexplained:
        err = BusinessRuleError(
            f"{report.kind} {report.period}, project {b.project} ({b.legal_entity}): {b.cause}",
            code=CODES[b.kind],
            owner=OWNERS[b.kind],
            system="erp",
            details=asdict(b),
        )
        subject = f"recon:{report.kind}:{report.period}:{b.project}:{b.cause[:60]}"
        cases.open_case(conn, err, flow=FLOW, subject=subject, correlation_id=None)
    return len(report.unexplained)


def write(report: Report, folder: Path) -> list[str]:
    """Write the report as JSON (everything) and CSV (lines and breaks)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"recon-{report.kind}-{report.period}"
    data = {
        "kind": report.kind,
        "period": report.period,
        "breaks_by_kind": report.counts(),
        "lines": [asdict(x) for x in report.lines],
        "breaks": [asdict(b) for b in report.breaks],
        "generated_at": datetime.now(UTC).isoformat(),
    }
    Path(f"{stem}.json").write_text(json.dumps(data, indent=2))
    with open(f"{stem}.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "project",
                "legal_entity",
                "period",
                "currency",
                "psa_count",
                "psa_hours",
                "psa_amount",
                "erp_count",
                "erp_hours",
                "erp_amount",
                "status",
            ]
        )
        for x in report.lines:
            writer.writerow(
                [
                    x.project,
                    x.legal_entity,
                    x.period,
                    x.currency,
                    x.psa_count,
                    x.psa_hours,
                    x.psa_amount,
                    x.erp_count,
                    x.erp_hours,
                    x.erp_amount,
                    x.status,
                ]
            )
    with open(f"{stem}-breaks.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "break",
                "project",
                "legal_entity",
                "period",
                "amount",
                "cause",
                "entries",
                "postings",
                "explained_by",
            ]
        )
        for b in report.breaks:
            writer.writerow(
                [
                    b.kind,
                    b.project,
                    b.legal_entity,
                    b.period,
                    b.amount,
                    b.cause,
                    " ".join(b.entries),
                    " ".join(b.postings),
                    " ".join(f"case {c}" for c in b.explained_by),
                ]
            )
    return [f"{stem}.json", f"{stem}.csv", f"{stem}-breaks.csv"]


@DBOS.workflow()
def scheduled_reconciliation(scheduled_time: datetime, context: Any) -> None:
    """Nightly: reconcile this month and the last, for time and expenses."""
    day = scheduled_time.astimezone(UTC).date()
    previous = day.replace(day=1) - timedelta(days=1)
    for kind in WORK_TYPES:
        for period in (f"{previous:%Y-%m}", f"{day:%Y-%m}"):
            _nightly(kind, period)


@DBOS.step()
def _nightly(kind: str, period: str) -> dict[str, int]:
    return reconcile(current(), kind, period).counts()
