"""Validation of approved time entries and expenses before they are posted,
with messages a PMO or finance person can act on.

The rules run against :class:`MasterData`, a snapshot of what the hub knows
about projects (from lead-to-project), tasks and people (from the PSA),
accounting periods, subsidiaries and cost centres (from the ERP) and rate
cards (from configuration). Each rule returns a :class:`Violation` or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from quote2cash.errors import Owner
from quote2cash.model import from_minor, to_minor

#: Billing models under which time itself is billed. Under the others the
#: client pays for milestones, a fixed fee or a subscription, so time is cost.
TIME_BILLED = frozenset({"time_and_materials"})
#: Billing models under which expenses may be re-billed to the client.
EXPENSES_REBILLED = frozenset({"time_and_materials", "milestone", "fixed_fee", "retainer"})
#: PSA task states that no longer accept time.
CLOSED_TASK_STATES = frozenset({"completed", "closed", "archived", "cancelled"})


@dataclass(frozen=True)
class Project:
    """What posting needs to know about a project."""

    canonical_id: str
    name: str
    workspace_id: str
    erp_job_id: str
    legal_entity: str
    subsidiary: str
    currency: str
    billing_model: str
    rate_card: str | None
    department: str | None
    open_for_time: bool = True
    open_for_expenses: bool = True


@dataclass(frozen=True)
class Period:
    """An ERP accounting period."""

    name: str
    start: date
    end: date
    closed: bool


@dataclass
class MasterData:
    """A snapshot of the reference data the rules check against."""

    projects: dict[str, Project]  # by PSA workspace id
    task_states: dict[str, tuple[str, str]]  # story id -> (workspace id, state)
    roles: dict[str, str]  # PSA user id -> role
    rate_cards: dict[str, tuple[str, dict[str, Decimal]]]  # code -> (currency, role -> rate)
    periods: list[Period]
    active_subsidiaries: set[str]
    active_departments: set[str]
    legal_entities: set[str]
    names: dict[str, str] = field(default_factory=dict)  # user id -> name, for messages

    def period_of(self, day: date) -> Period | None:
        """The accounting period containing a day."""
        for period in self.periods:
            if period.start <= day <= period.end:
                return period
        return None

    def next_open_period(self, day: date) -> Period | None:
        """The first open period that starts after ``day``."""
        later = sorted((p for p in self.periods if p.start > day and not p.closed), key=lambda p: p.start)
        return later[0] if later else None


@dataclass(frozen=True)
class Violation:
    """Why an entry cannot be posted."""

    code: str
    message: str
    owner: Owner


def _money(minor: int, currency: str) -> str:
    return f"{from_minor(minor, currency):,} {currency}"


def describe(kind: str, entry: dict[str, Any], md: MasterData) -> str:
    """A short human description of an entry for messages."""
    who = md.names.get(str(entry.get("user_id")), f"user {entry.get('user_id')}")
    if kind == "time":
        return f"time entry {entry['source_id']} ({who}, {entry['work_date']}, {entry['minutes'] / 60:.2f} h)"
    return (
        f"expense {entry['source_id']} ({who}, {entry['work_date']}, "
        f"{_money(entry['amount_minor'], entry['currency'])}, {entry.get('category') or 'no category'})"
    )


def check_entry(kind: str, entry: dict[str, Any], md: MasterData) -> Violation | None:
    """The first rule an approved entry breaks, or None. The period rule is separate.

    Messages are only built for entries that break a rule: this runs for every
    entry of a month-end batch.
    """
    project = md.projects.get(str(entry["workspace_id"]))
    if project is not None and _passes(kind, entry, md, project):
        return None
    what = describe(kind, entry, md)
    if project is None:
        return Violation(
            f"{kind}.project_unknown",
            f"{what} is booked on PSA workspace {entry['workspace_id']}, which has no project in the ERP "
            "(it was not created from a won deal). Move the entry to the right project in the PSA.",
            Owner.PMO,
        )
    name = f"project '{project.name}'"
    open_ = project.open_for_time if kind == "time" else project.open_for_expenses
    if not open_:
        return Violation(
            f"{kind}.project_closed",
            f"{what} is booked on {name}, which is closed for {'time' if kind == 'time' else 'expenses'}. "
            "Reopen the project or move the entry.",
            Owner.PMO,
        )
    if project.legal_entity not in md.legal_entities or project.subsidiary not in md.active_subsidiaries:
        return Violation(
            f"{kind}.legal_entity_invalid",
            f"{what}: {name} belongs to legal entity {project.legal_entity}, whose ERP subsidiary "
            f"{project.subsidiary} is not active. Ask finance to activate it.",
            Owner.FINANCE,
        )
    if project.department is not None and project.department not in md.active_departments:
        return Violation(
            f"{kind}.cost_centre_invalid",
            f"{what}: the cost centre (ERP department {project.department}) of {name} is not active. "
            "Ask finance to fix the project's cost centre.",
            Owner.FINANCE,
        )
    if kind == "time":
        return _check_time(entry, md, project, what, name)
    return _check_expense(entry, project, what, name)


def _passes(kind: str, entry: dict[str, Any], md: MasterData, project: Project) -> bool:
    """The fast path: True when no rule is broken (no message is built)."""
    if not (project.open_for_time if kind == "time" else project.open_for_expenses):
        return False
    if project.legal_entity not in md.legal_entities or project.subsidiary not in md.active_subsidiaries:
        return False
    if project.department is not None and project.department not in md.active_departments:
        return False
    if kind != "time":
        return (
            bool(entry.get("category"))
            and entry["currency"] == project.currency
            and (not entry["billable"] or project.billing_model in EXPENSES_REBILLED)
        )
    task = entry.get("task_id")
    if task:
        workspace, state = md.task_states.get(str(task), (None, None))
        if workspace is None or workspace != project.workspace_id or state in CLOSED_TASK_STATES:
            return False
    if not entry["billable"]:
        return True
    if project.billing_model not in TIME_BILLED:
        return False
    card = md.rate_cards.get(project.rate_card or "")
    expected = card[1].get(md.roles.get(str(entry.get("user_id"))) or "") if card else None
    return expected is not None and int(entry["rate_minor"]) == to_minor(expected, project.currency)


def _check_time(
    entry: dict[str, Any], md: MasterData, project: Project, what: str, name: str
) -> Violation | None:
    task = entry.get("task_id")
    if task:
        workspace, state = md.task_states.get(str(task), (None, None))
        if workspace is None or str(workspace) != str(entry["workspace_id"]):
            return Violation(
                "time.task_unknown",
                f"{what} is booked on task {task}, which is not part of {name}.",
                Owner.PMO,
            )
        if state in CLOSED_TASK_STATES:
            return Violation(
                "time.task_closed",
                f"{what} is booked on task {task} of {name}, which is {state} and takes no more time. "
                "Move the entry to an open task.",
                Owner.PMO,
            )
    if entry["billable"] and project.billing_model not in TIME_BILLED:
        return Violation(
            "time.billable_mismatch",
            f"{what} is marked billable, but {name} is billed as {project.billing_model.replace('_', ' ')}, "
            "where time is not billed to the client. Mark it non-billable in the PSA.",
            Owner.PMO,
        )
    if entry["billable"]:
        role = md.roles.get(str(entry.get("user_id")))
        card = md.rate_cards.get(project.rate_card or "")
        expected = card[1].get(role or "") if card else None
        if expected is None:
            return Violation(
                "time.rate_unknown",
                f"{what}: the rate card {project.rate_card or '(none)'} of {name} has no rate for the role "
                f"{role or '(unknown)'}. Add the rate to the rate card.",
                Owner.FINANCE,
            )
        expected_minor = to_minor(expected, project.currency)
        if int(entry["rate_minor"]) != expected_minor:
            return Violation(
                "time.rate_mismatch",
                f"{what} is billed at {_money(entry['rate_minor'], entry['currency'])}/h, but the rate card "
                f"{project.rate_card} gives {_money(expected_minor, project.currency)}/h for {role}. "
                "Correct the rate in the PSA and approve the entry again.",
                Owner.PMO,
            )
    return None


def _check_expense(entry: dict[str, Any], project: Project, what: str, name: str) -> Violation | None:
    if not entry.get("category"):
        return Violation(
            "expense.category_missing", f"{what} has no expense category. Add one in the PSA.", Owner.PMO
        )
    if entry["billable"] and project.billing_model not in EXPENSES_REBILLED:
        return Violation(
            "expense.billable_mismatch",
            f"{what} is marked re-billable, but {name} is billed as "
            f"{project.billing_model.replace('_', ' ')}, which does not re-bill expenses.",
            Owner.PMO,
        )
    if entry["currency"] != project.currency:
        return Violation(
            "expense.currency_mismatch",
            f"{what} is in {entry['currency']}, but {name} is billed in {project.currency}. "
            "Convert the expense in the PSA.",
            Owner.FINANCE,
        )
    return None
