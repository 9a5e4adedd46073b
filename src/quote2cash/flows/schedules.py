"""The hub's cron schedules: the time and expense micro-batch, the nightly reconciliation and
the monthly billing run."""

from __future__ import annotations

from dbos import DBOS

from quote2cash.flows.billing.periods import scheduled_billing
from quote2cash.flows.posting import scheduled_posting
from quote2cash.flows.reconcile_work import scheduled_reconciliation
from quote2cash.runtime.hub import Hub


def install_schedules(hub: Hub) -> list[str]:
    """Create or replace the schedules from configuration (call after launch, on every start)."""
    posting = hub.config.posting
    DBOS.apply_schedules(
        [
            {
                "schedule_name": "q2c.post_approved_work",
                "workflow_fn": scheduled_posting,
                "schedule": posting.schedule,
                "queue_name": "q2c.posting",
            },
            {
                "schedule_name": "q2c.reconcile_work",
                "workflow_fn": scheduled_reconciliation,
                "schedule": posting.reconcile_schedule,
                "queue_name": "q2c.posting",
            },
            {
                "schedule_name": "q2c.bill_period",
                "workflow_fn": scheduled_billing,
                "schedule": hub.config.billing.schedule,
                "queue_name": "q2c.posting",
            },
        ]
    )
    return [
        f"post approved work: {posting.schedule}",
        f"reconcile: {posting.reconcile_schedule}",
        f"bill the closed month: {hub.config.billing.schedule}",
    ]
