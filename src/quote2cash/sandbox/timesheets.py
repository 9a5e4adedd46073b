"""A month of timesheets and expenses for a firm's projects, with a few bad
entries planted on purpose (and listed, so a test or the demo knows what the
hub should quarantine)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

#: Project billing models under which time is billed (mirrors the hub's rule).
TIME_BILLED = {"time_and_materials"}
CATEGORIES = ["Travel", "Lodging", "Meals", "Software", "Client entertainment"]


@dataclass(frozen=True)
class WorkProject:
    """What the generator needs to know about a project."""

    workspace_id: str
    currency: str
    billing_model: str
    open_tasks: tuple[str, ...]
    closed_tasks: tuple[str, ...] = ()


@dataclass
class Month:
    """Generated entries, ready for ``KantataSandbox.add_time_entries`` / ``add_expenses``."""

    time_entries: list[dict[str, Any]] = field(default_factory=list)
    expenses: list[dict[str, Any]] = field(default_factory=list)
    planted: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # reason -> list indexes


def business_days(year: int, month: int) -> list[date]:
    """Monday-to-Friday dates of a month."""
    day = date(year, month, 1)
    days = []
    while day.month == month:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def generate_month(
    projects: list[WorkProject],
    consultants: list[tuple[str, str]],
    rate_cards: dict[str, dict[str, Decimal]],
    year: int,
    month: int,
    *,
    seed: int = 7,
    entries_per_day: int = 2,
    bad_share: float = 0.02,
    approved: bool = True,
) -> Month:
    """Timesheets for every consultant on every business day, and a few expenses each.

    ``consultants`` are (PSA user id, role). About ``bad_share`` of the entries
    break one rule each: dated in the previous (closed) month, booked on a
    closed task, billed at the wrong rate, or billable on a fixed-fee project.
    """
    rng = random.Random(seed)
    out = Month()
    days = business_days(year, month)
    previous = date(year, month, 1) - timedelta(days=1)
    staffed = {user: rng.sample(projects, k=min(len(projects), rng.randint(1, 3))) for user, _ in consultants}
    fixed = [p for p in projects if p.billing_model not in TIME_BILLED]
    with_closed = [p for p in projects if p.closed_tasks]
    for day in days:
        for user, role in consultants:
            for _ in range(entries_per_day):
                project = rng.choice(staffed[user])
                billable = project.billing_model in TIME_BILLED
                rate = rate_cards[project.currency][role] if billable else Decimal(0)
                entry = {
                    "workspace_id": project.workspace_id,
                    "story_id": rng.choice(project.open_tasks) if project.open_tasks else None,
                    "user_id": user,
                    "date_performed": day.isoformat(),
                    "time_in_minutes": rng.choice([60, 90, 120, 180, 240]),
                    "billable": billable,
                    "rate_in_cents": int(rate * 100),
                    "currency": project.currency,
                    "notes": f"{role} work",
                    "approved": approved,
                }
                roll = rng.random()
                if roll < bad_share:
                    reason = _plant(rng, entry, project, previous, rate_cards, role, fixed, with_closed)
                    out.planted[reason].append(len(out.time_entries))
                if entry["story_id"] is None:
                    entry.pop("story_id")
                out.time_entries.append(entry)
    for user, _role in consultants:
        for _ in range(rng.randint(1, 4)):
            project = rng.choice(staffed[user])
            expense = {
                "workspace_id": project.workspace_id,
                "user_id": user,
                "date": rng.choice(days).isoformat(),
                "category": rng.choice(CATEGORIES),
                "amount_in_cents": rng.randrange(1500, 90000),
                "currency": project.currency,
                "billable": project.billing_model in TIME_BILLED,
                "reimbursable": rng.random() < 0.8,
                "notes": "expense",
                "approved": approved,
            }
            if rng.random() < bad_share * 5:
                expense["category"] = ""
                out.planted["expense.category_missing"].append(len(out.expenses))
            out.expenses.append(expense)
    return out


def _plant(
    rng: random.Random,
    entry: dict[str, Any],
    project: WorkProject,
    previous: date,
    rate_cards: dict[str, dict[str, Decimal]],
    role: str,
    fixed: list[WorkProject],
    with_closed: list[WorkProject],
) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        entry["date_performed"] = previous.isoformat()
        return "erp.period_closed"
    if choice == 1 and with_closed:
        target = rng.choice(with_closed)
        entry.update(
            workspace_id=target.workspace_id,
            story_id=rng.choice(target.closed_tasks),
            currency=target.currency,
            billable=target.billing_model in TIME_BILLED,
            rate_in_cents=int(rate_cards[target.currency][role] * 100)
            if target.billing_model in TIME_BILLED
            else 0,
        )
        return "time.task_closed"
    if choice == 2 and entry["billable"]:
        entry["rate_in_cents"] = entry["rate_in_cents"] + 2500
        return "time.rate_mismatch"
    if fixed:
        target = rng.choice(fixed)
        entry.update(
            workspace_id=target.workspace_id,
            story_id=rng.choice(target.open_tasks) if target.open_tasks else None,
            currency=target.currency,
            billable=True,
            rate_in_cents=int(rate_cards[target.currency][role] * 100),
        )
        return "time.billable_mismatch"
    entry["date_performed"] = previous.isoformat()
    return "erp.period_closed"
