"""F6 — milestone → invoice: a milestone signed off in the PSA becomes a billing event, then an
invoice in the billing system (finalized and sent), then an AR invoice in the ERP.

:func:`poll_milestones` looks at the scheduled milestones in the PSA; each one
completed there is accepted once into the inbox as a ``milestone.completed``
event (de-duplicated by the milestone id) and dispatched. The flow plans the
invoice on the hub (its key is the milestone's), issues it and settles it in
the ERP, and writes billed-to-date back to the CRM and the PSA. The body is one
checkpointed step: every write in it is idempotent (the billing system's
idempotency key, look-up by the key in its metadata, ERP records by external id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.flows import intake
from quote2cash.flows.billing.common import issue, line_dict, write_back
from quote2cash.model import BusinessEvent, from_minor
from quote2cash.ports import PsaBilling
from quote2cash.runtime.flow import Flow, Run, declare
from quote2cash.runtime.hub import Hub
from quote2cash.store import repo
from quote2cash.store.tables import billing_invoice, billing_milestone, billing_schedule

FLOW = "invoice_milestone"
COMPLETED = "milestone.completed"


def invoice_key(story_id: str) -> str:
    """The hub's key (and billing idempotency key) of a milestone's invoice."""
    return f"Q2C-MS-{story_id}"


def poll_milestones(hub: Hub, *, dispatch_now: bool = True) -> int:
    """Accept a ``milestone.completed`` event for each scheduled milestone signed off in the PSA."""
    scheduled = hub.read(
        lambda c: {
            str(r.story_id): (str(r.project), str(r.psa_workspace_id))
            for r in c.execute(
                sa.select(
                    billing_milestone.c.story_id,
                    billing_milestone.c.project,
                    billing_schedule.c.psa_workspace_id,
                )
                .join(billing_schedule, billing_schedule.c.project == billing_milestone.c.project)
                .where(billing_milestone.c.status == "scheduled")
            )
        }
    )
    psa = hub.psa(FLOW)
    if not scheduled or not isinstance(psa, PsaBilling):
        return 0
    accepted = 0
    for m in psa.milestones({ws for _, ws in scheduled.values()}):
        if not m.completed or m.id not in scheduled:
            continue
        event = BusinessEvent(
            type=COMPLETED,
            source=psa.name,
            subject=f"Milestone/{m.id}",
            time=m.completed_at or datetime.now(UTC),
            correlation_id=f"Milestone/{m.id}",
            payload={
                "story_id": m.id,
                "workspace_id": m.workspace_id,
                "project": scheduled[m.id][0],
                "name": m.name,
                "completed_at": (m.completed_at or datetime.now(UTC)).isoformat(),
            },
        )
        accepted += intake.deliver(hub, f"milestone:{m.id}:completed", event)
    if accepted and dispatch_now:
        intake.dispatch(hub)
    return accepted


def _plan(conn: sa.Connection, story_id: str, approved_at: datetime) -> dict[str, Any]:
    ms = (
        conn.execute(sa.select(billing_milestone).where(billing_milestone.c.story_id == story_id))
        .mappings()
        .first()
    )
    if ms is None:
        raise BusinessRuleError(
            f"milestone {story_id} is not on any billing schedule",
            code="billing.no_milestones",
            owner=Owner.PMO,
            record=story_id,
        )
    sched = (
        conn.execute(sa.select(billing_schedule).where(billing_schedule.c.project == ms["project"]))
        .mappings()
        .first()
    )
    key = invoice_key(story_id)
    currency = str(ms["currency"])
    repo.insert_ignore(
        conn,
        billing_invoice,
        {
            "key": key,
            "kind": "milestone",
            "project": ms["project"],
            "customer_id": sched["customer_id"] if sched else "",
            "period": approved_at.strftime("%Y-%m"),
            "currency": currency,
            "subtotal_minor": ms["amount_minor"],
            "lines": [
                line_dict(
                    f"Milestone: {ms['name']}",
                    from_minor(int(ms["amount_minor"]), currency),
                    ref=f"milestone:{story_id}",
                )
            ],
            "status": "planned",
            "trigger_at": approved_at,
            "planned_at": datetime.now(UTC),
        },
    )
    conn.execute(
        sa.update(billing_milestone)
        .where(billing_milestone.c.story_id == story_id)
        .values(status="invoiced", invoice_key=key, approved_at=approved_at)
    )
    return {"key": key, "project": str(ms["project"])}


def steps(run: Run) -> dict[str, Any]:
    """Bill one signed-off milestone."""
    story_id = str(run.payload.get("story_id") or run.subject.partition("/")[2])
    approved_at = datetime.fromisoformat(
        str(run.payload.get("completed_at") or datetime.now(UTC).isoformat())
    )
    with run.hub.engine.begin() as conn:
        planned = _plan(conn, story_id, approved_at)
    inv = issue(run.hub, planned["key"])
    write_back(run.hub, planned["project"])
    return {
        "milestone": story_id,
        "project": planned["project"],
        "invoice": inv.get("billing_id"),
        "number": inv.get("number"),
        "erp_invoice": inv.get("erp_id"),
    }


INVOICE_MILESTONE = declare(
    Flow(
        name=FLOW,
        triggers=(COMPLETED,),
        writes=("billing", "erp", "crm", "psa"),
        replayable=True,
        body=steps,
        latency_kpi="milestone_to_invoice_seconds",
        one_step=True,
    )
)

__all__ = ["COMPLETED", "FLOW", "INVOICE_MILESTONE", "invoice_key", "poll_milestones", "steps"]
