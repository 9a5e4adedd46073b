"""Role ports: what a flow may ask of a CRM, a PSA, an ERP or a billing system.

A port is a small Protocol of business verbs, typed in the canonical model
(:mod:`quote2cash.model`) and the few port records below; no vendor dict ever
crosses it. A connector package implements one or more ports in its
``adapter.py``; a flow only ever sees the port. What a flow may rely on
about a system (how many records one call takes, whether writes are upserts
by external id) is stated in :class:`Capabilities`, never inferred from the
vendor's name.

Every method may raise the hub's errors (:mod:`quote2cash.errors`):
``TransientError`` (retried by the flow runtime), ``InDoubtError`` (the
step runs again and looks the record up first), ``BusinessRuleError`` (a
case for a person), ``VendorPayloadError`` (data the hub cannot read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from quote2cash.errors import HubError
from quote2cash.model import (
    AccountingPeriod,
    BusinessEvent,
    Customer,
    Invoice,
    IssuedInvoice,
    Money,
    Opportunity,
    Project,
    ResourceRequest,
)

Role = Literal["crm", "psa", "erp", "billing"]
WorkKind = Literal["time", "expense"]


@dataclass(frozen=True)
class Capabilities:
    """Facts about a system that flows may rely on.

    Attributes:
        bulk_size: records one write call takes (1: one call per record).
        upsert_by_external_id: writes are upserts keyed by the hub's external id,
            so a repeated write updates instead of creating a second record.
        external_references: records carry the hub's reference, so an in-doubt
            create is found by looking the reference up.
        max_concurrency: requests the vendor account allows at once (None: no stated limit).
        answers_later: the system answers writes after the call returns (a file import
            job): refusals are read back with :meth:`ErpRefusals.rejections`.
    """

    bulk_size: int = 1
    upsert_by_external_id: bool = False
    external_references: bool = False
    max_concurrency: int | None = None
    answers_later: bool = False


@dataclass(frozen=True)
class SourceEvent:
    """A business event read from a source system, with the source's own event id."""

    source_event_id: str
    event: BusinessEvent


@dataclass(frozen=True)
class EventPage:
    """Events since a cursor, and the cursor to continue from."""

    events: list[SourceEvent]
    cursor: str | None


@dataclass(frozen=True)
class Deal:
    """A won deal as the CRM holds it: the opportunity (with lines) and its account."""

    opportunity: Opportunity
    customer: Customer
    erp_customer_id: str | None = None


@dataclass(frozen=True)
class DealStatus:
    """What the hub writes back to the CRM about a deal.

    With ``customer_id`` (the CRM account) the ERP customer id is recorded on
    the account too, in the same call where the CRM allows it. ``withheld``
    names the fields the hub must not write, because the CRM owns them
    (``status``, ``message``, ``erp_customer_id``, ``erp_project_id``,
    ``psa_project_id``, ``account_erp_customer_id``).
    """

    status: str
    message: str | None = None
    customer_id: str | None = None
    erp_customer_id: str | None = None
    erp_project_id: str | None = None
    psa_project_id: str | None = None
    withheld: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CustomerRecord:
    """An existing customer in the ERP, for identity matching."""

    id: str
    name: str
    website: str | None = None
    tax_id: str | None = None
    external_id: str | None = None
    subsidiary: str | None = None


@dataclass(frozen=True)
class ErpMasterData:
    """Reference data of an ERP, by the names the hub's canonical model uses.

    Attributes:
        subsidiaries: ERP subsidiary id -> active.
        currencies: ISO code -> ERP id.
        terms: payment-terms name -> ERP id.
        departments: department (cost centre) name -> ERP id.
        active_departments: ERP ids of the active departments.
        classes: reporting class name -> ERP id.
        periods: accounting months.
    """

    subsidiaries: dict[str, bool]
    currencies: dict[str, str]
    terms: dict[str, str]
    departments: dict[str, str]
    active_departments: frozenset[str]
    classes: dict[str, str]
    periods: tuple[AccountingPeriod, ...]


@dataclass(frozen=True)
class ErpRefs:
    """ERP ids a customer or project write refers to (resolved from master data)."""

    subsidiary: str
    currency: str | None = None
    terms: str | None = None
    customer: str | None = None
    department: str | None = None
    class_: str | None = None


@dataclass(frozen=True)
class Accounts:
    """Ledger accounts a posting debits and credits (ERP ids)."""

    debit: str
    credit: str


@dataclass(frozen=True)
class Posting:
    """One ERP transaction the hub posts: a summary journal, or one entry (detail).

    ``amount_minor`` is signed (a reversal is negative) in ``currency``'s
    minor units; ``key`` is the hub's external id of the transaction, fixed
    before it is sent, so sending it again is an upsert of the same record.
    """

    key: str
    kind: WorkKind
    mode: Literal["summary", "detail"]
    project: str
    erp_project_id: str | None
    task_id: str | None
    legal_entity: str
    subsidiary: str
    department: str | None
    period: str
    tran_date: date
    billable: bool
    minutes: int
    amount_minor: int
    currency: str
    entries: int
    accounts: Accounts
    reversal_of: str | None = None


@dataclass(frozen=True)
class PostingResult:
    """What the ERP answered for one posting: its id, or the refusal (code, message)."""

    key: str
    erp_id: str | None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class PostedRecord:
    """A transaction the hub posted, as the ERP holds it (for reconciliation).

    Hours and amount are as the ERP states them (decimal, in the posting's currency).
    """

    erp_id: str
    key: str
    project: str | None
    subsidiary: str | None
    hours: Decimal
    amount: Decimal
    entries: int


#: The columns of a work row (one approved time entry or expense, as the hub's ledger holds it).
WORK_ROW_KEYS = (
    "kind",
    "source_id",
    "version",
    "approved",
    "deleted",
    "workspace_id",
    "user_id",
    "currency",
    "billable",
    "seen_at",
    "task_id",
    "work_date",
    "minutes",
    "rate_minor",
    "amount_minor",
    "reimbursable",
    "category",
    "cost_centre",  # the entry's own cost centre (name or ERP id); None: its project's
)


@dataclass
class WorkPage:
    """A page of changed work since a cursor.

    ``rows`` are plain dicts with :data:`WORK_ROW_KEYS` rather than models: a
    month-end backlog is a million of them and they go straight into the
    ledger. ``created`` holds each row's creation stamp; ``unreadable`` the
    records that could not be read, as (error dict, vendor payload), kept for
    the dead letter; ``last`` the change stamp to continue from.
    """

    rows: list[dict[str, Any]]
    created: list[str]
    unreadable: list[tuple[dict[str, Any], dict[str, Any]]]
    last: str


@dataclass(frozen=True)
class PsaMasterData:
    """PSA reference data the posting rules need."""

    task_states: dict[str, tuple[str, str]]  # task id -> (workspace id, state)
    roles: dict[str, str]  # user id -> role name
    names: dict[str, str]  # user id -> display name


@runtime_checkable
class System(Protocol):
    """What every adapter is: a named system with capabilities and call counters."""

    name: str
    capabilities: Capabilities

    @property
    def calls(self) -> int:
        """Requests sent so far."""
        ...

    @property
    def retries(self) -> int:
        """Requests that were retried so far."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class BillingStatus:
    """What the hub writes back to the CRM about a deal's billing (F8).

    Attributes:
        opportunity_id: the deal.
        account_id: its account, which gets the account's own totals.
        billed: billed to date on the deal; ``account_billed`` on the account.
        last_invoice: the number of the deal's latest invoice.
        last_status: that invoice's status (open, paid, void, uncollectible).
        payment_status: unpaid, failed, paid or refunded.
        days_outstanding: age in days of the deal's oldest unpaid invoice (0: none).
    """

    opportunity_id: str
    account_id: str
    billed: Money
    account_billed: Money
    last_invoice: str | None
    last_status: str | None
    payment_status: str | None
    days_outstanding: int


@runtime_checkable
class Crm(System, Protocol):
    """The CRM: where deals are won and where the hub reports back."""

    def won_deals(self, cursor: str | None) -> EventPage:
        """Deals closed-won with approved terms changed since ``cursor``, oldest first."""
        ...

    def get_deal(self, opportunity_id: str) -> Deal:
        """The deal as the CRM holds it now; ``VendorPayloadError`` when a value cannot be read."""
        ...

    def get_deals(self, opportunity_ids: Sequence[str]) -> dict[str, Deal | Exception]:
        """Many deals in as few calls as the CRM allows (a burst's batch): each id maps to
        its deal, or to the error reading that one deal raised (as :meth:`get_deal` would
        raise it); an error of the call itself is raised."""
        ...

    def write_back_customer(self, customer_id: str, erp_customer_id: str) -> None:
        """Record the ERP customer id on the CRM account."""
        ...

    def write_back_deal(self, opportunity_id: str, status: DealStatus) -> None:
        """Record ids and integration status on the CRM deal."""
        ...


@runtime_checkable
class CrmBillingFeedback(Protocol):
    """A CRM that shows billing on deals and accounts (F8)."""

    def write_back_billing(self, status: BillingStatus) -> None:
        """Record billed to date, the last invoice and the payment status on the deal and its account."""
        ...


@dataclass(frozen=True)
class MilestoneRecord:
    """A milestone of a PSA project: completed means signed off (approved) for billing."""

    id: str
    workspace_id: str
    name: str
    due_date: date | None
    completed: bool
    completed_at: datetime | None


@dataclass(frozen=True)
class PsaProjectRecord:
    """A PSA project and the hub reference (the CRM opportunity) it carries."""

    id: str
    reference: str | None
    name: str


@runtime_checkable
class Psa(System, Protocol):
    """The PSA: projects, staffing, and delivered work."""

    def ensure_project(self, project: Project, reference: str, *, known_absent: bool = False) -> str:
        """Find the project by the hub's reference, or create it (from the template of its
        billing model) carrying the reference. ``known_absent`` skips the look-up when the
        hub's ledger shows no earlier attempt."""
        ...

    def ensure_staffing(
        self, psa_project_id: str, requests: Sequence[ResourceRequest], *, known_empty: bool = False
    ) -> int:
        """Raise the staffing requests (by their ``reference``) the project does not have yet."""
        ...

    def delete_project(self, psa_project_id: str) -> None:
        """Delete a project (compensation); already gone is success."""
        ...

    def master_data(self, kind: WorkKind, workspace_ids: set[str]) -> PsaMasterData:
        """Tasks, roles and names the posting rules need."""
        ...

    def work_pages(self, kind: WorkKind, since: str) -> Iterator[WorkPage]:
        """Every change of approved work since the cursor, page by page."""
        ...

    def approved_work(self, kind: WorkKind, start: date, end: date) -> Iterator[dict[str, Any]]:
        """Approved work dated in a range (reconciliation): ``{id, kind, workspace_id, user_id,
        billable, minutes, amount_minor, currency}`` each."""
        ...


@runtime_checkable
class PsaBilling(Protocol):
    """A PSA whose milestones are billed (F6) and whose projects show billed to date (F8)."""

    def milestones(self, workspace_ids: set[str]) -> list[MilestoneRecord]:
        """The milestones of these projects, with their state."""
        ...

    def write_back_billed(self, psa_project_id: str, billed: Money) -> None:
        """Record what has been billed to date on the project."""
        ...

    def projects(self) -> list[PsaProjectRecord]:
        """Every project carrying the hub's reference (reconciliation)."""
        ...


@dataclass(frozen=True)
class ArInvoice:
    """A receivable invoice for the ERP: the billing system's invoice, its ids and amounts.

    ``external_id`` is the billing system's invoice id, so the ERP invoice is found by it.
    """

    external_id: str
    number: str | None
    customer: str  # ERP customer id
    project: str | None  # ERP project (job) id
    subsidiary: str
    currency: str  # ERP currency id
    tran_date: date
    due_date: date | None
    lines: list[tuple[str, Decimal]]  # (description, amount)
    tax: Decimal
    memo: str


@dataclass(frozen=True)
class ArPayment:
    """A customer payment to apply to an AR invoice, once per ``external_id``."""

    external_id: str
    invoice: str  # ERP invoice id
    customer: str
    subsidiary: str
    currency: str
    amount: Decimal
    tran_date: date


@dataclass(frozen=True)
class ArInvoiceRecord:
    """An AR invoice the ERP holds, as reconciliation reads it."""

    erp_id: str
    external_id: str | None
    number: str | None
    amount: Decimal
    tax: Decimal
    credited: Decimal
    paid: Decimal


@runtime_checkable
class Erp(System, Protocol):
    """The ERP: customers, projects and the ledger."""

    def master_data(self, *, fresh: bool = False) -> ErpMasterData:
        """Subsidiaries, currencies, terms, departments, classes and periods (``fresh``: not from a cache)."""
        ...

    def customers(self) -> list[CustomerRecord]:
        """Existing customers, for identity matching."""
        ...

    def upsert_customer(
        self, customer: Customer, external_id: str, refs: ErpRefs, *, only: frozenset[str] | None = None
    ) -> str:
        """Create or update the customer by the hub's external id; returns the ERP id.

        ``only`` (an update of a linked customer) names the canonical fields to write;
        the ERP keeps its own values of every other field."""
        ...

    def upsert_project(self, project: Project, external_id: str, refs: ErpRefs) -> str:
        """Create or update the project (job) by the hub's external id; returns the ERP id."""
        ...

    def delete_project(self, erp_project_id: str) -> None:
        """Delete a project (compensation); already gone is success."""
        ...

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        """Post transactions (at most ``capabilities.bulk_size``); one result per posting."""
        ...

    def posted(self, kind: WorkKind, period: str) -> list[PostedRecord]:
        """The hub's transactions of a work period (``YYYY-MM``), both posting modes (reconciliation)."""
        ...


@runtime_checkable
class ErpRefusals(Protocol):
    """An ERP that refuses postings after accepting the write (``Capabilities.answers_later``)."""

    def rejections(self, kind: WorkKind | None = None) -> list[PostingResult]:
        """Postings whose latest answer is a refusal, each with its hub error dict."""
        ...


@runtime_checkable
class ErpReceivables(Protocol):
    """An ERP that keeps receivables: AR invoices from the billing system, payments, credit memos."""

    def upsert_ar_invoice(self, invoice: ArInvoice) -> str:
        """Create or update the receivable invoice by its external id (the billing system's id)."""
        ...

    def apply_payment(self, payment: ArPayment) -> str:
        """Record a customer payment applied to an AR invoice, once per external id."""
        ...

    def void_ar_invoice(self, invoice: ArInvoice, external_id: str) -> str:
        """Take an AR invoice back with a credit memo (a posted invoice is never changed)."""
        ...

    def ar_invoices(self, start: date, end: date) -> list[ArInvoiceRecord]:
        """The hub's AR invoices dated in a range, with what was credited (reconciliation)."""
        ...


@dataclass(frozen=True)
class BillingChanges:
    """Billing changes since a cursor, oldest first, as the events its webhooks deliver (the same
    source event ids, so a change seen both ways is accepted once); the cursor to continue from;
    and the events that could not be read, each an error naming its event."""

    events: list[SourceEvent]
    cursor: str | None
    unreadable: list[HubError] = field(default_factory=list)


@dataclass(frozen=True)
class BilledInvoice:
    """An invoice as the billing system reports it, for reconciliation (amounts in minor units)."""

    id: str
    number: str | None
    status: str
    currency: str
    total_minor: int
    tax_minor: int
    hub_key: str | None


@runtime_checkable
class Billing(System, Protocol):
    """A billing system: invoices and payments (flows F6–F8).

    Every create carries a deterministic idempotency key (the hub's external
    id of the record), so a repeated create returns the first one.
    """

    def upsert_customer(self, customer: Customer, external_id: str) -> str:
        """Create or update the billing customer by the hub's external id."""
        ...

    def create_invoice(self, invoice: Invoice, billing_customer_id: str, idempotency_key: str) -> str:
        """Create a draft invoice with its lines; the same key returns the same invoice."""
        ...

    def finalize_invoice(self, invoice_id: str) -> IssuedInvoice:
        """Finalize and send a draft invoice; returns it with its number and status."""
        ...

    def void_invoice(self, invoice_id: str) -> None:
        """Void an open invoice (a correction is a credit note or a new invoice)."""
        ...

    def changes_since(self, cursor: str | None) -> BillingChanges:
        """Invoice changes after the cursor (from the oldest the system keeps when None): what
        the hub reads when a webhook may have been missed."""
        ...

    def get_invoice(self, invoice_id: str) -> IssuedInvoice:
        """The invoice as the billing system holds it now."""
        ...

    def create_subscription(
        self,
        billing_customer_id: str,
        *,
        key: str,
        product: str,
        price: Money,
        interval: Literal["month", "year"] = "month",
        quantity: int = 1,
    ) -> str:
        """A subscription to a recurring price, created once per ``key``; returns its id."""
        ...

    def invoices_between(self, start: date, end: date) -> list[BilledInvoice]:
        """Finalized invoices created in a date range (reconciliation)."""
        ...


PORTS: dict[Role, Any] = {"crm": Crm, "psa": Psa, "erp": Erp, "billing": Billing}

__all__ = [
    "PORTS",
    "WORK_ROW_KEYS",
    "Accounts",
    "ArInvoice",
    "ArInvoiceRecord",
    "ArPayment",
    "BilledInvoice",
    "Billing",
    "BillingChanges",
    "BillingStatus",
    "Capabilities",
    "Crm",
    "CrmBillingFeedback",
    "CustomerRecord",
    "Deal",
    "DealStatus",
    "Erp",
    "ErpMasterData",
    "ErpReceivables",
    "ErpRefs",
    "ErpRefusals",
    "EventPage",
    "MilestoneRecord",
    "PostedRecord",
    "Posting",
    "PostingResult",
    "Psa",
    "PsaBilling",
    "PsaMasterData",
    "PsaProjectRecord",
    "Role",
    "SourceEvent",
    "System",
    "WorkKind",
    "WorkPage",
]
