"""A month of timesheets and expenses for a firm's projects, with a few bad
entries planted on purpose (and listed, so a test or the demo knows what the
hub should quarantine).

The month is reproducible: every random draw comes from the seed and a stable
identity (a consultant and a day, a project's CRM reference), never from one
generator consumed in whatever order the projects were created, so the same
seed gives the same month however the hub's flows interleaved.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quote2cash.sandbox.kantata import KantataSandbox

#: Project billing models under which time is billed (mirrors the hub's rule).
TIME_BILLED = {"time_and_materials"}
#: Billing model of each project template (mirrors the Kantata connector's ``billing_model_to_template``).
TEMPLATE_BILLING = {
    "T&M Delivery": "time_and_materials",
    "Fixed-Fee Delivery": "fixed_fee",
    "Milestone Delivery": "milestone",
    "Retainer Service": "retainer",
    "Managed Service": "subscription",
}
CATEGORIES = ["Travel", "Lodging", "Meals", "Software", "Client entertainment"]


@dataclass(frozen=True)
class WorkProject:
    """What the generator needs to know about a project.

    ``ref`` is a stable identity (the CRM opportunity id) that seeds the
    project's draws; it defaults to the workspace id.
    """

    workspace_id: str
    currency: str
    billing_model: str
    open_tasks: tuple[str, ...]
    closed_tasks: tuple[str, ...] = ()
    ref: str = ""

    @property
    def key(self) -> str:
        """The identity the project's random draws are derived from."""
        return self.ref or self.workspace_id


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
    The result depends on the projects given, not on their order.
    """
    out = Month()
    projects = sorted(projects, key=lambda p: p.key)
    days = business_days(year, month)
    previous = date(year, month, 1) - timedelta(days=1)
    staffed = {}
    for user, _ in consultants:
        pick = random.Random(f"{seed}:{user}:staffing")
        staffed[user] = pick.sample(projects, k=min(len(projects), pick.randint(1, 3)))
    fixed = [p for p in projects if p.billing_model not in TIME_BILLED]
    with_closed = [p for p in projects if p.closed_tasks]
    for day in days:
        for user, role in consultants:
            rng = random.Random(f"{seed}:{user}:{day.isoformat()}")
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
        rng = random.Random(f"{seed}:{user}:expenses")
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


def work_projects(
    kantata: KantataSandbox,
    *,
    seed: int = 7,
    close_share: float = 0.2,
    workspaces: Collection[str] | None = None,
) -> list[WorkProject]:
    """The projects in the Kantata sandbox (or only ``workspaces``), ready for :func:`generate_month`.

    On about ``close_share`` of the projects with several tasks the project
    manager closes the first task (late time booked on it must be caught);
    which ones is drawn from the seed and the project's CRM reference.
    """
    refs = {
        str(r["subject_id"]): str(r["service_model_ref"])
        for r in kantata.records("external_references")
        if r.get("subject_type") == "Workspace" and r.get("service_model") == "Opportunity"
    }
    templates = {str(t["id"]): str(t["name"]) for t in kantata.records("project_templates")}
    tasks: dict[str, list[Any]] = {}
    for story in kantata.records("stories"):
        if story.get("story_type") == "task":
            tasks.setdefault(str(story["workspace_id"]), []).append(story)
    out = []
    for ws in kantata.records("workspaces"):
        ws_id = str(ws["id"])
        if workspaces is not None and ws_id not in workspaces:
            continue
        ref = refs.get(ws_id, ws_id)
        stories = tasks.get(ws_id, [])
        closed = [s for s in stories if s.get("state") == "completed"]
        open_ = [s for s in stories if s.get("state") != "completed"]
        if not closed and len(open_) > 1 and random.Random(f"{seed}:{ref}:close").random() < close_share:
            kantata.state.update("stories", str(open_[0]["id"]), {"state": "completed"}, trusted=True)
            closed, open_ = open_[:1], open_[1:]
        out.append(
            WorkProject(
                ws_id,
                str(ws.get("currency") or "USD"),
                TEMPLATE_BILLING.get(templates.get(str(ws.get("project_template_id")), ""), "fixed_fee"),
                tuple(str(s["id"]) for s in open_) or tuple(str(s["id"]) for s in closed),
                tuple(str(s["id"]) for s in closed),
                ref,
            )
        )
    return out


def seed_month(
    kantata: KantataSandbox,
    rate_cards: dict[str, dict[str, Decimal]],
    year: int,
    month: int,
    *,
    seed: int = 7,
    workspaces: Collection[str] | None = None,
) -> Month:
    """Generate a month for the projects in the Kantata sandbox and add it, approved; returns it.

    ``workspaces`` narrows it to those projects. Nothing is added when there is
    no project or no consultant yet.
    """
    projects = work_projects(kantata, seed=seed, workspaces=workspaces)
    people = [(str(u["id"]), str(u.get("headline"))) for u in kantata.records("users")]
    if not projects or not people:
        return Month()
    generated = generate_month(projects, people, rate_cards, year, month, seed=seed)
    kantata.add_time_entries(generated.time_entries)
    kantata.add_expenses(generated.expenses)
    return generated


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
