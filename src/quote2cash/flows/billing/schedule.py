"""Billing schedules from contracts: when F2 activates a project, its billing model becomes a schedule.

The flow reads the contract (the won deal) from the CRM, and for a milestone or
fixed-fee contract the project's milestones from the PSA; it creates the
billing customer, and for a subscription the subscription to the recurring
support price. What it decides is kept in ``billing_schedule`` (and
``billing_milestone``): money in minor units of the contract currency.

- milestone / fixed fee: the contract amount split over the PSA milestones
  (any remainder of the split on the last one), each due on its milestone's date;
- time and materials: billed per month from approved time (:mod:`.periods`);
- retainer: the contract amount spread over the contract's months is the fee
  per month, drawn down by approved time, the overage billed on top;
- subscription: the same monthly amount as a subscription in the billing system.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.flows.billing.common import billing, receivables
from quote2cash.flows.customer_sync import customer_key, customer_ref
from quote2cash.model import Money, to_minor
from quote2cash.ports import PsaBilling
from quote2cash.runtime.flow import Flow, Run, declare
from quote2cash.runtime.hub import current
from quote2cash.store import repo
from quote2cash.store.tables import billing_milestone, billing_schedule

FLOW = "schedule_billing"
ACTIVATED = "project.activated"
#: Billing models whose invoices follow the PSA milestones.
MILESTONE_MODELS = ("milestone", "fixed_fee")
#: Billing models billed by the month.
PERIOD_MODELS = ("retainer", "subscription")


def months(start: date, end: date) -> int:
    """Calendar months from ``start``'s month to ``end``'s, both included."""
    return (end.year - start.year) * 12 + end.month - start.month + 1


def split(total_minor: int, parts: int) -> list[int]:
    """``total_minor`` in ``parts`` equal amounts, the remainder on the last (nothing is lost)."""
    each = total_minor // parts
    return [each] * (parts - 1) + [total_minor - each * (parts - 1)]


def _incomplete(what: str, opp_id: str) -> BusinessRuleError:
    return BusinessRuleError(
        f"the contract of opportunity {opp_id} {what}; complete the deal in the CRM and resubmit",
        code="billing.contract_incomplete",
        owner=Owner.SALES_OPS,
        record=opp_id,
    )


def steps(run: Run) -> dict[str, Any]:
    """Turn an activated project's contract into its billing schedule."""
    hub = run.hub
    project = run.payload.get("project")
    if not isinstance(project, dict) or not project.get("canonical_id"):
        raise _incomplete("arrived without its project", str(run.subject))
    opp_id = str(project["canonical_id"])
    model = str(project["billing_model"])
    currency = str(project["currency"])
    legal_entity = str(project["legal_entity"])
    deal = hub.crm(FLOW).get_deal(opp_id)
    opportunity = deal.opportunity
    amount = opportunity.amount if opportunity.amount and opportunity.amount.currency == currency else None
    start = date.fromisoformat(str(project["start_date"]))
    end = opportunity.end_date
    summary: dict[str, Any] = {"project": opp_id, "model": model, "currency": currency}
    # An invoice must reach the project's ERP: where that ERP keeps no receivables, the project is
    # not billed (one case for it, before anything is sent to the billing system).
    receivables(hub, project.get("erp"))

    # The billing customer: the CRM account in the contract's legal entity and currency.
    ref = customer_ref(str(project["customer_id"]), legal_entity)
    system = hub.config.system_for("billing", FLOW)
    customer = deal.customer.model_copy(update={"legal_entity": legal_entity, "currency": currency})
    billing_customer = run.known(system, "customer", ref) or run.write(
        "billing_customer",
        system,
        "customer",
        ref,
        "upsert customer",
        lambda first: billing(current()).upsert_customer(customer, customer_key(ref)),
        {"customer": ref, "name": customer.name},
    )

    period_minor = periods = 0
    milestones: list[dict[str, Any]] = []
    if model in MILESTONE_MODELS:
        if amount is None:
            raise _incomplete(f"has no amount in {currency} to spread over its milestones", opp_id)
        psa = hub.psa(FLOW)
        if not isinstance(psa, PsaBilling):
            raise BusinessRuleError(
                f"the PSA '{psa.name}' does not report milestones",
                code="billing.system_missing",
                system=psa.name,
            )
        found = psa.milestones({str(project["psa_workspace_id"])})
        if not found:
            raise BusinessRuleError(
                f"project '{project['name']}' has no milestones in the PSA to bill its {model.replace('_', ' ')} "
                "contract; add them to the PSA project and resubmit",
                code="billing.no_milestones",
                owner=Owner.PMO,
                record=opp_id,
            )
        amounts = split(amount.to_minor(), len(found))
        milestones = [
            {
                "story_id": m.id,
                "project": opp_id,
                "name": m.name,
                "due_date": m.due_date,
                "amount_minor": a,
                "currency": currency,
                "status": "scheduled",
            }
            for m, a in zip(found, amounts, strict=True)
        ]
        summary["milestones"] = len(milestones)
    elif model in PERIOD_MODELS:
        if amount is None or end is None:
            raise _incomplete(f"needs an amount in {currency} and an end date for its {model} fee", opp_id)
        periods = months(start, end)
        period_minor = to_minor(amount.amount / periods, currency)
        summary.update(periods=periods, per_period=str(Money.from_minor(period_minor, currency).amount))

    subscription = None
    if model == "subscription":
        key = f"Q2C-SUB-{opp_id}"
        price = Money.from_minor(period_minor, currency)
        subscription = run.known(system, "subscription", opp_id) or run.write(
            "billing_subscription",
            system,
            "subscription",
            opp_id,
            "create subscription",
            lambda first: billing(current()).create_subscription(
                str(billing_customer), key=key, product=f"{opportunity.name} — support", price=price
            ),
            {"key": key, "price": str(price.amount), "currency": currency},
            create=True,
        )
        summary["subscription"] = subscription

    with hub.engine.begin() as conn:
        _save(conn, project, model, currency, billing_customer, amount, period_minor, periods, start, end)
        if subscription is not None:
            conn.execute(
                sa.update(billing_schedule)
                .where(billing_schedule.c.project == opp_id)
                .values(subscription_id=subscription)
            )
        for m in milestones:
            repo.insert_ignore(conn, billing_milestone, m)  # a milestone already billed keeps its state
    summary["billing_customer"] = billing_customer
    summary["legal_entity"] = legal_entity
    return summary


def _save(
    conn: sa.Connection,
    project: dict[str, Any],
    model: str,
    currency: str,
    billing_customer: str,
    amount: Money | None,
    period_minor: int,
    periods: int,
    start: date,
    end: date | None,
) -> None:
    repo.upsert(
        conn,
        billing_schedule,
        {
            "project": str(project["canonical_id"]),
            "model": model,
            "currency": currency,
            "customer_id": str(project["customer_id"]),
            "billing_customer": billing_customer,
            "legal_entity": str(project["legal_entity"]),
            "erp": project.get("erp"),
            "psa_workspace_id": str(project["psa_workspace_id"]),
            "contract_minor": amount.to_minor() if amount is not None else 0,
            "period_minor": period_minor,
            "periods": periods,
            "start_date": start,
            "end_date": end,
            "rate_card": project.get("rate_card"),
            "created_at": datetime.now(UTC),
        },
        ["project"],
    )


SCHEDULE_BILLING = declare(
    Flow(
        name=FLOW,
        triggers=(ACTIVATED,),
        writes=("billing",),
        replayable=True,
        body=steps,
        one_step=True,
    )
)

__all__ = ["ACTIVATED", "FLOW", "SCHEDULE_BILLING", "months", "split", "steps"]
