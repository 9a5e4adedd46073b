"""F4 / F5 — approved time and expenses to the ERP, as a scheduled micro-batch.

One run: read the reference data; pull every change since the cursor into the
ledger (:mod:`.pull`); reverse what changed after it was posted and gather the
rest into postings (:mod:`.aggregate`), once each entry is validated and
assigned (:mod:`.classify`), quarantining what breaks a rule and holding or
re-dating what falls in a closed period; post in batches (:mod:`.send`,
:mod:`.confirm`); record the KPIs (:mod:`.kpis`). Each step either commits its
own progress idempotently (pull, send) or runs as one checkpointed
transaction (reversals, validation + assignment), so a crash anywhere resumes
without posting twice.

DBOS registers workflows and steps by function name: the names below are
those of runs already in DBOS's tables, and must not change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from quote2cash.flows.posting.aggregate import build_postings, plan_reversals, run_figures
from quote2cash.flows.posting.classify import Classifier, classify_staged
from quote2cash.flows.posting.confirm import resolve_cases
from quote2cash.flows.posting.internal import internal_projects
from quote2cash.flows.posting.kpis import record_kpis
from quote2cash.flows.posting.pull import pull_changes
from quote2cash.flows.posting.send import refusals_step, send_step
from quote2cash.flows.posting.work_type import FLOW, WORK_TYPES, WorkType, work_type
from quote2cash.model import FinancialDimensions, Project
from quote2cash.ports import WorkKind
from quote2cash.rules.work import MasterData, Period, ProjectRefs
from quote2cash.runtime.hub import current
from quote2cash.runtime.logs import correlated
from quote2cash.store import audit
from quote2cash.store.tables import project_registry

log = structlog.get_logger(f"quote2cash.flows.{FLOW}")
#: The ``source_system`` of a project read from the hub's own project registry.
REGISTRY = "q2c"


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
    projects += internal_projects(hub, erps)
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
        "department_ids": {name: dict(md.departments) for name, md in erps.items()},
        "default_erp": hub.config.erp_routing.default or hub.config.system_for("erp"),
    }


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # checkpointed master data carries it as text


def registered_project(row: dict[str, Any]) -> tuple[Project, ProjectRefs]:
    """A ``project_registry`` row as the canonical project and the ids posting needs.

    The registry keeps what lead-to-project learnt about the project; a row
    written before the registry kept the customer and start date has None there.
    """
    project = Project(
        source_system=REGISTRY,
        source_id=row["canonical_id"],
        opportunity_id=row["canonical_id"],
        customer_id=row.get("customer_id"),
        name=row["name"],
        billing_model=row["billing_model"],
        currency=row["currency"],
        start_date=_day(row.get("start_date")),
        dimensions=FinancialDimensions(
            legal_entity=row["legal_entity"], subsidiary=row["subsidiary"], department=row["department"]
        ),
    )
    refs = ProjectRefs(
        workspace_id=row["psa_workspace_id"],
        erp_project_id=row["erp_job_id"] or "",
        erp=row["erp"],
        rate_card=row["rate_card"],
        open_for_time=bool(row["open_for_time"]),
        open_for_expenses=bool(row["open_for_expenses"]),
    )
    return project, refs


def master_data(raw: dict[str, Any]) -> MasterData:
    """Rebuild the rules' snapshot from the checkpointed plain data.

    The workflow calls it once per run (again when a resumed run replays), and
    hands the snapshot to the steps that validate: nothing is rebuilt per entry.
    """
    hub = current()
    return MasterData(
        projects={p["psa_workspace_id"]: registered_project(p) for p in raw["projects"]},
        task_states={k: (v[0], v[1]) for k, v in raw["tasks"].items()},
        roles=raw["roles"],
        rate_cards={code: (card.currency, dict(card.rates)) for code, card in hub.config.rate_cards.items()},
        periods=[Period(n, date.fromisoformat(s), date.fromisoformat(e), c) for n, s, e, c in raw["periods"]],
        active_subsidiaries=set(raw["subsidiaries"]),
        active_departments=set(raw["departments"]),
        legal_entities=set(hub.legal_entities),
        names=raw["names"],
        cost_rates={cur: dict(rates) for cur, rates in hub.config.cost_rates.items()},
        department_ids={
            **raw["department_ids"],
            None: raw["department_ids"].get(raw["default_erp"], {}),
        },
        cutovers=tuple(
            (None if r.legal_entities is None else frozenset(r.legal_entities), r.postings_from, r.system)
            for r in hub.config.erp_routing.rules
            if r.postings_from is not None
        ),
        default_erp=raw["default_erp"],
    )


@DBOS.step()
def pull_step(work: WorkType, run_id: str, md: MasterData) -> dict[str, int]:
    """Pull changes since the cursor, classifying new entries (commits page by page, with the cursor)."""
    hub = current()
    return pull_changes(hub, Classifier(work, md, hub.config.posting, run_id, run_id))


def classify_and_build(conn: sa.Connection, work: WorkType, run_id: str, md: MasterData) -> int:
    """Classify entries waiting for it, then create this run's postings; returns how many postings."""
    hub = current()
    classify_staged(conn, Classifier(work, md, hub.config.posting, run_id, run_id))
    return build_postings(conn, work, run_id, md, hub.config.posting.mode)


def _finish(conn: sa.Connection, run_id: str, work: WorkType, summary: dict[str, Any]) -> None:
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action=f"{work.kind}.posting_run",
        subject=run_id,
        correlation_id=run_id,
        systems=current().erp_names(),
        after=summary,
    )


@DBOS.workflow()
def post_approved_work(kind: WorkKind, run_id: str) -> dict[str, Any]:
    """One micro-batch run for ``time`` or ``expense``."""
    work = work_type(kind)
    hub = current()
    with correlated(run_id, flow=FLOW, kind=kind):
        raw = master_data_step(kind)
        # Step arguments are not checkpointed (outputs are), so the snapshot can be passed as objects.
        md = master_data(raw)
        pulled = pull_step(work, run_id, md)
        reversals = hub.tx(plan_reversals, work, run_id, raw["periods"])
        built = hub.tx(classify_and_build, work, run_id, md)
        sent = send_step(work, run_id) | refusals_step(work, run_id)
        stats = hub.tx(run_figures, work, run_id)
        kpis = hub.tx(record_kpis, work, run_id, hub.config.posting.sla_hours, stats["by_reason"])
        resolved = hub.tx(resolve_cases, work)
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
        hub.tx(_finish, run_id, work, summary)
        log.info("posting.completed", **{k: v for k, v in summary.items() if isinstance(v, int)})
        return summary


@DBOS.workflow()
def scheduled_posting(scheduled_time: datetime, context: Any) -> None:
    """The cron entry point: one run per kind, in order."""
    stamp = scheduled_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    for work in WORK_TYPES.values():
        post_approved_work(work.kind, f"{FLOW}:{work.kind}:{stamp}")


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
