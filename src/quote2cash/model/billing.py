"""Billing: invoices and payments (flows F6–F8)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from quote2cash.model.common import Canonical
from quote2cash.model.money import CurrencyCode, Money


class InvoiceStatus(StrEnum):
    """Where an invoice is in its life (the billing system's own states map to these)."""

    DRAFT = "draft"
    OPEN = "open"  # finalized and sent, awaiting payment
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceLine(BaseModel):
    """One billed line: a milestone, a period of time and materials, a retainer fee."""

    model_config = ConfigDict(extra="forbid")

    description: str
    quantity: Decimal = Field(default=Decimal(1), gt=0)
    unit_amount: Money
    project_id: str | None = None
    source_ref: str | None = Field(
        default=None, description="what the line bills, e.g. a milestone or posting key"
    )


class Invoice(Canonical):
    """An invoice to a customer, in one currency."""

    customer_id: str = Field(description="the hub's canonical customer id")
    currency: CurrencyCode
    lines: list[InvoiceLine] = Field(min_length=1)
    status: InvoiceStatus = InvoiceStatus.DRAFT
    issue_date: date | None = None
    due_date: date | None = None
    legal_entity: str | None = None

    def total(self) -> Money:
        """The sum of the lines, rounded to the currency's minor unit."""
        total = Money.of(0, self.currency)
        for line in self.lines:
            total = total + line.unit_amount * line.quantity
        return total.rounded()


class Payment(Canonical):
    """Money received against an invoice."""

    invoice_id: str = Field(description="the billing system's invoice id")
    amount: Money
    received_at: datetime
