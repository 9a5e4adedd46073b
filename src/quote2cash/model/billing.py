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


class IssuedInvoice(Invoice):
    """An invoice as the billing system issued it: its number and amounts.

    Attributes:
        number: the invoice number the customer sees (None while a draft).
        subtotal: the sum of the lines before tax.
        tax: the tax on the invoice (zero without tax rates).
        amount_total: what the invoice is for (subtotal and exclusive tax).
        amount_due: total less pre-payment credit notes.
        amount_paid: what was paid.
        amount_remaining: what is still to pay.
        hosted_url: the customer's payment page.
    """

    number: str | None = None
    subtotal: Money
    tax: Money
    amount_total: Money
    amount_due: Money
    amount_paid: Money
    amount_remaining: Money
    hosted_url: str | None = None


class InvoiceChangeKind(StrEnum):
    """What happened to an invoice in the billing system (F8 feedback)."""

    FINALIZED = "invoice_finalized"
    PAID = "invoice_paid"
    VOIDED = "invoice_voided"
    PAYMENT_FAILED = "invoice_payment_failed"
    REFUNDED = "payment_refunded"


class ChangedLine(BaseModel):
    """A line of an invoice the billing system raised by itself (a subscription's)."""

    model_config = ConfigDict(extra="forbid")

    description: str
    amount: Money


class InvoiceChange(BaseModel):
    """One change of an invoice, as the billing system reported it, with the invoice's state then.

    Changes arrive duplicated and in any order; the state they carry (status,
    payment attempts, amount refunded) says which is newer. A refund carries
    only the invoice's id and what was refunded so far (``status`` is None).

    Attributes:
        invoice_id: the billing system's invoice id.
        hub_key: the hub's key of the invoice, where the billing system carries it.
        subscription_id: the subscription that raised the invoice, if one did.
        attempts: payment attempts so far.
        refunded: what was refunded of the payment so far (refunds only).
    """

    model_config = ConfigDict(extra="forbid")

    kind: InvoiceChangeKind
    invoice_id: str = Field(min_length=1)
    hub_key: str | None = None
    subscription_id: str | None = None
    status: InvoiceStatus | None = None
    number: str | None = None
    currency: CurrencyCode | None = None
    subtotal: Money | None = None
    total: Money | None = None
    tax: Money | None = None
    paid: Money | None = None
    refunded: Money | None = None
    attempts: int = Field(default=0, ge=0)
    created_at: datetime | None = None
    finalized_at: datetime | None = None
    paid_at: datetime | None = None
    due_date: date | None = None
    lines: list[ChangedLine] = Field(default_factory=list)


class Payment(Canonical):
    """Money received against an invoice."""

    invoice_id: str = Field(description="the billing system's invoice id")
    amount: Money
    received_at: datetime
