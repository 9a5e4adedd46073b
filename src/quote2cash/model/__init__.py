"""The canonical, system-neutral model every connector maps to and from."""

from pydantic import BaseModel

from quote2cash.model.billing import (
    ChangedLine,
    Invoice,
    InvoiceChange,
    InvoiceChangeKind,
    InvoiceLine,
    InvoiceStatus,
    IssuedInvoice,
    Payment,
)
from quote2cash.model.common import Canonical
from quote2cash.model.deal import (
    BillingModel,
    Contract,
    Opportunity,
    OpportunityLine,
    RateCard,
    RateCardLine,
)
from quote2cash.model.events import SCHEMA_VERSION, BusinessEvent
from quote2cash.model.finance import AccountingPeriod, FinancialDimensions
from quote2cash.model.money import Money, from_minor, minor_units, round_money, to_minor
from quote2cash.model.party import Contact, Customer, LegalEntity
from quote2cash.model.project import (
    Assignment,
    Milestone,
    Phase,
    Project,
    Resource,
    ResourceRequest,
    Task,
)
from quote2cash.model.work import Expense, TimeEntry

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "Customer": Customer,
    "LegalEntity": LegalEntity,
    "Contact": Contact,
    "Opportunity": Opportunity,
    "Contract": Contract,
    "RateCard": RateCard,
    "Project": Project,
    "Resource": Resource,
    "ResourceRequest": ResourceRequest,
    "Assignment": Assignment,
    "FinancialDimensions": FinancialDimensions,
    "AccountingPeriod": AccountingPeriod,
    "BusinessEvent": BusinessEvent,
    "TimeEntry": TimeEntry,
    "Expense": Expense,
    "Invoice": Invoice,
    "IssuedInvoice": IssuedInvoice,
    "InvoiceChange": InvoiceChange,
    "Payment": Payment,
    "Money": Money,
}

__all__ = [
    "SCHEMA_MODELS",
    "SCHEMA_VERSION",
    "AccountingPeriod",
    "Assignment",
    "BillingModel",
    "BusinessEvent",
    "Canonical",
    "ChangedLine",
    "Contact",
    "Contract",
    "Customer",
    "Expense",
    "FinancialDimensions",
    "Invoice",
    "InvoiceChange",
    "InvoiceChangeKind",
    "InvoiceLine",
    "InvoiceStatus",
    "IssuedInvoice",
    "LegalEntity",
    "Milestone",
    "Money",
    "Opportunity",
    "OpportunityLine",
    "Payment",
    "Phase",
    "Project",
    "RateCard",
    "RateCardLine",
    "Resource",
    "ResourceRequest",
    "Task",
    "TimeEntry",
    "from_minor",
    "minor_units",
    "round_money",
    "to_minor",
]
