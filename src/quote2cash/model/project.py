"""Delivery: projects, their structure, resources and staffing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from quote2cash.model.common import Canonical
from quote2cash.model.deal import BillingModel
from quote2cash.model.finance import FinancialDimensions
from quote2cash.model.money import CurrencyCode, Money


class Task(BaseModel):
    """A unit of work within a phase."""

    model_config = ConfigDict(extra="forbid")

    name: str
    start_date: date | None = None
    due_date: date | None = None
    billable: bool = True


class Milestone(BaseModel):
    """A dated deliverable; for milestone billing it carries an amount."""

    model_config = ConfigDict(extra="forbid")

    name: str
    due_date: date | None = None
    amount: Money | None = None


class Phase(BaseModel):
    """A stage of a project."""

    model_config = ConfigDict(extra="forbid")

    name: str
    start_date: date | None = None
    due_date: date | None = None
    tasks: list[Task] = Field(default_factory=list)


class Project(Canonical):
    """An engagement delivered for a customer.

    ``customer_id`` and ``start_date`` are None where they are not known (a
    project registered before the hub kept them).
    """

    customer_id: str | None = Field(description="the customer's canonical id; None: not known")
    opportunity_id: str
    name: str
    billing_model: BillingModel
    currency: CurrencyCode
    start_date: date | None = Field(description="None: not known")
    end_date: date | None = None
    budget: Money | None = None
    template: str | None = None
    dimensions: FinancialDimensions
    phases: list[Phase] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)


class Resource(Canonical):
    """An employee or contractor who can be staffed."""

    name: str
    email: str | None = None
    role: str
    employment: str = Field(default="employee", pattern="^(employee|contractor)$")
    cost_rate: Money | None = None
    legal_entity: str | None = None


class ResourceRequest(BaseModel):
    """A request to staff a role on a project from a date."""

    model_config = ConfigDict(extra="forbid")

    project_id: str
    role: str
    start_date: date
    end_date: date | None = None
    hours: Decimal = Field(ge=0)
    reference: str | None = Field(
        default=None, description="the hub's reference, e.g. the deal line it staffs"
    )


class Assignment(Canonical):
    """A resource confirmed on a project."""

    project_id: str
    resource_id: str
    role: str
    start_date: date
    end_date: date | None = None
    hours: Decimal = Field(ge=0)
