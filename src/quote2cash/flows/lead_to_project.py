"""F2 — lead-to-project: a closed-won deal with approved terms becomes a
customer (F1), an ERP project with financial dimensions, a PSA workspace from
the template of its billing model with phases and milestones, staffing
requests by role and start date, and every new id written back to the CRM.

The flow is a saga. Each step that writes a system records what it wrote in
``flow_run.steps`` and a cross-reference, in the same transaction as the
step's DBOS checkpoint. A business-rule violation stops the flow with an
exception case; on resubmission the flow runs again from the start and every
step already done finds its cross-reference and is skipped, so it resumes from
the failed step. With the ``compensate`` policy the project-side writes are
undone instead.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from quote2cash.errors import BusinessRuleError, HubError, Owner, TransientError
from quote2cash.flows.customer_sync import erp_master_data, remote_step, sync_customer, write_back_account
from quote2cash.model import BusinessEvent, Customer, Opportunity
from quote2cash.runtime.hub import current
from quote2cash.runtime.logs import correlated
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import kpi_sample, outbox, project_registry

FLOW = "lead_to_project"
PSA_SERVICE = "quote2cash"
log = structlog.get_logger("quote2cash.flows.lead_to_project")


def project_key(opportunity_id: str) -> str:
    """The hub's external id of the project in target systems (deterministic)."""
    return f"Q2C-P-{opportunity_id}"


def write_key(system: str, object_type: str, canonical_id: str) -> str:
    """Idempotency-ledger key of the hub's write of a record to a system.

    The row is ``in_doubt`` from just before the call until the result is
    recorded with the cross-reference; one left in doubt is a write a crash
    interrupted, which the next attempt looks up before repeating.
    """
    return f"{system}:{object_type}:{canonical_id}"


def workflow_id(opportunity_id: str, attempt: int = 1) -> str:
    """DBOS workflow id of a run: the same deal never starts two first runs."""
    return f"{FLOW}:{opportunity_id}" + ("" if attempt == 1 else f":r{attempt}")


# -- remote steps (at-least-once; each is idempotent) -----------------------------------
@remote_step()
def fetch_deal(opportunity_id: str) -> dict[str, Any]:
    """The opportunity, its account and its lines, as the CRM holds them now."""
    crm = current().crm
    opp = crm.get("Opportunity", opportunity_id)
    account = crm.get("Account", str(opp["AccountId"]))
    lines = list(
        crm.query(
            "SELECT Id, Description, Quantity, UnitPrice, ServiceDate, Role__c FROM OpportunityLineItem "
            f"WHERE OpportunityId = '{opportunity_id}'"
        )
    )
    return {"opportunity": opp, "account": account, "lines": lines}


@remote_step()
def upsert_erp_project(external_id: str, body: dict[str, Any]) -> str:
    """Create or update the ERP job by the hub's external id."""
    return current().erp.upsert("job", external_id, body)


@remote_step()
def psa_template_id(name: str) -> str:
    """The id of a PSA project template by name."""
    for template in current().psa.list("project_templates"):
        if template.get("name") == name or template.get("title") == name:
            return str(template["id"])
    raise BusinessRuleError(
        f"the PSA has no project template named '{name}'; create it in the PSA or change the "
        "billing_model_to_template value map",
        code="psa.template_missing",
        owner=Owner.PMO,
        system="kantata",
    )


@remote_step()
def ensure_workspace(opportunity_id: str, body: dict[str, Any]) -> str:
    """Find the deal's workspace by its external reference, or create it with the reference.

    The reference is created in the same write as the workspace, and looked up
    before every attempt, so a timed-out create that did land is found, not repeated.
    """
    psa = current().psa
    found = psa.find_subject_by_reference(PSA_SERVICE, "Opportunity", opportunity_id)
    if found is not None:
        return found
    refs = [
        {"service_name": PSA_SERVICE, "service_model": "Opportunity", "service_model_ref": opportunity_id}
    ]
    created = psa.create("workspaces", {**body, "external_references": refs})
    return str(created["id"])


@remote_step()
def ensure_staffing(workspace_id: str, requests: list[dict[str, Any]]) -> int:
    """Create the staffing requests the workspace does not have yet; returns how many exist."""
    psa = current().psa
    roles = {str(r.get("name")): str(r["id"]) for r in psa.list("roles")}
    existing = {str(r.get("notes")) for r in psa.list("resource_requests", workspace_id=workspace_id)}
    for req in requests:
        if req["notes"] in existing:
            continue
        role_id = roles.get(req["role"])
        if role_id is None:
            raise BusinessRuleError(
                f"the deal asks for the role '{req['role']}', which the PSA does not know; add the role "
                "in the PSA or correct the opportunity line",
                code="psa.role_unknown",
                owner=Owner.PMO,
                system="kantata",
                record=req["notes"],
            )
        psa.create(
            "resource_requests",
            {
                "workspace_id": workspace_id,
                "role_id": role_id,
                "start_date": req["start_date"],
                "end_date": req["end_date"],
                "hours": req["hours"],
                "status": "requested",
                "notes": req["notes"],
            },
        )
    return len(requests)


@remote_step()
def write_back_opportunity(opportunity_id: str, fields: dict[str, Any]) -> None:
    """Write ids and status back to the CRM opportunity (idempotent PATCH)."""
    current().crm.update("Opportunity", opportunity_id, fields)


@remote_step()
def undo_project_side(steps: dict[str, Any]) -> list[str]:
    """Compensation: delete the PSA workspace and the ERP job this run created."""
    hub = current()
    undone = []
    for step, client, kind in (("psa_workspace", hub.psa, "workspaces"), ("erp_project", hub.erp, "job")):
        if step not in steps:
            continue
        try:
            client.delete(kind, steps[step]["id"])
        except BusinessRuleError as exc:
            # Already gone (a retried delete whose first answer was lost) is what we wanted.
            if exc.details.get("status") != 404 and "NONEXISTENT" not in exc.code:
                raise
        undone.append(step)
    return undone


# -- bookkeeping transactions -----------------------------------------------------------------
def _record(
    conn: sa.Connection,
    subject: str,
    step: str,
    system: str,
    object_type: str,
    canonical_id: str,
    external_id: str,
    correlation_id: str,
    after: Any,
) -> None:
    repo.put_xref(conn, system, object_type, canonical_id, external_id)
    repo.record_step(conn, FLOW, subject, step, system, external_id)
    repo.ledger_done(conn, write_key(system, object_type, canonical_id), {"id": external_id})
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action=f"{step}.written",
        subject=subject,
        correlation_id=correlation_id,
        systems=[system],
        after=after,
    )


def _complete(
    conn: sa.Connection, subject: str, correlation_id: str, summary: dict[str, Any], causation_id: str
) -> None:
    run = repo.get_run(conn, FLOW, subject)
    repo.finish_run(conn, FLOW, subject, "completed")
    if run is not None and run["trigger_time"] is not None:
        trigger = run["trigger_time"]
        trigger = trigger if trigger.tzinfo else trigger.replace(tzinfo=UTC)
        repo.insert_ignore(
            conn,
            kpi_sample,
            {
                "kpi": "closed_won_to_project_seconds",
                "subject": subject,
                "value": (datetime.now(UTC) - trigger).total_seconds(),
                "labels": {"legal_entity": summary.get("legal_entity")},
                "at": datetime.now(UTC),
            },
        )
    event = BusinessEvent(
        type="project.activated",
        source="quote2cash",
        subject=subject,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=summary,
    )
    conn.execute(
        sa.insert(outbox).values(
            event_id=event.id,
            event_type=event.type,
            subject=subject,
            correlation_id=correlation_id,
            envelope=event.model_dump(mode="json"),
            created_at=datetime.now(UTC),
        )
    )
    cases.close_cases(conn, FLOW, subject, {"by": f"flow:{FLOW}", "note": "flow completed"})
    project = summary["project"]
    repo.upsert(conn, project_registry, {**project, "updated_at": datetime.now(UTC)}, ["canonical_id"])
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action="flow.completed",
        subject=subject,
        correlation_id=correlation_id,
        systems=["netsuite", "kantata", "salesforce"],
        after=summary,
    )


def _fail(
    conn: sa.Connection,
    subject: str,
    correlation_id: str,
    error: dict[str, Any],
    payload: Any,
    compensated: list[str],
) -> int:
    case_id = cases.open_case(
        conn, error, flow=FLOW, subject=subject, correlation_id=correlation_id, payload=payload
    )
    for step in compensated:
        repo.forget_step(conn, FLOW, subject, step)
    repo.finish_run(conn, FLOW, subject, "compensated" if compensated else "exception", error)
    audit.append(
        conn,
        actor=f"flow:{FLOW}",
        action="flow.exception",
        subject=subject,
        correlation_id=correlation_id,
        systems=[],
        after={"case": case_id, "error": error, "compensated": compensated},
    )
    return case_id


# -- the workflow ----------------------------------------------------------------------------
@DBOS.workflow()
def lead_to_project(event: dict[str, Any]) -> dict[str, Any]:
    """Run F2 for one ``opportunity.closed_won`` event (the inbox envelope)."""
    hub = current()
    opp_id = str(event["payload"]["Id"])
    subject = event["subject"]
    corr = event["correlation_id"]
    with correlated(corr, flow=FLOW, subject=subject):
        trigger = datetime.fromisoformat(event["time"])
        run = hub.tx(repo.start_run, FLOW, subject, corr, trigger)
        if run["status"] == "completed":
            return {"status": "completed", "already": True}
        try:
            summary = _run_steps(opp_id, subject, corr)
        except HubError as exc:
            return _stop(exc, subject, corr, event)
        hub.tx(_complete, subject, corr, summary, event["id"])
        log.info("flow.completed", **{k: v for k, v in summary.items() if k.endswith("_id")})
        return {"status": "completed", **summary}


def _stop(exc: HubError, subject: str, corr: str, event: dict[str, Any]) -> dict[str, Any]:
    hub = current()
    if isinstance(exc, TransientError):
        # Retries are exhausted: not a silent failure, a case for the integration team.
        exc = HubError(
            f"{exc.message}; retries exhausted — resubmit once the system is reachable",
            code=exc.code,
            system=exc.system,
            record=exc.record,
            owner=Owner.INTEGRATION,
        )
    compensated: list[str] = []
    if hub.config.policy(FLOW).compensate:
        run = hub.tx(repo.get_run, FLOW, subject)
        steps = dict(run["steps"]) if run else {}
        compensated = undo_project_side(steps)
        opp_id = subject.split("/", 1)[1]
        for step in compensated:
            system, object_type = ("kantata", "workspace") if step == "psa_workspace" else ("netsuite", "job")
            hub.tx(repo.delete_xref, system, object_type, opp_id)
    case_id = hub.tx(_fail, subject, corr, exc.to_dict(), event, compensated)
    log.warning("flow.exception", code=exc.code, case=case_id)
    with contextlib.suppress(HubError):  # the case is recorded; the CRM status is a courtesy
        write_back_opportunity(
            subject.split("/", 1)[1],
            {
                "Integration_Status__c": "Exception",
                "Integration_Message__c": f"[{exc.code}] {exc.message}"[:255],
            },
        )
    return {"status": "exception", "case": case_id, "code": exc.code, "compensated": compensated}


def _run_steps(opp_id: str, subject: str, corr: str) -> dict[str, Any]:
    hub = current()
    deal = fetch_deal(opp_id)
    account = deal["account"]
    customer = cast(Customer, hub.mapping.to_model("customer_from_salesforce", account))
    opportunity = cast(Opportunity, hub.mapping.to_model("opportunity_from_salesforce", deal["opportunity"]))
    if not (opportunity.is_won and opportunity.terms_approved):
        raise BusinessRuleError(
            f"opportunity '{opportunity.name}' is no longer closed-won with approved terms",
            code="deal.not_closed_won",
            owner=Owner.SALES_OPS,
            record=opp_id,
        )
    assert opportunity.billing_model is not None

    cust = sync_customer(customer, subject=subject, correlation_id=corr)
    if not account.get("ERP_Customer_Id__c"):
        write_back_account(customer.source_id, {"ERP_Customer_Id__c": cust["erp_id"]})

    legal_entity = customer.legal_entity or ""
    entity = hub.legal_entities[legal_entity]
    currency = customer.currency or entity.base_currency
    start = opportunity.start_date or opportunity.close_date
    project = {
        "name": opportunity.name,
        "start_date": start.isoformat(),
        "end_date": opportunity.end_date.isoformat() if opportunity.end_date else None,
        "billing_model": opportunity.billing_model.value,
        "currency": currency,
    }
    # ERP project (job) with financial dimensions.
    job_id = hub.tx(repo.get_xref, "netsuite", "job", opp_id)
    if job_id is None:
        master = erp_master_data()
        region_class = hub.mapping.value("region_to_class", customer.region or "")
        body = hub.mapping.apply(
            "project_to_netsuite",
            project,
            {
                "customer": cust["erp_id"],
                "subsidiary": hub.subsidiary_of[legal_entity],
                "currency": master["currency"].get(currency),
                "department": master["department"].get(opportunity.practice or ""),
                "class": master["classification"].get(region_class),
                "external_id": project_key(opp_id),
            },
        )
        hub.tx(repo.ledger_begin, write_key("netsuite", "job", opp_id), "netsuite", "upsert job", corr)
        job_id = upsert_erp_project(project_key(opp_id), body)
        hub.tx(_record, subject, "erp_project", "netsuite", "job", opp_id, job_id, corr, body)

    # PSA workspace from the template of the billing model.
    ws_id = hub.tx(repo.get_xref, "kantata", "workspace", opp_id)
    if ws_id is None:
        template = psa_template_id(
            hub.mapping.value("billing_model_to_template", opportunity.billing_model.value)
        )
        amount = Decimal(str(deal["opportunity"].get("Amount") or 0))
        body = hub.mapping.apply(
            "project_to_kantata",
            project,
            {
                "template": template,
                "price_in_cents": int(amount * 100),
                "description": f"{customer.name} — {opportunity.billing_model.value.replace('_', ' ')}",
            },
        )
        hub.tx(
            repo.ledger_begin, write_key("kantata", "workspace", opp_id), "kantata", "create workspace", corr
        )
        ws_id = ensure_workspace(opp_id, body)
        hub.tx(_record, subject, "psa_workspace", "kantata", "workspace", opp_id, ws_id, corr, body)

    # Staffing requests by role and start date, one per opportunity line.
    requests = [
        {
            "role": line.get("Role__c") or "Consultant",
            "start_date": str(line.get("ServiceDate") or start.isoformat())[:10],
            "end_date": project["end_date"] or (start + timedelta(days=90)).isoformat(),
            "hours": float(line.get("Quantity") or 0),
            "notes": f"q2c-line:{line['Id']}",
        }
        for line in deal["lines"]
    ]
    staffed = ensure_staffing(ws_id, requests) if requests else 0

    # Every new id back to the CRM.
    write_back_opportunity(
        opp_id,
        {
            "ERP_Customer_Id__c": cust["erp_id"],
            "ERP_Project_Id__c": job_id,
            "PSA_Workspace_Id__c": ws_id,
            "Integration_Status__c": "Project created",
            "Integration_Message__c": None,
        },
    )
    return {
        "opportunity_id": opp_id,
        "customer_erp_id": cust["erp_id"],
        "customer": cust["how"],
        "erp_project_id": job_id,
        "psa_workspace_id": ws_id,
        "staffing_requests": staffed,
        "legal_entity": legal_entity,
        # What posting time and expenses needs to know about the project, kept locally.
        "project": {
            "canonical_id": opp_id,
            "name": opportunity.name,
            "psa_workspace_id": ws_id,
            "erp_job_id": job_id,
            "customer_erp_id": cust["erp_id"],
            "legal_entity": legal_entity,
            "subsidiary": hub.subsidiary_of[legal_entity],
            "currency": currency,
            "billing_model": opportunity.billing_model.value,
            "rate_card": opportunity.rate_card or f"STD-{currency}",
            "department": erp_master_data()["department"].get(opportunity.practice or ""),
            "open_for_time": True,
            "open_for_expenses": True,
        },
    }


def start(event: BusinessEvent | dict[str, Any], attempt: int = 1) -> Any:
    """Enqueue F2 for an event on the ERP queue; the workflow id makes it run once per attempt."""
    data = event.model_dump(mode="json") if isinstance(event, BusinessEvent) else event
    opp_id = str(data["payload"]["Id"])
    with SetWorkflowID(workflow_id(opp_id, attempt)):
        return current().queue("netsuite").enqueue(lead_to_project, data)
