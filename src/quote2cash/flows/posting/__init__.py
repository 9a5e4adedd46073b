"""F4 / F5 — approved time and expenses posted to the ERP, one module per stage.

::

    run        the DBOS workflow: post_approved_work, scheduled_posting, post_now
    pull       changes since the cursor into the work_entry ledger
    classify   each entry: quarantined, held, or assigned to a posting
    aggregate  the postings (one GROUP BY), reversals, the run's figures
    send       postings to the routed ERP (and the shadow), in batches
    confirm    the ERP's answers, and the cases they settle
    kpis       approval → posted latency and SLA
    work_type  what differs between time and expenses: TIME, EXPENSE

Importing this package registers the workflow with DBOS.
"""

from __future__ import annotations

from quote2cash.flows.posting.run import post_approved_work, post_now, run_id_now, scheduled_posting
from quote2cash.flows.posting.work_type import EXPENSE, FLOW, TIME, WORK_TYPES, WorkType, work_type

__all__ = [
    "EXPENSE",
    "FLOW",
    "TIME",
    "WORK_TYPES",
    "WorkType",
    "post_approved_work",
    "post_now",
    "run_id_now",
    "scheduled_posting",
    "work_type",
]
