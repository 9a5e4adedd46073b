"""The validation rules of time and expenses: the fast path agrees with the full rules."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from quote2cash.model import FinancialDimensions, Project
from quote2cash.rules.work import (
    MasterData,
    Period,
    ProjectRefs,
    check_expense,
    check_time,
    expense_violation,
    time_violation,
)


def _project(opp: str, name: str, workspace: str, billing_model: str) -> tuple[Project, ProjectRefs]:
    project = Project(
        source_system="q2c",
        source_id=opp,
        opportunity_id=opp,
        customer_id=None,
        name=name,
        billing_model=billing_model,
        currency="USD",
        start_date=None,
        dimensions=FinancialDimensions(legal_entity="US01", subsidiary="1", department="7"),
    )
    return project, ProjectRefs(workspace_id=workspace, erp_project_id=f"job-{opp}", rate_card="STD-USD")


MD = MasterData(
    projects={
        "ws-1": _project("opp-1", "Harbor", "ws-1", "time_and_materials"),
        "ws-2": _project("opp-2", "Summit", "ws-2", "fixed_fee"),
        "ws-3": _project("opp-3", "Pioneer", "ws-3", "subscription"),
    },
    task_states={"t-open": ("ws-1", "started"), "t-done": ("ws-1", "completed"), "t-2": ("ws-2", "started")},
    roles={"u-1": "Consultant", "u-2": "Unicorn"},
    rate_cards={"STD-USD": ("USD", {"Consultant": Decimal(180)})},
    periods=[Period("Oct 2026", date(2026, 10, 1), date(2026, 10, 31), False)],
    active_subsidiaries={"1"},
    active_departments={"7"},
    legal_entities={"US01"},
)


def test_fast_path_agrees_with_the_rules_on_every_combination() -> None:
    combos = itertools.product(
        ["ws-1", "ws-2", "ws-9"],
        ["t-open", "t-done", "t-2", None],
        [True, False],
        ["u-1", "u-2"],
        [18000, 15000],
    )
    checked = 0
    for ws, task, billable, user, rate in combos:
        entry = {
            "source_id": "e",
            "workspace_id": ws,
            "task_id": task,
            "user_id": user,
            "billable": billable,
            "rate_minor": rate,
            "minutes": 60,
            "work_date": date(2026, 10, 5),
            "currency": "USD",
        }
        fast, full = check_time(entry, MD), time_violation(entry, MD)
        assert (fast.code if fast else None) == (full.code if full else None), entry
        assert ws != "ws-9" or full is not None
        checked += 1
    assert checked == 96


def test_expense_fast_path_agrees_with_the_rules_on_every_combination() -> None:
    combos = itertools.product(
        ["ws-1", "ws-2", "ws-3", "ws-9"], ["travel", None], [True, False], ["USD", "EUR"]
    )
    checked = 0
    for ws, category, billable, currency in combos:
        entry = {
            "source_id": "x",
            "workspace_id": ws,
            "user_id": "u-1",
            "billable": billable,
            "amount_minor": 4250,
            "work_date": date(2026, 10, 5),
            "currency": currency,
            "category": category,
        }
        fast, full = check_expense(entry, MD), expense_violation(entry, MD)
        assert (fast.code if fast else None) == (full.code if full else None), entry
        checked += 1
    assert checked == 32


def test_messages_name_the_entry_project_and_fix() -> None:
    entry = {
        "source_id": "42",
        "workspace_id": "ws-1",
        "task_id": "t-open",
        "user_id": "u-1",
        "billable": True,
        "rate_minor": 15000,
        "minutes": 90,
        "work_date": date(2026, 10, 5),
        "currency": "USD",
    }
    violation = check_time(entry, MD)
    assert violation is not None and violation.code == "time.rate_mismatch"
    assert violation.message.startswith(
        "time entry 42 (user u-1, 2026-10-05, 1.50 h) is billed at 150.00 USD/h"
    )
    assert "Correct the rate in the PSA" in violation.message
