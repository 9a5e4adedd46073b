"""F7 — the T&M and retainer run of a billing period (a month).

One run, three steps:

1. **Plan** (one transaction, checkpointed with it): for every T&M and retainer
   project, the approved billable time dated up to the period's end that no
   invoice holds yet, valued at the project's rate card; one invoice line per
   project × role × month of the work (a retainer: its fee, and the overage
   when the time's value exceeds it). Each invoice is a ``billing_invoice``
   row, and each entry it bills an ``invoiced_work`` row keyed by the entry:
   an entry is locked by exactly one invoice, so time is never billed twice,
   however often a run is repeated or resumed. Time approved after the run is
   not in it and goes to the next one.
2. **Issue** (at least once): each planned invoice is created with its key as
   the idempotency key (and found by that key in its metadata before a create),
   finalized, sent and settled in the ERP; a refusal marks the invoice failed
   with a case, and the next run (or a resubmission) issues it again.
3. **Write back** billed to date to the CRM and the PSA.

Time without a rate on the project's rate card stays unbilled, with a case,
and shows as billing leakage once its period has closed.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from quote2cash.errors import BusinessRuleError, HubError, Owner
from quote2cash.flows.billing.common import issue, line_dict, line_total_minor, write_back
from quote2cash.model import from_minor, round_money, to_minor
from quote2cash.runtime.flow import as_case_error
from quote2cash.runtime.hub import current
from quote2cash.runtime.logs import correlated
from quote2cash.store import audit, cases
from quote2cash.store.tables import billing_invoice, billing_schedule, invoiced_work, work_entry

FLOW = "bill_period"
log = structlog.get_logger(f"quote2cash.flows.{FLOW}")
#: The posting rules' reason for billable time on a retainer (they bill only T&M time).
RETAINER_QUARANTINE = "time.billable_mismatch"
#: Invoices issued at once (the billing system's limiter bounds the calls further).
PARALLEL = 8


def bounds(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period."""
    start = datetime.strptime(period, "%Y-%m").date()
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return start, end


def _hours(minutes: int) -> Decimal:
    return (Decimal(minutes) / 60).quantize(Decimal("0.01"))


def _tm_lines(groups: dict[tuple[str, str], dict[str, Any]], currency: str) -> list[dict[str, str]]:
    lines = []
    for (role, month), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rate: Decimal = g["rate"]
        text = f"{role}, {month}: {_hours(g['minutes'])} h at {rate.normalize():f} {currency}/h"
        if g["minutes"] % 60 == 0:
            lines.append(line_dict(text, rate, Decimal(g["minutes"] // 60), f"time:{role}:{month}"))
        else:
            amount = round_money(rate * Decimal(g["minutes"]) / 60, currency)
            lines.append(line_dict(text, amount, ref=f"time:{role}:{month}"))
    return lines


def plan(
    conn: sa.Connection, period: str, run_id: str, roles: dict[str, str], cards: dict[str, Any]
) -> dict[str, Any]:
    """Plan the period's invoices and lock the time they bill (one transaction)."""
    start, end = bounds(period)
    schedules = [
        dict(s)
        for s in conn.execute(
            sa.select(billing_schedule)
            .where(billing_schedule.c.model.in_(("time_and_materials", "retainer")))
            .where(billing_schedule.c.start_date <= end)
            .order_by(billing_schedule.c.project)
        ).mappings()
    ]
    by_ws = {str(s["psa_workspace_id"]): s for s in schedules}
    locked = sa.select(invoiced_work.c.source_id).where(invoiced_work.c.kind == work_entry.c.kind)
    entries: Any = (
        conn.execute(
            sa.select(work_entry)
            .where(
                work_entry.c.kind == "time",
                work_entry.c.approved.is_(True),
                work_entry.c.deleted.is_(False),
                work_entry.c.billable.is_(True),
                work_entry.c.work_date <= end,
                work_entry.c.status != "withdrawn",
                # Retainer time is billable here though the posting rules quarantine it as such.
                sa.or_(work_entry.c.status != "quarantined", work_entry.c.reason_code == RETAINER_QUARANTINE),
                work_entry.c.workspace_id.in_(list(by_ws)),
                ~work_entry.c.source_id.in_(locked),
            )
            .order_by(work_entry.c.source_id)
        ).mappings()
        if by_ws
        else []
    )
    per_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        per_project[by_ws[str(e["workspace_id"])]["project"]].append(dict(e))
    now = datetime.now(UTC)
    planned, unrated, locked_n = [], 0, 0
    for sched in schedules:
        project, currency = str(sched["project"]), str(sched["currency"])
        card = cards.get(str(sched["rate_card"] or f"STD-{currency}"))
        rates: dict[str, Decimal] = dict(card.rates) if card is not None and card.currency == currency else {}
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        rated, missing = [], []
        for e in per_project.get(project, []):
            role = roles.get(str(e["user_id"]), "")
            rate = rates.get(role)
            if rate is None:
                missing.append((e, role))
                continue
            month = e["work_date"].strftime("%Y-%m")
            g = groups.setdefault((role, month), {"rate": rate, "minutes": 0})
            g["minutes"] += int(e["minutes"])
            rated.append((e, role, month, rate))
        if missing:
            unrated += len(missing)
            cases.open_case(
                conn,
                BusinessRuleError(
                    f"{len(missing)} approved billable time entries of project {project} have no rate on rate card "
                    f"{sched['rate_card']} for role(s) {', '.join(sorted({r or '(none)' for _, r in missing}))}; "
                    "they stay unbilled until the rate card has the role",
                    code="billing.rate_unknown",
                    owner=Owner.FINANCE,
                    record=project,
                    details={"entries": [str(e["source_id"]) for e, _ in missing][:200]},
                ),
                flow=FLOW,
                subject=f"Project/{project}/{period}",
                correlation_id=run_id,
            )
        lines = _tm_lines(groups, currency)
        kind = str(sched["model"])
        if kind == "retainer":
            covered = sched["end_date"] is None or sched["end_date"] >= start
            key = f"Q2C-RT-{project}-{period}"
            if (
                not covered
                or conn.execute(sa.select(billing_invoice.c.key).where(billing_invoice.c.key == key)).first()
            ):
                continue  # outside the contract, or this period's retainer is billed: the time waits
            fee = int(sched["period_minor"])
            used = sum(line_total_minor(x, currency) for x in lines)
            lines = [line_dict(f"Retainer, {period}", from_minor(fee, currency), ref=f"retainer:{period}")]
            if used > fee:
                hours = _hours(sum(g["minutes"] for g in groups.values()))
                lines.append(
                    line_dict(
                        f"Overage, {period}: {hours} h worth {from_minor(used, currency)} {currency} "
                        f"beyond the {from_minor(fee, currency)} {currency} retainer",
                        from_minor(used - fee, currency),
                        ref=f"overage:{period}",
                    )
                )
        elif not lines:
            continue
        else:
            taken = conn.execute(
                sa.select(sa.func.count()).where(
                    billing_invoice.c.project == project,
                    billing_invoice.c.period == period,
                    billing_invoice.c.kind == kind,
                )
            ).scalar_one()
            key = f"Q2C-TM-{project}-{period}" + (f"-{taken + 1}" if taken else "")
        subtotal = sum(line_total_minor(x, currency) for x in lines)
        conn.execute(
            sa.insert(billing_invoice).values(
                key=key,
                kind=kind,
                project=project,
                customer_id=sched["customer_id"],
                period=period,
                currency=currency,
                subtotal_minor=subtotal,
                lines=lines,
                status="planned",
                run_id=run_id,
                planned_at=now,
            )
        )
        if rated:
            conn.execute(
                sa.insert(invoiced_work),
                [
                    {
                        "kind": "time",
                        "source_id": e["source_id"],
                        "invoice_key": key,
                        "project": project,
                        "role": role,
                        "period": month,
                        "minutes": int(e["minutes"]),
                        "amount_minor": to_minor(rate * Decimal(int(e["minutes"])) / 60, currency),
                        "currency": currency,
                        "invoiced_at": now,
                    }
                    for e, role, month, rate in rated
                ],
            )
        locked_n += len(rated)
        planned.append(key)
    return {"planned": planned, "entries_locked": locked_n, "entries_unrated": unrated}


@DBOS.step()
def roles_step() -> dict[str, str]:
    """Each PSA user's role (the rate card's key), read once per run."""
    return current().psa(FLOW).master_data("time", set()).roles


def _fail(conn: sa.Connection, key: str, error: HubError, run_id: str) -> int:
    conn.execute(
        sa.update(billing_invoice)
        .where(billing_invoice.c.key == key)
        .values(status="failed", error=error.to_dict())
    )
    return cases.open_case(conn, error, flow=FLOW, subject=f"Invoice/{key}", correlation_id=run_id)


def issue_one(key: str, run_id: str) -> tuple[str, str]:
    """Issue one planned invoice; a failure marks it failed with a case (the next run tries again)."""
    hub = current()
    try:
        inv = issue(hub, key)
    except Exception as exc:  # every failure of an invoice is a case, never a silent skip
        error = as_case_error(exc, FLOW)
        with hub.engine.begin() as conn:
            _fail(conn, key, error, run_id)
        log.warning("billing.invoice_failed", key=key, code=error.code)
        return key, "failed"
    with hub.engine.begin() as conn:
        cases.close_cases(conn, FLOW, f"Invoice/{key}", {"by": f"flow:{FLOW}", "note": "invoice issued"})
    return key, str(inv.get("status"))


@DBOS.step()
def issue_step(run_id: str) -> dict[str, Any]:
    """Issue every planned (or earlier failed) period invoice; at least once, each call idempotent."""
    hub = current()
    keys = hub.read(
        lambda c: [
            str(k)
            for (k,) in c.execute(
                sa.select(billing_invoice.c.key)
                .where(billing_invoice.c.status.in_(("planned", "failed")))
                .where(billing_invoice.c.kind.in_(("time_and_materials", "retainer")))
                .order_by(billing_invoice.c.key)
            )
        ]
    )
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = dict(pool.map(lambda k: issue_one(k, run_id), keys))
    return {
        "issued": sum(1 for s in results.values() if s != "failed"),
        "failed": sum(1 for s in results.values() if s == "failed"),
    }


@DBOS.step()
def write_back_step(projects: list[str]) -> int:
    """Billed to date of every project the run billed, to the CRM and the PSA."""
    hub = current()
    with ThreadPoolExecutor(PARALLEL) as pool:
        return sum(1 for r in pool.map(lambda p: write_back(hub, p), projects) if r)


def _finish(conn: sa.Connection, run_id: str, summary: dict[str, Any]) -> None:
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action="billing.period_run",
        subject=run_id,
        correlation_id=run_id,
        systems=["billing", "erp", "crm", "psa"],
        after=summary,
    )


def _case(conn: sa.Connection, run_id: str, period: str, error: HubError) -> int:
    return cases.open_case(conn, error, flow=FLOW, subject=f"BillingRun/{period}", correlation_id=run_id)


@DBOS.workflow()
def bill_period(period: str, run_id: str) -> dict[str, Any]:
    """One T&M and retainer run for a period; ends completed, or with a case for the run."""
    hub = current()
    with correlated(run_id, flow=FLOW, period=period):
        try:
            roles = roles_step()
            planned = hub.tx(plan, period, run_id, roles, hub.config.rate_cards)
            issued = issue_step(run_id)
            projects = hub.read(
                lambda c: sorted(
                    {
                        str(p)
                        for (p,) in c.execute(
                            sa.select(billing_invoice.c.project).where(billing_invoice.c.run_id == run_id)
                        )
                    }
                )
            )
            written = write_back_step(projects)
        except Exception as exc:  # the run itself failed: a case, with the period to re-run
            error = as_case_error(exc, FLOW)
            case_id = hub.tx(_case, run_id, period, error)
            return {
                "status": "exception",
                "run_id": run_id,
                "period": period,
                "case": case_id,
                "code": error.code,
            }
        summary = {
            "status": "completed",
            "run_id": run_id,
            "period": period,
            "invoices_planned": len(planned["planned"]),
            "entries_locked": planned["entries_locked"],
            "entries_unrated": planned["entries_unrated"],
            **issued,
            "projects_written_back": written,
        }
        hub.tx(_finish, run_id, summary)
        hub.tx(
            lambda c: cases.close_cases(
                c, FLOW, f"BillingRun/{period}", {"by": f"flow:{FLOW}", "note": "run completed"}
            )
        )
        log.info("billing.completed", **{k: v for k, v in summary.items() if isinstance(v, int)})
        return summary


def previous_period(now: datetime) -> str:
    """The month before ``now``'s (the period a run on the 1st bills)."""
    return (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@DBOS.workflow()
def scheduled_billing(scheduled_time: datetime, context: Any) -> None:
    """The cron entry point: bill the month that just closed."""
    period = previous_period(scheduled_time.astimezone(UTC))
    bill_period(period, f"{FLOW}:{period}:{scheduled_time.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}")


def run_id_now(period: str) -> str:
    """A run id for an on-demand run."""
    return f"{FLOW}:{period}:{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"


def bill_now(period: str, run_id: str | None = None) -> dict[str, Any]:
    """Run the period now and wait for it (``q2c bill --period``)."""
    bounds(period)
    run_id = run_id or run_id_now(period)
    with SetWorkflowID(run_id):
        handle = DBOS.start_workflow(bill_period, period, run_id)
    result: dict[str, Any] = handle.get_result()
    return result


__all__ = [
    "FLOW",
    "bill_now",
    "bill_period",
    "bounds",
    "plan",
    "previous_period",
    "run_id_now",
    "scheduled_billing",
]
