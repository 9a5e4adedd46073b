"""Cash: billing schedules from contracts, milestone invoices (F6), the T&M and retainer run (F7),
and invoice and payment feedback (F8). Importing the package declares its flows and workflows."""

from __future__ import annotations

from quote2cash.flows.billing.feedback import FEEDBACK
from quote2cash.flows.billing.milestones import INVOICE_MILESTONE, poll_milestones
from quote2cash.flows.billing.periods import bill_now, bill_period, scheduled_billing
from quote2cash.flows.billing.schedule import SCHEDULE_BILLING

__all__ = [
    "FEEDBACK",
    "INVOICE_MILESTONE",
    "SCHEDULE_BILLING",
    "bill_now",
    "bill_period",
    "poll_milestones",
    "scheduled_billing",
]
