"""What differs between time and expenses is held by their WorkType, and the
posting package's public surface is exactly its ``__all__``."""

from __future__ import annotations

import types

import pytest

from quote2cash.config import AccountsConfig
from quote2cash.errors import UsageError
from quote2cash.flows import posting
from quote2cash.flows.posting import EXPENSE, TIME, WORK_TYPES, work_type
from quote2cash.ports import Accounts


def test_each_kind_debits_and_credits_its_accounts() -> None:
    accounts = AccountsConfig()
    # Billable time: unbilled receivable against revenue; non-billable: project cost, absorbed.
    assert TIME.accounts(accounts, True) == Accounts(debit="1210", credit="4000")
    assert TIME.accounts(accounts, False) == Accounts(debit="6100", credit="6190")
    # Expenses clear the claim: re-billable ones wait to be invoiced, the others are project cost.
    assert EXPENSE.accounts(accounts, True) == Accounts(debit="1220", credit="2150")
    assert EXPENSE.accounts(accounts, False) == Accounts(debit="6100", credit="2150")


def test_configured_accounts_are_the_ones_posted() -> None:
    accounts = AccountsConfig(services_revenue="4100", expense_clearing="2199")
    assert TIME.accounts(accounts, True).credit == "4100"
    assert EXPENSE.accounts(accounts, False).credit == "2199"


def test_kinds_are_looked_up_by_name_and_anything_else_is_refused() -> None:
    assert list(WORK_TYPES) == ["time", "expense"]  # the order a scheduled run posts them in
    assert work_type("time") is TIME and work_type("expense") is EXPENSE
    with pytest.raises(UsageError, match="unknown kind 'expenses'; use one of time, expense"):
        work_type("expenses")


def test_posting_surface_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(posting).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public == set(posting.__all__)
