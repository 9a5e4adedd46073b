"""Delivered work: approved time entries and expenses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from quote2cash.model.common import Canonical
from quote2cash.model.money import Money


class TimeEntry(Canonical):
    """Time a resource booked on a project task; posted once approved."""

    project_source_id: str = Field(description="PSA workspace id")
    task_source_id: str | None = None
    resource_source_id: str | None = None
    work_date: date
    hours: Decimal = Field(gt=0)
    billable: bool
    rate: Money | None = None
    approved: bool = False
    approved_at: datetime | None = None
    deleted: bool = False
    notes: str | None = None


class Expense(Canonical):
    """A cost incurred on a project; reimbursable to the person, re-billable to the client, or both."""

    project_source_id: str
    resource_source_id: str | None = None
    expense_date: date
    amount: Money
    category: str | None = None
    billable: bool = False
    reimbursable: bool = False
    approved: bool = False
    approved_at: datetime | None = None
    deleted: bool = False
