"""F2 — lead-to-project: a closed-won deal with approved terms becomes a
customer (F1), an ERP project with financial dimensions, a PSA workspace from
the template of its billing model, staffing requests by role and start date,
and every new id written back to the CRM.

The flow is a saga over the role ports. Each write records what it wrote (a
cross-reference and a saga step) in the same transaction as its checkpoint;
on resubmission the flow runs again from the start and every write already
done is found by its cross-reference and skipped, so it resumes from the
failed step. With the ``compensate`` policy the project-side writes are
undone instead. The runner (:mod:`quote2cash.runtime.flow`) turns any failure
into an exception case and reports it to the CRM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS

from quote2cash.errors import BusinessRuleError, HubError, Owner
from quote2cash.flows.customer_sync import CUSTOMER, customer_key, customer_ref, sync_customer
from quote2cash.model import Customer, FinancialDimensions, Project, ResourceRequest
from quote2cash.ports import CustomerRecord, Deal, DealStatus, ErpMasterData, ErpRefs
from quote2cash.runtime.flow import Flow, Run, declare, emit
from quote2cash.runtime.flow import workflow_id as flow_workflow_id
from quote2cash.runtime.hub import Hub, current
from quote2cash.store import repo
from quote2cash.store.tables import project_registry

FLOW = "lead_to_project"
CLOSED_WON = "opportunity.closed_won"
log = structlog.get_logger(f"quote2cash.flows.{FLOW}")


def project_key(opportunity_id: str) -> str:
    """The hub's external id of the project in target systems (deterministic)."""
    return f"Q2C-P-{opportunity_id}"


def workflow_id(opportunity_id: str, attempt: int = 1) -> str:
    """DBOS workflow id of a deal's run: the same deal never starts two first runs."""
    return flow_workflow_id(FLOW, f"Opportunity/{opportunity_id}", attempt)


# -- remote steps (at-least-once; each is idempotent) -----------------------------------
@dataclass(frozen=True)
class DealContext:
    """Everything the flow reads before it writes, from one step: the deal, its legal
    entity (the deal's own where the CRM carries it, else the account's), the ERP it is
    routed to with that ERP's master data, and (for an account not yet linked in that
    entity) the ERP's customers and any decision a person took on an identity match."""

    deal: Deal
    legal_entity: str
    erp: str
    master: ErpMasterData
    candidates: list[CustomerRecord] | None
    decision: dict[str, Any] | None


@DBOS.step()
def read_deal(opportunity_id: str, linked: list[str], ahead: Deal | Exception | None = None) -> DealContext:
    """The deal as the CRM holds it now, and what the routed ERP knows (master data is cached).

    ``linked`` holds the account's customer refs already linked, as ``erp|ref``;
    ``ahead`` is the deal as the run's batch read it (or the error reading it gave).
    """
    hub = current()
    deal = hub.crm(FLOW).get_deal(opportunity_id) if ahead is None else ahead
    if isinstance(deal, Exception):
        raise deal
    opportunity = deal.opportunity
    legal_entity = opportunity.legal_entity or deal.customer.legal_entity or ""
    erp = hub.config.erp_for(legal_entity, opportunity.start_date or opportunity.close_date)
    port = hub.erp(erp)
    ref = customer_ref(deal.customer.source_id, legal_entity)
    if f"{erp}|{ref}" in linked:
        return DealContext(deal, legal_entity, erp, port.master_data(), None, None)
    decision = hub.read(repo.get_identity_decision, ref)
    return DealContext(deal, legal_entity, erp, port.master_data(), port.customers(), decision)


@DBOS.step()
def ensure_staffing(workspace_id: str, requests: list[ResourceRequest], known_empty: bool) -> int:
    """Raise the staffing requests the PSA project does not have yet."""
    return current().psa(FLOW).ensure_staffing(workspace_id, requests, known_empty=known_empty)


@DBOS.step()
def write_back(opportunity_id: str, status: DealStatus) -> None:
    """Ids and status back to the CRM deal (and the account's ERP id), idempotent."""
    current().crm(FLOW).write_back_deal(opportunity_id, status)


def report_to_crm(run: Run, opportunity_id: str, status: DealStatus) -> None:
    """Write back what the CRM does not own; a field it owns is withheld and the refusal recorded."""
    fields = {
        "status": status.status,
        "message": status.message,
        "erp_customer_id": status.erp_customer_id,
        "erp_project_id": status.erp_project_id,
        "psa_project_id": status.psa_project_id,
    }
    _, refused = run.hub.ownership.split("crm", "deal", fields, creating=False)
    if status.customer_id:
        _, on_account = run.hub.ownership.split(
            "crm", "account", {"erp_customer_id": status.erp_customer_id}, creating=False
        )
        refused += on_account
    withheld = {r.field.replace("deal.", "").replace("account.", "account_") for r in refused}
    crm = run.hub.config.system_for("crm", FLOW)
    run.refused(crm, f"deal {opportunity_id}", refused)
    write_back(opportunity_id, replace(status, withheld=frozenset(withheld)))


#: The CRM's integration message holds this many characters; the case keeps the whole text.
CRM_MESSAGE_LENGTH = 255


def crm_message(code: str, case_id: int, written: str, reason: str) -> str:
    """The case in one line for the CRM: code and case first, then what exists, then why."""
    text = f"[{code}] case {case_id}: {written}. {reason}"
    return text if len(text) <= CRM_MESSAGE_LENGTH else text[: CRM_MESSAGE_LENGTH - 1] + "…"


@DBOS.step()
def undo_project_side(erp: str, steps: dict[str, Any]) -> list[str]:
    """Compensation: delete the PSA workspace and the ERP project this run created."""
    hub = current()
    undone = []
    if "psa_workspace" in steps:
        hub.psa(FLOW).delete_project(str(steps["psa_workspace"]["id"]))
        undone.append("psa_workspace")
    if "erp_project" in steps:
        hub.erp(erp).delete_project(str(steps["erp_project"]["id"]))
        undone.append("erp_project")
    return undone


# -- the flow ---------------------------------------------------------------------------------
def _named_opportunity(payload: Any, subject: str) -> str:
    """The opportunity an event names: its payload's ``Id``, else its subject's (``Opportunity/<id>``)."""
    return str((payload.get("Id") if isinstance(payload, dict) else None) or subject.partition("/")[2])


def _opportunity_id(run: Run) -> str:
    opp_id = _named_opportunity(run.payload, run.subject)
    if not opp_id:
        raise BusinessRuleError(
            f"event {run.event.get('id')} names no opportunity", code="deal.malformed", owner=Owner.SALES_OPS
        )
    return opp_id


def _read_ahead(hub: Hub, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's deals read together: a few CRM calls for the batch instead of a few per deal."""
    wanted: dict[str, str] = {}
    for event in events:
        subject = str(event.get("subject") or "")
        opp_id = _named_opportunity(event.get("payload"), subject)
        if opp_id:  # an event naming no deal is left to its run, which makes it a case
            wanted[subject] = opp_id
    deals = hub.crm(FLOW).get_deals(list(wanted.values()))
    return {subject: deals[opp_id] for subject, opp_id in wanted.items() if opp_id in deals}


def _keys(run: Run) -> list[tuple[str, str, str]]:
    """Cross-references the run needs, read when it opens (the account's in every ERP)."""
    opp_id = _opportunity_id(run)
    account = str(run.payload.get("AccountId") or "")
    hub = run.hub
    keys = [(erp, "job", opp_id) for erp in hub.erp_names()]
    if account:
        refs = [customer_ref(account, entity) for entity in hub.legal_entities]
        keys += [(erp, "customer", ref) for erp in hub.erp_names() for ref in refs]
    keys.append((hub.config.system_for("psa", FLOW), "workspace", opp_id))
    return keys


def steps(run: Run) -> dict[str, Any]:
    """The business steps of F2 for one closed-won deal."""
    hub = run.hub
    opp_id = _opportunity_id(run)
    account = str(run.payload.get("AccountId") or "")
    linked = [
        f"{erp}|{ref}"
        for erp in hub.erp_names()
        for ref in (customer_ref(account, entity) for entity in hub.legal_entities)
        if account and run.known(erp, "customer", ref)
    ]
    ctx = read_deal(opp_id, linked, run.ahead)
    deal, erp, master, legal_entity = ctx.deal, ctx.erp, ctx.master, ctx.legal_entity
    opportunity, customer = deal.opportunity, deal.customer
    if not (opportunity.is_won and opportunity.terms_approved):
        raise BusinessRuleError(
            f"opportunity '{opportunity.name}' is no longer closed-won with approved terms",
            code="deal.not_closed_won",
            owner=Owner.SALES_OPS,
            record=opp_id,
        )
    if opportunity.billing_model is None:
        raise BusinessRuleError(
            f"opportunity '{opportunity.name}' has no billing model; set it in the CRM",
            code="deal.malformed",
            owner=Owner.SALES_OPS,
            record=opp_id,
        )
    entity = hub.legal_entities.get(legal_entity)
    start = opportunity.start_date or opportunity.close_date
    psa = hub.config.system_for("psa", FLOW)
    # The deal's own commercial terms win over the account's.
    currency = opportunity.currency or customer.currency or (entity.base_currency if entity else "USD")
    if entity is not None and currency not in {entity.base_currency, *entity.allowed_currencies}:
        raise BusinessRuleError(
            f"opportunity '{opportunity.name}' is in {currency}, but {entity.name} ({entity.code}) only "
            f"invoices in {', '.join(sorted({entity.base_currency, *entity.allowed_currencies}))}. "
            "Correct the deal's currency or legal entity in the CRM.",
            code="deal.currency_not_allowed",
            owner=Owner.SALES_OPS,
            record=opp_id,
        )
    home = legal_entity == customer.legal_entity
    if not home:
        # The account's customer in the deal's entity: that entity's currency and terms apply.
        terms = customer.payment_terms
        customer = customer.model_copy(
            update={
                "legal_entity": legal_entity,
                "currency": currency,
                "tax_region": None,
                "payment_terms": terms
                if entity is None or not entity.payment_terms or terms in entity.payment_terms
                else None,
            }
        )

    synced = sync_customer(run, customer, erp, master, ctx.candidates, ctx.decision)
    department = master.departments.get(opportunity.practice or "")
    project = Project(
        source_system=customer.source_system,
        source_id=opp_id,
        customer_id=customer.source_id,
        opportunity_id=opp_id,
        name=opportunity.name,
        billing_model=opportunity.billing_model,
        currency=currency,
        start_date=start,
        end_date=opportunity.end_date,
        # An amount is never relabelled into another currency.
        budget=opportunity.amount if opportunity.amount and opportunity.amount.currency == currency else None,
        dimensions=FinancialDimensions(
            legal_entity=legal_entity,
            subsidiary=hub.subsidiary_of.get(legal_entity),
            practice=opportunity.practice,
            department=department,
            region=customer.region,
        ),
    )
    after = project.model_dump(mode="json")

    # ERP project with financial dimensions (an upsert by the hub's external id).
    job_id = run.known(erp, "job", opp_id)
    if job_id is None:
        refs = ErpRefs(
            subsidiary=hub.subsidiary_of[legal_entity],
            currency=master.currencies.get(currency),
            customer=synced.erp_id,
            department=department,
        )

        def send_job(first: bool) -> str:
            return current().erp(erp).upsert_project(project, project_key(opp_id), refs)

        job_id = run.write("erp_project", erp, "job", opp_id, "upsert project", send_job, after, at_end=True)

    # The ERPs the project's postings may also go to: the shadow's copies, and a hard cutover's.
    shadow = hub.config.erp_routing.shadow
    also = hub.config.cutover_erps(legal_entity, start, opportunity.end_date, erp)
    for other in dict.fromkeys([*([shadow] if shadow and shadow != erp else []), *also]):
        mirror(run, other, customer, project, legal_entity, after)

    # PSA project from the template of the billing model (a create: looked up first when in doubt).
    # The deal's own project and job are recorded with the run's end; the customer, which other
    # deals of the account look up, as soon as it is written.
    ws_id = run.known(psa, "workspace", opp_id)
    created_now = False
    if ws_id is None:

        def send_workspace(first: bool) -> str:
            nonlocal created_now
            created_now = first
            return current().psa(FLOW).ensure_project(project, opp_id, known_absent=first)

        ws_id = run.write(
            "psa_workspace",
            psa,
            "workspace",
            opp_id,
            "create workspace",
            send_workspace,
            after,
            create=True,
            at_end=True,
        )

    # Staffing requests by role and start date, one per opportunity line.
    requests = [
        ResourceRequest(
            project_id=ws_id,
            role=line.role,
            start_date=line.start_date or start,
            end_date=opportunity.end_date or (start + timedelta(days=90)),
            hours=line.hours,
            reference=f"q2c-line:{line.source_id}",
        )
        for line in opportunity.lines
    ]
    staffed = ensure_staffing(ws_id, requests, created_now) if requests else 0

    # Every new id back to the CRM, the account's ERP id in the same call.
    report_to_crm(
        run,
        opp_id,
        DealStatus(
            status="Project created",
            customer_id=None if not home or deal.erp_customer_id == synced.erp_id else customer.source_id,
            erp_customer_id=synced.erp_id,
            erp_project_id=job_id,
            psa_project_id=ws_id,
        ),
    )
    return {
        "opportunity_id": opp_id,
        "customer_erp_id": synced.erp_id,
        "customer": synced.how,
        "erp": erp,
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
            "erp": erp,
            "customer_id": customer.source_id,
            "start_date": start.isoformat(),
            "customer_erp_id": synced.erp_id,
            "legal_entity": legal_entity,
            "subsidiary": hub.subsidiary_of[legal_entity],
            "currency": currency,
            "billing_model": opportunity.billing_model.value,
            "rate_card": opportunity.rate_card or f"STD-{currency}",
            "department": department,
            "open_for_time": True,
            "open_for_expenses": True,
        },
    }


def mirror(
    run: Run, system: str, customer: Customer, project: Project, legal_entity: str, after: dict[str, Any]
) -> None:
    """The deal's customer and project in another ERP too, under the hub's external ids: the
    shadow ERP (its copies of the postings find them) or the ERP a hard cutover moves the
    project's later postings to.

    It never decides the run's outcome: a write that ERP refuses is logged and the
    run goes on; the project's postings to it are then refused there (a shadow's
    show in the shadow report, a cutover's become posting cases).
    """
    hub = run.hub
    ref = customer_ref(customer.source_id, legal_entity)
    try:
        master = hub.erp(system).master_data()
        sub = hub.subsidiary_of[legal_entity]
        customer_id = run.known(system, CUSTOMER, ref)
        if customer_id is None:
            refs = ErpRefs(
                subsidiary=sub,
                currency=master.currencies.get(project.currency),
                terms=master.terms.get(customer.payment_terms or ""),
            )

            def send_customer(first: bool) -> str:
                return current().erp(system).upsert_customer(customer, customer_key(ref), refs)

            dump = {"external_id": customer_key(ref), **customer.model_dump(mode="json")}
            customer_id = run.write(
                "mirror_customer", system, CUSTOMER, ref, "upsert customer", send_customer, dump
            )
        if run.known(system, "job", project.source_id) is None:
            job_refs = ErpRefs(
                subsidiary=sub,
                currency=master.currencies.get(project.currency),
                customer=customer_id,
                department=master.departments.get(project.dimensions.practice or ""),
            )

            def send_job(first: bool) -> str:
                return current().erp(system).upsert_project(project, project_key(project.source_id), job_refs)

            run.write(
                "mirror_project",
                system,
                "job",
                project.source_id,
                "upsert project",
                send_job,
                after,
                at_end=True,
            )
    except HubError as exc:
        log.warning(
            "mirror.project_not_created",
            erp=system,
            code=exc.code,
            detail=exc.message[:200],
            subject=run.subject,
        )


def _compensate(run: Run, done: dict[str, Any]) -> list[str]:
    opp_id = _opportunity_id(run)
    erp = next(
        (str(v["system"]) for s, v in done.items() if s == "erp_project"), run.hub.config.system_for("erp")
    )
    undone = undo_project_side(erp, done)
    for step in undone:
        system = str(done[step].get("system"))
        run.hub.tx(repo.delete_xref, system, "workspace" if step == "psa_workspace" else "job", opp_id)
    return undone


def _report(run: Run, error: HubError, case_id: int) -> None:
    written = str(error.details.get("written") or "")
    reason = str(error.details.get("reason") or error.message)
    message = (
        crm_message(error.code, case_id, written, reason)
        if written
        else f"[{error.code}] case {case_id}: {reason}"
    )
    opp_id = _opportunity_id(run)
    report_to_crm(run, opp_id, DealStatus(status="Exception", message=message[:CRM_MESSAGE_LENGTH]))


def _on_complete(conn: sa.Connection, run: Run, summary: dict[str, Any]) -> None:
    emit(conn, run, "project.activated", summary)
    project = {**summary["project"], "start_date": date.fromisoformat(summary["project"]["start_date"])}
    repo.upsert(conn, project_registry, {**project, "updated_at": datetime.now(UTC)}, ["canonical_id"])


#: A burst of closed-won deals (end of quarter) runs this many deals at most to a workflow.
BATCH = 25

LEAD_TO_PROJECT = declare(
    Flow(
        name=FLOW,
        triggers=(CLOSED_WON,),
        writes=("erp", "psa", "crm"),
        replayable=True,
        body=steps,
        compensate=_compensate,
        report=_report,
        on_complete=_on_complete,
        latency_kpi="closed_won_to_project_seconds",
        keys=_keys,
        one_step=True,
        batch=BATCH,
        read_ahead=_read_ahead,
    )
)
