"""Send pending postings to the ERP each project is routed to, in batches,
and dual-post them to the shadow ERP where routing names one.

A posting's key is its external id in the ERP, so a batch sent again after a
crash is an upsert of the same records; each batch's answer is committed
(:func:`.confirm.confirm`) before the next batch is sent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS

from quote2cash.config import AccountsConfig
from quote2cash.errors import BusinessRuleError, HubError, Owner
from quote2cash.flows.posting.confirm import confirm, pending_postings
from quote2cash.flows.posting.internal import internal_projects
from quote2cash.flows.posting.work_type import FLOW, WorkType, work_type
from quote2cash.ports import ErpMasterData, ErpRefusals, Posting, PostingResult
from quote2cash.runtime.hub import Hub, current
from quote2cash.store.tables import posting, project_registry, xref

log = structlog.get_logger(f"quote2cash.flows.{FLOW}")


def as_posting(p: dict[str, Any], job: str | None, dept: str | None, accounts: AccountsConfig) -> Posting:
    """A ``posting`` row as the ERP port's :class:`Posting`, with the accounts it moves."""
    work: WorkType = work_type(p["kind"])
    return Posting(
        key=p["key"],
        kind=work.kind,
        mode=p["mode"],
        project=p["project"],
        erp_project_id=job,
        task_id=p["task_id"],
        legal_entity=p["legal_entity"],
        subsidiary=p["subsidiary"],
        department=dept,
        period=p["period"],
        tran_date=p["tran_date"],
        billable=bool(p["billable"]),
        minutes=int(p["minutes"]),
        amount_minor=int(p["amount_minor"]),
        currency=p["currency"],
        entries=int(p["entries"]),
        accounts=work.accounts(accounts, bool(p["billable"])),
        reversal_of=p["reversal_of"],
    )


@DBOS.step()
def send_step(work: WorkType, correlation_id: str) -> dict[str, int]:
    """Send every pending posting to its ERP (its project's, or the new one past a hard cutover);
    each batch's outcome is committed before the next.

    Summary postings go in the ERP's bulk size; detail postings a few at a
    time (the posting config's ``detail_concurrency``), so a worker killed at
    any moment loses at most those few answers, and re-sending them is an
    upsert of the same records.
    """
    hub = current()
    config = hub.config
    pending = hub.read(pending_postings, work)
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
    erps = {name: hub.erp(name).master_data() for name in hub.erp_names()}
    projects.update(
        {p["canonical_id"]: (None, p["department"], p["erp"]) for p in internal_projects(hub, erps)}
    )
    default_erp = config.erp_routing.default or config.system_for("erp")
    calls_before = sum(hub.erp(n).calls for n in hub.erp_names())

    def home(p: dict[str, Any]) -> str:
        return projects.get(p["project"], (None, None, None))[2] or default_erp

    # Past a hard cutover a posting goes to another ERP than its project's: the project's id there.
    moved = [p for p in pending if p["erp"] and p["erp"] != home(p)]
    elsewhere = {
        system: _jobs_in(hub, system, {p["project"] for p in moved if p["erp"] == system})
        for system in {p["erp"] for p in moved}
    }
    by_erp: dict[str, list[Posting]] = defaultdict(list)
    missing: list[PostingResult] = []
    for p in pending:
        job, dept, _ = projects.get(p["project"], (None, None, None))
        # An entry's own cost centre, where it names one, wins over its project's.
        dept = p["department"] or dept
        target = p["erp"] or home(p)
        if target != home(p):
            job = elsewhere[target].get(p["project"])
            if job is None:
                missing.append(_project_missing(p, target, home(p)))
                continue
            dept = department_in(erps, home(p), target, dept)
        by_erp[target].append(as_posting(p, job, dept, config.posting.accounts))
    sent = failed = 0
    if missing:
        with hub.engine.begin() as conn:
            failed += confirm(conn, work, missing, correlation_id)[1]
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
                _shadow_post(hub, shadow, batch, correlation_id, erps, erp_name)
            with hub.engine.begin() as conn:
                ok, bad = confirm(conn, work, results, correlation_id)
            sent += ok
            failed += bad
    calls = sum(hub.erp(n).calls for n in hub.erp_names()) - calls_before
    return {"postings_sent": sent, "postings_failed": failed, "erp_calls": calls}


@DBOS.step()
def refusals_step(work: WorkType, correlation_id: str) -> dict[str, int]:
    """Record the refusals an ERP answered after the write (a file import job), as
    :func:`send_step` records answers: the posting fails, its entries go to a case."""
    hub = current()
    refused = 0
    for name in hub.erp_names():
        erp = hub.erp(name)
        if name == hub.config.erp_routing.shadow or not erp.capabilities.answers_later:
            continue
        if not isinstance(erp, ErpRefusals):
            continue
        results = erp.rejections(work.kind)
        if not results:
            continue
        with hub.engine.begin() as conn:
            still_posted = set(
                conn.execute(
                    sa.select(posting.c.key).where(
                        posting.c.key.in_([r.key for r in results]), posting.c.status == "posted"
                    )
                ).scalars()
            )
            refused += confirm(conn, work, [r for r in results if r.key in still_posted], correlation_id)[1]
    return {"postings_refused_later": refused}


def department_in(
    erps: dict[str, ErpMasterData], home: str, target: str, department: str | None
) -> str | None:
    """A department id of ERP ``home`` as ERP ``target`` numbers the department of the same name."""
    if department is None or home not in erps or target not in erps:
        return department
    name = next((n for n, i in erps[home].departments.items() if i == department), None)
    return erps[target].departments.get(name or "", department)


def _jobs_in(hub: Hub, system: str, projects: set[str]) -> dict[str, str]:
    """The ids an ERP gave the hub's projects (those lead-to-project created there)."""
    wanted = sorted(projects)
    return hub.read(
        lambda c: {
            str(canonical): str(external)
            for canonical, external in c.execute(
                sa.select(xref.c.canonical_id, xref.c.external_id).where(
                    xref.c.system == system, xref.c.object_type == "job", xref.c.canonical_id.in_(wanted)
                )
            )
        }
    )


def _project_missing(p: dict[str, Any], target: str, home: str) -> PostingResult:
    error = BusinessRuleError(
        f"posting {p['key']} ({p['tran_date']}) falls after {p['legal_entity']}'s cutover to ERP {target}, "
        f"which does not hold project {p['project']} (it is on {home}); create the project there, "
        "then resubmit the entries",
        code="erp.project_missing",
        owner=Owner.FINANCE,
        system=target,
        record=p["key"],
    )
    return PostingResult(p["key"], None, error.to_dict())


def _shadow_post(
    hub: Hub,
    shadow: str,
    batch: list[Posting],
    correlation_id: str,
    erps: dict[str, ErpMasterData],
    home: str,
) -> None:
    """Dual-post to the shadow ERP: its answers are logged, never decide the outcome.

    A copy names the project by the shadow's own id where the hub created the
    project there (lead-to-project does in shadow mode), else by the system of
    record's (a project loaded into the shadow by a migration keeps those ids).
    """
    jobs = _jobs_in(hub, shadow, {p.project for p in batch})
    batch = [
        replace(
            p,
            erp_project_id=jobs.get(p.project, p.erp_project_id),
            department=department_in(erps, home, shadow, p.department),
        )
        for p in batch
    ]
    try:
        results = hub.erp(shadow).post(batch)
        refused = [r for r in results if r.error]
        log.info("posting.shadow", erp=shadow, sent=len(results), refused=len(refused))
    except HubError as exc:
        log.warning("posting.shadow_failed", erp=shadow, code=exc.code, correlation_id=correlation_id)
