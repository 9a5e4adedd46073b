"""Deals and commercial terms: opportunities, contracts, rate cards."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from quote2cash.model.common import Canonical
from quote2cash.model.money import CurrencyCode, Money


class BillingModel(StrEnum):
    """How a contract is billed."""

    TIME_AND_MATERIALS = "time_and_materials"
    FIXED_FEE = "fixed_fee"
    MILESTONE = "milestone"
    RETAINER = "retainer"
    SUBSCRIPTION = "subscription"
    #: No client and no contract: an internal project (bench, pre-sales, training); all cost.
    INTERNAL = "internal"


class OpportunityLine(BaseModel):
    """A line of a deal: a role sold for some hours at a rate, from a date."""

    model_config = ConfigDict(extra="forbid")

    source_id: str
    role: str
    hours: Decimal = Field(ge=0)
    rate: Money
    start_date: date | None = None
    description: str | None = None


class Opportunity(Canonical):
    """A deal in the CRM."""

    customer_source_id: str
    name: str
    stage: str
    is_won: bool
    is_closed: bool
    close_date: date
    amount: Money | None = None
    currency: CurrencyCode | None = Field(
        default=None, description="the deal's own currency; it wins over the account's"
    )
    legal_entity: str | None = Field(
        default=None, description="the contracting legal entity, where the CRM carries it on the deal"
    )
    billing_model: BillingModel | None = None
    terms_approved: bool = False
    practice: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    rate_card: str | None = None
    lines: list[OpportunityLine] = Field(default_factory=list)


class RateCardLine(BaseModel):
    """Bill rate of a role over a date range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    rate: Money
    effective_from: date
    effective_to: date | None = None


class RateCard(BaseModel):
    """Role → bill rate, in one currency, with effective dates."""

    model_config = ConfigDict(extra="forbid")

    code: str
    currency: CurrencyCode
    lines: list[RateCardLine]

    def rate_for(self, role: str, on: date) -> Money | None:
        """The rate in force for a role on a date, or None."""
        for line in self.lines:
            if (
                line.role == role
                and line.effective_from <= on
                and (line.effective_to is None or on <= line.effective_to)
            ):
                return line.rate
        return None


class Contract(Canonical):
    """Commercial terms normalised across systems."""

    customer_id: str
    opportunity_id: str
    billing_model: BillingModel
    currency: CurrencyCode
    payment_terms: str
    legal_entity: str
    start_date: date
    end_date: date | None = None
    value: Money | None = None
    rate_card: str | None = None
