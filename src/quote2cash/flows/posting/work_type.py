"""The two kinds of approved work the posting carries, time (F4) and expenses
(F5), as data: what differs between them is stated here once, and every stage
of the pipeline asks the :class:`WorkType` instead of testing the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from quote2cash.config import AccountsConfig
from quote2cash.errors import UsageError
from quote2cash.ports import Accounts, WorkKind
from quote2cash.rules.work import (
    MasterData,
    Violation,
    check_expense,
    check_time,
    describe_expense,
    describe_time,
)

#: The flow's name: its runs, cases, audit entries and DBOS schedule go by it.
FLOW = "post_approved_work"

#: A ledger account of the posting configuration (:class:`~quote2cash.config.AccountsConfig`), by field.
Account = Literal[
    "unbilled_receivable",
    "services_revenue",
    "project_cost",
    "cost_absorption",
    "expense_clearing",
    "rebillable_expenses",
]


@dataclass(frozen=True)
class WorkType:
    """What the posting pipeline needs to know about one kind of approved work.

    Attributes:
        kind: its name in the ports (``Psa.work_pages``, ``Erp.post``), the ledger
            (``work_entry.kind``, ``posting.kind``), case subjects and run ids.
        key_prefix: how the ERP external ids of its postings start.
        line_field: the entry field a posting is split by besides the project: the
            task for time, the expense category for expenses (``posting.task_id``).
        billable: (debit, credit) accounts of a billable posting.
        non_billable: (debit, credit) accounts of a non-billable posting.
        rule: the validation rules (:mod:`quote2cash.rules.work`): the first
            violation of an entry, or None.
        describe: a short description of one entry, for messages.
    """

    kind: WorkKind
    key_prefix: str
    line_field: Literal["task_id", "category"]
    billable: tuple[Account, Account]
    non_billable: tuple[Account, Account]
    rule: Callable[[dict[str, Any], MasterData], Violation | None]
    describe: Callable[[dict[str, Any], MasterData], str]

    def accounts(self, config: AccountsConfig, billable: bool) -> Accounts:
        """The ERP accounts a posting of this kind debits and credits."""
        debit, credit = self.billable if billable else self.non_billable
        return Accounts(debit=getattr(config, debit), credit=getattr(config, credit))


TIME = WorkType(
    kind="time",
    key_prefix="Q2C-T",
    line_field="task_id",
    # Billable time is revenue earned and not invoiced yet; non-billable time is project cost.
    billable=("unbilled_receivable", "services_revenue"),
    non_billable=("project_cost", "cost_absorption"),
    rule=check_time,
    describe=describe_time,
)
EXPENSE = WorkType(
    kind="expense",
    key_prefix="Q2C-E",
    line_field="category",
    # Re-billable expenses wait to be invoiced; the others are project cost. Both clear the claim.
    billable=("rebillable_expenses", "expense_clearing"),
    non_billable=("project_cost", "expense_clearing"),
    rule=check_expense,
    describe=describe_expense,
)
#: Every kind of work, by name, in the order a scheduled run posts them.
WORK_TYPES: dict[str, WorkType] = {TIME.kind: TIME, EXPENSE.kind: EXPENSE}


def work_type(kind: str) -> WorkType:
    """The work type of a kind (``time`` or ``expense``); :class:`UsageError` for any other."""
    found = WORK_TYPES.get(kind)
    if found is None:
        raise UsageError(f"unknown kind {kind!r}; use one of {', '.join(WORK_TYPES)}")
    return found
