"""F4 / F5 — approved time and expenses to the ERP, as a scheduled micro-batch.

One run: pull every change since the cursor into the ledger; reverse what
changed after it was posted; validate the rest (quarantining what breaks a
rule, holding or re-dating what falls in a closed period); aggregate; post in
batches; record the KPIs. Each step either commits its own progress
idempotently (pull, send) or runs as one checkpointed transaction (reversals,
validation + assignment), so a crash anywhere resumes without posting twice.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from quote2cash.errors import HubError, UsageError
from quote2cash.flows.work_assign import Classifier, build_postings, classify_staged, run_figures
from quote2cash.flows.work_intake import pull_changes
from quote2cash.flows.work_posting import FLOW, as_posting, confirm, pending_postings, plan_reversals
from quote2cash.ports import Posting, WorkKind
from quote2cash.rules.work import MasterData, Period
from quote2cash.rules.work import Project as WorkProject
from quote2cash.runtime.hub import current
from quote2cash.runtime.logs import correlated
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import exception_case, kpi_sample, posting, project_registry, work_entry

KINDS: tuple[WorkKind, ...] = ("time", "expense")
log = structlog.get_logger("quote2cash.flows.post_approved_work")


@DBOS.step()
def pull_step(kind: WorkKind, run_id: str, raw: dict[str, Any]) -> dict[str, int]:
    """Pull changes since the cursor, classifying new entries (commits page by page, with the cursor)."""
    hub = current()
    return pull_changes(hub, Classifier(kind, master_data(raw), hub.config.posting, run_id, run_id))


def classify_and_build(conn: sa.Connection, kind: WorkKind, run_id: str, raw: dict[str, Any]) -> int:
    """Classify entries waiting for it, then create this run's postings; returns how many postings."""
    hub = current()
    md = master_data(raw)
    classify_staged(conn, Classifier(kind, md, hub.config.posting, run_id, run_id))
    return build_postings(conn, kind, run_id, md, hub.config.posting.mode)


@DBOS.step()
def master_data_step(kind: WorkKind) -> dict[str, Any]:
    """Reference data for validation, as plain data (it is checkpointed).

    Subsidiaries and cost centres are those active in any ERP a project is
    routed to; accounting periods are the default ERP's.
    """
    hub = current()
    projects = hub.read(lambda c: [dict(r) for r in c.execute(sa.select(project_registry)).mappings()])
    psa = hub.psa().master_data(kind, {str(p["psa_workspace_id"]) for p in projects})
    # Read afresh each run: finance opens and closes periods between runs.
    erps = {name: hub.erp(name).master_data(fresh=True) for name in hub.erp_names()}
    default = erps[hub.config.erp_routing.default or hub.config.system_for("erp")]
    return {
        "projects": [{k: (str(v) if isinstance(v, datetime) else v) for k, v in p.items()} for p in projects],
        "tasks": psa.task_states,
        "roles": psa.roles,
        "names": psa.names,
        "periods": [(p.name, p.start.isoformat(), p.end.isoformat(), p.closed) for p in default.periods],
        "subsidiaries": sorted(
            {s for md in erps.values() for s, active in md.subsidiaries.items() if active}
        ),
        "departments": sorted({d for md in erps.values() for d in md.active_departments}),
    }


def master_data(raw: dict[str, Any]) -> MasterData:
    """Rebuild the rules' snapshot from the checkpointed plain data."""
    hub = current()
    return MasterData(
        projects={
            p["psa_workspace_id"]: WorkProject(
                canonical_id=p["canonical_id"],
                name=p["name"],
                workspace_id=p["psa_workspace_id"],
                erp_job_id=p["erp_job_id"],
                legal_entity=p["legal_entity"],
                subsidiary=p["subsidiary"],
                currency=p["currency"],
                billing_model=p["billing_model"],
                rate_card=p["rate_card"],
                department=p["department"],
                open_for_time=bool(p["open_for_time"]),
                open_for_expenses=bool(p["open_for_expenses"]),
            )
            for p in raw["projects"]
        },
        task_states={k: (v[0], v[1]) for k, v in raw["tasks"].items()},
        roles=raw["roles"],
        rate_cards={code: (card.currency, dict(card.rates)) for code, card in hub.config.rate_cards.items()},
        periods=[Period(n, date.fromisoformat(s), date.fromisoformat(e), c) for n, s, e, c in raw["periods"]],
        active_subsidiaries=set(raw["subsidiaries"]),
        active_departments=set(raw["departments"]),
        legal_entities=set(hub.legal_entities),
        names=raw["names"],
    )


@DBOS.step()
def send_step(kind: WorkKind, correlation_id: str) -> dict[str, int]:
    """Send every pending posting to its project's ERP; each batch's outcome is committed before the next.

    Summary postings go in the ERP's bulk size; detail postings a few at a
    time (the posting config's ``detail_concurrency``), so a worker killed at
    any moment loses at most those few answers, and re-sending them is an
    upsert of the same records.
    """
    hub = current()
    config = hub.config
    pending = hub.read(pending_postings, kind)
    projects = hub.read(
        lambda c: {
            r.canonical_id: (r.erp_job_id, r.department, r.erp)
            for r in c.execute(
                sa.select(
                    project_registry.c.canonical_id,
                    project_registry.c.erp_job_id,
                    project_registry.c.department,
                    project_registry.c.erp,
                )
            )
        }
    )
    default_erp = config.erp_routing.default or config.system_for("erp")
    calls_before = sum(hub.erp(n).calls for n in hub.erp_names())
    by_erp: dict[str, list[Posting]] = defaultdict(list)
    for p in pending:
        job, dept, erp = projects.get(p["project"], (None, None, None))
        by_erp[erp or default_erp].append(as_posting(p, job, dept, config.posting.accounts))
    sent = failed = 0
    for erp_name, postings in sorted(by_erp.items()):
        erp = hub.erp(erp_name)
        size = (
            erp.capabilities.bulk_size
            if config.posting.mode == "summary"
            else config.posting.detail_concurrency
        )
        for start in range(0, len(postings), size):
            batch = postings[start : start + size]
            results = erp.post(batch)
            shadow = config.erp_routing.shadow
            if shadow and shadow != erp_name:
                _shadow_post(hub, shadow, batch, correlation_id)
            with hub.engine.begin() as conn:
                ok, bad = confirm(conn, kind, results, correlation_id)
            sent += ok
            failed += bad
    calls = sum(hub.erp(n).calls for n in hub.erp_names()) - calls_before
    return {"postings_sent": sent, "postings_failed": failed, "erp_calls": calls}


def _shadow_post(hub: Any, shadow: str, batch: list[Posting], correlation_id: str) -> None:
    """Dual-post to the shadow ERP: its answers are logged, never decide the outcome."""
    try:
        results = hub.erp(shadow).post(batch)
        refused = [r for r in results if r.error]
        log.info("posting.shadow", erp=shadow, sent=len(results), refused=len(refused))
    except HubError as exc:
        log.warning("posting.shadow_failed", erp=shadow, code=exc.code, correlation_id=correlation_id)


def _latency_seconds(conn: sa.Connection) -> sa.ColumnElement[float]:
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", posting.c.posted_at - work_entry.c.seen_at), sa.Float)
    return sa.cast(
        (sa.func.julianday(posting.c.posted_at) - sa.func.julianday(work_entry.c.seen_at)) * 86400.0,
        sa.Float,
    )


def record_kpis(
    conn: sa.Connection, kind: str, run_id: str, sla_hours: float, quarantined: dict[str, int]
) -> dict[str, Any]:
    """Approval → posted latency and % within SLA for the entries this run posted."""
    query = (
        sa.select(_latency_seconds(conn))
        .select_from(work_entry.join(posting, posting.c.key == work_entry.c.posting_key))
        .where(
            posting.c.run_id == run_id,
            posting.c.status == "posted",
            work_entry.c.kind == kind,
            work_entry.c.status == "assigned",
        )
    )
    latencies = [v for v in conn.execute(query).scalars().all() if v is not None]
    latencies.sort()
    figures: dict[str, Any] = {"posted_entries": len(latencies)}
    if latencies:
        n = len(latencies)
        sla = sla_hours * 3600
        figures.update(
            approval_to_posted_p50_s=round(latencies[min(n - 1, int(0.50 * n))], 3),
            approval_to_posted_p95_s=round(latencies[min(n - 1, int(0.95 * n))], 3),
            posted_within_sla_pct=round(100.0 * bisect.bisect_right(latencies, sla) / n, 2),
        )
    samples = {f"{kind}.{k}": float(v) for k, v in figures.items()}
    samples.update({f"{kind}.quarantined.{code}": float(n) for code, n in quarantined.items()})
    now = repo.now()
    for name, value in samples.items():
        repo.upsert(
            conn,
            kpi_sample,
            {"kpi": name, "subject": run_id, "value": value, "labels": {"kind": kind}, "at": now},
            ["kpi", "subject"],
        )
    return figures


def resolve_cases(conn: sa.Connection, kind: str) -> int:
    """Close the cases of entries that have now been posted (fixed in the PSA, period reopened)."""
    prefix = f"{kind}/"
    open_ids = [
        subject[len(prefix) :]
        for (subject,) in conn.execute(
            sa.select(exception_case.c.subject).where(
                exception_case.c.flow == FLOW,
                exception_case.c.status.in_(cases.OPEN_STATES),
                exception_case.c.subject.startswith(prefix),
            )
        )
    ]
    resolved = 0
    for i in range(0, len(open_ids), 500):
        # Two look-ups by primary key (a join would let the planner scan the ledger).
        # Filtered on status here, not in SQL: with it the planner prefers the (kind, status)
        # index and walks every assigned entry of the ledger instead of 500 primary keys.
        assigned: dict[str, str] = {
            str(sid): str(key)
            for sid, key, status in conn.execute(
                sa.select(work_entry.c.source_id, work_entry.c.posting_key, work_entry.c.status).where(
                    work_entry.c.kind == kind, work_entry.c.source_id.in_(open_ids[i : i + 500])
                )
            )
            if status == "assigned"
        }
        done = set(
            conn.execute(
                sa.select(posting.c.key).where(
                    posting.c.key.in_(set(assigned.values())), posting.c.status == "posted"
                )
            ).scalars()
        )
        posted = [prefix + sid for sid, key in assigned.items() if key in done]
        if posted:
            resolved += conn.execute(
                sa.update(exception_case)
                .where(
                    exception_case.c.flow == FLOW,
                    exception_case.c.status.in_(cases.OPEN_STATES),
                    exception_case.c.subject.in_(posted),
                )
                .values(
                    status="resolved",
                    resolution={"by": f"flow:{FLOW}", "note": "entry posted"},
                    updated_at=repo.now(),
                )
            ).rowcount
    return resolved


def _finish(conn: sa.Connection, run_id: str, kind: str, summary: dict[str, Any]) -> None:
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action=f"{kind}.posting_run",
        subject=run_id,
        correlation_id=run_id,
        systems=current().erp_names(),
        after=summary,
    )


@DBOS.workflow()
def post_approved_work(kind: WorkKind, run_id: str) -> dict[str, Any]:
    """One micro-batch run for ``time`` or ``expense``."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    hub = current()
    with correlated(run_id, flow=FLOW, kind=kind):
        raw = master_data_step(kind)
        pulled = pull_step(kind, run_id, raw)
        reversals = hub.tx(plan_reversals, kind, run_id, raw["periods"])
        built = hub.tx(classify_and_build, kind, run_id, raw)
        sent = send_step(kind, run_id)
        stats = hub.tx(run_figures, kind, run_id)
        kpis = hub.tx(record_kpis, kind, run_id, hub.config.posting.sla_hours, stats["by_reason"])
        resolved = hub.tx(resolve_cases, kind)
        summary = {
            "run_id": run_id,
            "kind": kind,
            "mode": hub.config.posting.mode,
            "pulled": {k: v for k, v in pulled.items() if v},
            "reversal_postings": reversals,
            "valid": stats["valid"],
            "quarantined": stats["quarantined"],
            "held": stats["held"],
            "redated": stats["redated"],
            "redated_ids": stats["redated_ids"],
            "quarantined_by_reason": stats["by_reason"],
            "postings_created": built + reversals,
            "cases_resolved": resolved,
            **sent,
            **kpis,
        }
        hub.tx(_finish, run_id, kind, summary)
        log.info("posting.completed", **{k: v for k, v in summary.items() if isinstance(v, int)})
        return summary


@DBOS.workflow()
def scheduled_posting(scheduled_time: datetime, context: Any) -> None:
    """The cron entry point: one run per kind, in order."""
    stamp = scheduled_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    for kind in KINDS:
        post_approved_work(kind, f"{FLOW}:{kind}:{stamp}")


def run_id_now(kind: str) -> str:
    """A run id for an on-demand run."""
    return f"{FLOW}:{kind}:{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"


def post_now(kind: str, run_id: str | None = None) -> dict[str, Any]:
    """Run one micro-batch now and wait for it (``q2c post time --now``)."""
    hub = current()
    run_id = run_id or run_id_now(kind)
    with SetWorkflowID(run_id):
        handle = hub.queue("posting").enqueue(post_approved_work, kind, run_id)
    result: dict[str, Any] = handle.get_result()
    return result
