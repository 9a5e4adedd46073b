"""The validation rules of time and expenses: the fast path agrees with the full rules."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any

from quote2cash.rules import work
from quote2cash.rules.work import MasterData, Period, Project, check_entry

TM = Project("opp-1", "Harbor", "ws-1", "job-1", "US01", "1", "USD", "time_and_materials", "STD-USD", "7")
FIXED = Project("opp-2", "Summit", "ws-2", "job-2", "US01", "1", "USD", "fixed_fee", "STD-USD", "7")
MD = MasterData(
    projects={"ws-1": TM, "ws-2": FIXED},
    task_states={"t-open": ("ws-1", "started"), "t-done": ("ws-1", "completed"), "t-2": ("ws-2", "started")},
    roles={"u-1": "Consultant", "u-2": "Unicorn"},
    rate_cards={"STD-USD": ("USD", {"Consultant": Decimal(180)})},
    periods=[Period("Oct 2026", date(2026, 10, 1), date(2026, 10, 31), False)],
    active_subsidiaries={"1"},
    active_departments={"7"},
    legal_entities={"US01"},
)


def _full(kind: str, entry: dict[str, Any]) -> str | None:
    """The rules without the fast path."""
    project = MD.projects.get(entry["workspace_id"])
    original = work._passes
    work._passes = lambda *a: False  # type: ignore[assignment]
    try:
        violation = check_entry(kind, entry, MD)
    finally:
        work._passes = original
    assert project is not None or violation is not None
    return violation.code if violation else None


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
        fast = check_entry("time", entry, MD)
        assert (fast.code if fast else None) == _full("time", entry), entry
        checked += 1
    assert checked == 96


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
    violation = check_entry("time", entry, MD)
    assert violation is not None and violation.code == "time.rate_mismatch"
    assert violation.message.startswith(
        "time entry 42 (user u-1, 2026-10-05, 1.50 h) is billed at 150.00 USD/h"
    )
    assert "Correct the rate in the PSA" in violation.message
