"""A generated month of delivered work as Certinia records: weekly timecards and expenses.

The firm's month (:func:`quote2cash.sandbox.timesheets.generate_month`) is a
list of entries: a consultant, a day, a project and a task, minutes, billable
and a rate. Certinia holds time as one ``pse__Timecard_Header__c`` per
resource, project, milestone (the task time is booked on) and week, with the
hours of each weekday and one bill rate. So the entries are grouped by
resource, project, milestone, billable, bill rate and the Monday of their
week, and their hours summed by day.

The planted bad entries stay meaningful: what is wrong with one is part of
what it is grouped by (a milestone closed for time entry, a wrong bill rate,
billable time on a fixed-fee project each land on a timecard of their own),
or is a day of its own (time on the last day of the closed month sits on the
timecard of the week that spans the month end, beside good days).

Like :func:`quote2cash.sandbox.timesheets.seed_month`, every draw comes from
the seed and a stable identity (the project's hub reference, the resource),
so a seed gives the same month however the hub's flows interleaved.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quote2cash.sandbox.salesforce.certinia import HOURS_FIELDS, TEMPLATE_BILLING_TYPES
from quote2cash.sandbox.timesheets import TEMPLATE_BILLING, Month, WorkProject, generate_month

if TYPE_CHECKING:
    from quote2cash.sandbox.salesforce.app import SalesforceSandbox

#: ``pse__Billing_Type__c`` -> the hub's billing model (through the firm's templates).
BILLING_TYPE_MODEL = {TEMPLATE_BILLING_TYPES[name]: model for name, model in TEMPLATE_BILLING.items()}
#: Milestone statuses that take no more time (as the connector's default mapping reads them).
CLOSED_STATUSES = frozenset({"Approved", "Complete", "Completed", "Closed", "Canceled", "Cancelled"})


@dataclass
class Timecards:
    """A month written to Certinia: the timecard headers and expenses, as inserted.

    ``days`` counts the days with hours over every header (the hub posts a
    timecard day by day); ``planted`` the days (or expenses) that carry a
    planted bad entry, by the rule it breaks.
    """

    headers: list[dict[str, Any]] = field(default_factory=list)
    expenses: list[dict[str, Any]] = field(default_factory=list)
    days: int = 0
    planted: Counter[str] = field(default_factory=Counter)


def week_start(day: date) -> date:
    """The Monday of a day's week (a timecard header's ``pse__Start_Date__c``)."""
    return day - timedelta(days=day.weekday())


def timecards(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Generated time entries as weekly timecard headers (approved, as the entries are).

    One header per resource, project, milestone, billable, bill rate and week;
    the hours of entries on the same day add up. Headers come out in a stable
    order (that of their first entry).
    """
    headers: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        day = date.fromisoformat(str(e["date_performed"]))
        billable = bool(e["billable"])
        rate = Decimal(int(e["rate_in_cents"])) / 100 if billable else None
        key = (e["user_id"], e["workspace_id"], e.get("story_id"), billable, rate, week_start(day))
        header = headers.get(key)
        if header is None:
            header = headers[key] = {
                "pse__Project__c": e["workspace_id"],
                "pse__Resource__c": e["user_id"],
                "pse__Milestone__c": e.get("story_id"),
                "pse__Start_Date__c": week_start(day).isoformat(),
                "pse__Billable__c": billable,
                "pse__Bill_Rate__c": None if rate is None else float(rate),
                "pse__Status__c": "Approved" if e.get("approved", True) else "Submitted",
            }
        hours = HOURS_FIELDS[day.weekday()]
        header[hours] = header.get(hours, 0.0) + int(e["time_in_minutes"]) / 60
    return list(headers.values())


def expense(e: dict[str, Any]) -> dict[str, Any]:
    """A generated expense as a ``pse__Expense__c`` (a missing category is no ``pse__Type__c``)."""
    return {
        "pse__Project__c": e["workspace_id"],
        "pse__Resource__c": e["user_id"],
        "pse__Expense_Date__c": e["date"],
        "pse__Amount__c": int(e["amount_in_cents"]) / 100,
        "CurrencyIsoCode": e["currency"],
        "pse__Type__c": e["category"] or None,
        "pse__Billable__c": bool(e["billable"]),
        "pse__Non_Reimbursible__c": not e["reimbursable"],
        "pse__Description__c": e.get("notes"),
        "pse__Status__c": "Approved" if e.get("approved", True) else "Submitted",
    }


def work_projects(
    box: SalesforceSandbox,
    *,
    seed: int = 7,
    close_share: float = 0.2,
    projects: Collection[str] | None = None,
) -> tuple[list[WorkProject], list[str]]:
    """The projects in the org (or only ``projects``), ready for :func:`generate_month`, and the
    milestones their project managers close for time entry once the month's time is in.

    On about ``close_share`` of the projects with several open milestones the
    first one (by target date) is to be closed: time booked on it must be
    caught. Which ones is drawn from the seed and the project's hub reference.
    """
    milestones: dict[str, list[dict[str, Any]]] = {}
    for m in box.records("pse__Milestone__c"):
        milestones.setdefault(str(m["pse__Project__c"]), []).append(m)
    out, to_close = [], []
    for p in box.records("pse__Proj__c"):
        project_id = str(p["Id"])
        if p.get("pse__Is_Template__c") or (projects is not None and project_id not in projects):
            continue
        ref = str(p.get("Hub_Ext_Id__c") or project_id)
        stones = sorted(
            milestones.get(project_id, []), key=lambda m: (str(m.get("pse__Target_Date__c")), str(m["Name"]))
        )
        closed = [
            str(m["Id"])
            for m in stones
            if m.get("pse__Closed_for_Time_Entry__c") or m.get("pse__Status__c") in CLOSED_STATUSES
        ]
        open_ = [str(m["Id"]) for m in stones if str(m["Id"]) not in closed]
        if not closed and len(open_) > 1 and random.Random(f"{seed}:{ref}:close").random() < close_share:
            to_close.append(open_[0])
            closed, open_ = open_[:1], open_[1:]
        out.append(
            WorkProject(
                project_id,
                str(p.get("CurrencyIsoCode") or "USD"),
                BILLING_TYPE_MODEL.get(str(p.get("pse__Billing_Type__c")), "fixed_fee"),
                tuple(open_) or tuple(closed),
                tuple(closed),
                ref,
            )
        )
    return out, to_close


def seed_month(
    box: SalesforceSandbox,
    rate_cards: dict[str, dict[str, Decimal]],
    year: int,
    month: int,
    *,
    seed: int = 7,
    projects: Collection[str] | None = None,
) -> Timecards:
    """Generate a month for the projects in the org and add it as approved timecards and expenses.

    ``projects`` narrows it to those projects. The milestones chosen to close
    are closed for time entry after the timecards are in (late time, caught at
    posting). Nothing is added when there is no project or no active resource.
    """
    found, to_close = work_projects(box, seed=seed, projects=projects)
    people = [
        (str(c["Id"]), str(c.get("pse__Resource_Role__c")))
        for c in box.records("Contact")
        if c.get("pse__Is_Resource__c") and c.get("pse__Is_Resource_Active__c")
    ]
    if not found or not people:
        return Timecards()
    generated = generate_month(found, people, rate_cards, year, month, seed=seed)
    headers = timecards(generated.time_entries)
    expenses = [expense(e) for e in generated.expenses]
    box.insert_many("pse__Timecard_Header__c", headers)
    box.insert_many("pse__Expense__c", expenses)
    for milestone in to_close:
        box.update("pse__Milestone__c", milestone, {"pse__Closed_for_Time_Entry__c": True})
    days = sum(1 for h in headers for f in HOURS_FIELDS if h.get(f))
    return Timecards(headers, expenses, days, _planted_days(generated))


def _planted_days(generated: Month) -> Counter[str]:
    """Days of timecards (and expenses) carrying a planted entry, by reason."""
    out: Counter[str] = Counter()
    for reason, indexes in generated.planted.items():
        if reason.startswith("expense."):
            out[reason] += len(indexes)
            continue
        days = set()
        for i in indexes:
            e = generated.time_entries[i]
            rate = e["rate_in_cents"] if e["billable"] else None
            days.add(
                (e["user_id"], e["workspace_id"], e.get("story_id"), e["billable"], rate, e["date_performed"])
            )
        out[reason] += len(days)
    return out


__all__ = [
    "BILLING_TYPE_MODEL",
    "Timecards",
    "expense",
    "seed_month",
    "timecards",
    "week_start",
    "work_projects",
]
