"""Validation of approved time entries and expenses before they are posted,
with messages a PMO or finance person can act on.

The rules run against :class:`MasterData`, a snapshot of what the hub knows
about projects (the canonical :class:`~quote2cash.model.Project` from
lead-to-project, with its :class:`ProjectRefs`), tasks and people (from the
PSA), accounting periods, subsidiaries and cost centres (from the ERP) and
rate cards (from configuration). There is one rule set per kind of work,
:func:`check_time` and :func:`check_expense`; each returns the first
:class:`Violation` an entry breaks, or None.

Each rule set has a fast path that builds no message (it runs for every entry
of a month-end batch) and the full rules (:func:`time_violation`,
:func:`expense_violation`) that name what is wrong; they agree on every entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from quote2cash.errors import Owner
from quote2cash.model import BillingModel, Project, from_minor, to_minor

#: Billing models under which time itself is billed (a retainer is drawn down by it).
#: Under the others the client pays for milestones, a fixed fee or a subscription,
#: so time is cost.
TIME_BILLED = frozenset({BillingModel.TIME_AND_MATERIALS, BillingModel.RETAINER})
#: Billing models under which expenses may be re-billed to the client.
EXPENSES_REBILLED = frozenset(
    {BillingModel.TIME_AND_MATERIALS, BillingModel.MILESTONE, BillingModel.FIXED_FEE, BillingModel.RETAINER}
)
#: PSA task states that no longer accept time.
CLOSED_TASK_STATES = frozenset({"completed", "closed", "archived", "cancelled"})


@dataclass(frozen=True)
class ProjectRefs:
    """What posting needs to know about a project besides its canonical record.

    Attributes:
        workspace_id: the project's workspace in the PSA (where work is booked).
        erp_project_id: the project (job) in the ERP the postings carry.
        erp: the ERP system (by name) the project is routed to; None: the default ERP.
        rate_card: the code of the rate card billable time is checked against.
        open_for_time: the project still takes time.
        open_for_expenses: the project still takes expenses.
    """

    workspace_id: str
    erp_project_id: str
    erp: str | None = None
    rate_card: str | None = None
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

    projects: dict[str, tuple[Project, ProjectRefs]]  # by PSA workspace id
    task_states: dict[str, tuple[str, str]]  # story id -> (workspace id, state)
    roles: dict[str, str]  # PSA user id -> role
    rate_cards: dict[str, tuple[str, dict[str, Decimal]]]  # code -> (currency, role -> rate)
    periods: list[Period]
    active_subsidiaries: set[str]
    active_departments: set[str]
    legal_entities: set[str]
    names: dict[str, str] = field(default_factory=dict)  # user id -> name, for messages
    cost_rates: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> role -> cost/h
    # ERP system -> department (cost centre) name -> ERP id; None: the default ERP's.
    department_ids: dict[str | None, dict[str, str]] = field(default_factory=dict)
    # Hard cutovers (routing's ``postings_from``): (legal entities or None for all, date, ERP).
    cutovers: tuple[tuple[frozenset[str] | None, date, str], ...] = ()
    default_erp: str = ""

    def posting_erp(self, legal_entity: str, day: date, project_erp: str | None) -> str:
        """The ERP a posting of a project dated ``day`` goes to: its project's, unless a hard
        cutover of its legal entity (routing's ``postings_from``) has passed."""
        for entities, cutover, system in self.cutovers:
            if (entities is None or legal_entity in entities) and day >= cutover:
                return system
        return project_erp or self.default_erp

    def own_department(self, entry: dict[str, Any]) -> str | None:
        """The ERP department of the cost centre an entry names itself, in its project's ERP.

        The entry may name the cost centre or give its ERP id. None: the entry
        names none, or one that is not an active department there
        (:func:`own_cost_centre_violation` says which).
        """
        named = entry.get("cost_centre")
        if not named:
            return None
        found = self.projects.get(str(entry["workspace_id"]))
        names = self.department_ids.get(found[1].erp if found else None) or self.department_ids.get(None, {})
        department = names.get(str(named), str(named))
        return department if department in self.active_departments else None

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


def _who(entry: dict[str, Any], md: MasterData) -> str:
    return md.names.get(str(entry.get("user_id")), f"user {entry.get('user_id')}")


def describe_time(entry: dict[str, Any], md: MasterData) -> str:
    """A short human description of a time entry, for messages."""
    return (
        f"time entry {entry['source_id']} ({_who(entry, md)}, {entry['work_date']}, "
        f"{entry['minutes'] / 60:.2f} h)"
    )


def describe_expense(entry: dict[str, Any], md: MasterData) -> str:
    """A short human description of an expense, for messages."""
    return (
        f"expense {entry['source_id']} ({_who(entry, md)}, {entry['work_date']}, "
        f"{_money(entry['amount_minor'], entry['currency'])}, {entry.get('category') or 'no category'})"
    )


# -- what both kinds check: the project ---------------------------------------------------------
def _project_passes(project: Project, md: MasterData) -> bool:
    dims = project.dimensions
    if dims.legal_entity not in md.legal_entities or dims.subsidiary not in md.active_subsidiaries:
        return False
    return dims.department is None or dims.department in md.active_departments


def _project_violation(
    kind: str, takes: str, what: str, md: MasterData, is_open: bool, project: Project
) -> Violation | None:
    """The project rules: open for this kind of work, legal entity and cost centre active."""
    name = f"project '{project.name}'"
    dims = project.dimensions
    if not is_open:
        return Violation(
            f"{kind}.project_closed",
            f"{what} is booked on {name}, which is closed for {takes}. Reopen the project or move the entry.",
            Owner.PMO,
        )
    if dims.legal_entity not in md.legal_entities or dims.subsidiary not in md.active_subsidiaries:
        return Violation(
            f"{kind}.legal_entity_invalid",
            f"{what}: {name} belongs to legal entity {dims.legal_entity}, whose ERP subsidiary "
            f"{dims.subsidiary} is not active. Ask finance to activate it.",
            Owner.FINANCE,
        )
    if dims.department is not None and dims.department not in md.active_departments:
        return Violation(
            f"{kind}.cost_centre_invalid",
            f"{what}: the cost centre (ERP department {dims.department}) of {name} is not active. "
            "Ask finance to fix the project's cost centre.",
            Owner.FINANCE,
        )
    return None


def own_cost_centre_violation(
    kind: str, entry: dict[str, Any], what: str, md: MasterData
) -> Violation | None:
    """An entry that names its own cost centre must name an active ERP department."""
    named = entry.get("cost_centre")
    if not named or md.own_department(entry) is not None:
        return None
    return Violation(
        f"{kind}.cost_centre_invalid",
        f"{what} names its own cost centre '{named}', which is not an active department in the ERP. "
        "Correct the entry's cost centre in the PSA, or ask finance to activate the department.",
        Owner.FINANCE,
    )


def _project_unknown(kind: str, entry: dict[str, Any], what: str) -> Violation:
    return Violation(
        f"{kind}.project_unknown",
        f"{what} is booked on PSA workspace {entry['workspace_id']}, which has no project in the ERP "
        "(it was not created from a won deal). Move the entry to the right project in the PSA.",
        Owner.PMO,
    )


def _billed_as(project: Project) -> str:
    if project.billing_model is BillingModel.INTERNAL:
        return "an internal project, with no client to bill"
    return project.billing_model.replace("_", " ")


def cost_rate(
    entry: dict[str, Any], roles: dict[str, str], cost_rates: dict[str, dict[str, Decimal]]
) -> Decimal | None:
    """The hourly cost of the entry's person (by role, in the entry's currency); None: none set."""
    return cost_rates.get(str(entry["currency"]), {}).get(roles.get(str(entry.get("user_id"))) or "")


def valued(entry: dict[str, Any], roles: dict[str, str], cost_rates: dict[str, dict[str, Decimal]]) -> int:
    """The amount the hub posts for an entry, in minor units.

    Billable time is worth its billed amount, an expense its amount;
    non-billable time is valued at its role's cost rate (SPEC: cost, not only
    price), so the cost centre carries what the hours cost the firm.
    """
    if entry["kind"] != "time" or entry["billable"] or not cost_rates:
        return int(entry["amount_minor"])
    rate = cost_rate(entry, roles, cost_rates)
    if rate is None:
        return int(entry["amount_minor"])  # a case says so (time.cost_rate_unknown)
    return round(int(entry["minutes"]) * to_minor(rate, str(entry["currency"])) / 60)


# -- time ---------------------------------------------------------------------------------------
def check_time(entry: dict[str, Any], md: MasterData) -> Violation | None:
    """The first rule an approved time entry breaks, or None. The period rule is separate.

    Messages are only built for entries that break a rule.
    """
    found = md.projects.get(str(entry["workspace_id"]))
    if found is not None and _time_passes(entry, md, found[0], found[1]):
        return None
    return time_violation(entry, md)


def _time_passes(entry: dict[str, Any], md: MasterData, project: Project, refs: ProjectRefs) -> bool:
    """The fast path: True when no rule is broken (no message is built)."""
    if not refs.open_for_time or not _project_passes(project, md):
        return False
    task = entry.get("task_id")
    if task:
        workspace, state = md.task_states.get(str(task), (None, None))
        if workspace is None or workspace != refs.workspace_id or state in CLOSED_TASK_STATES:
            return False
    if not entry["billable"]:
        return not md.cost_rates or cost_rate(entry, md.roles, md.cost_rates) is not None
    if project.billing_model not in TIME_BILLED:
        return False
    card = md.rate_cards.get(refs.rate_card or "")
    expected = card[1].get(md.roles.get(str(entry.get("user_id"))) or "") if card else None
    return expected is not None and int(entry["rate_minor"]) == to_minor(expected, project.currency)


def time_violation(entry: dict[str, Any], md: MasterData) -> Violation | None:
    """Every time rule in turn, with its message: the first one broken, or None."""
    what = describe_time(entry, md)
    found = md.projects.get(str(entry["workspace_id"]))
    if found is None:
        return _project_unknown("time", entry, what)
    project, refs = found
    broken = _project_violation("time", "time", what, md, refs.open_for_time, project)
    if broken is not None:
        return broken
    name = f"project '{project.name}'"
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
            f"{what} is marked billable, but {name} is billed as {_billed_as(project)}, "
            "where time is not billed to the client. Mark it non-billable in the PSA.",
            Owner.PMO,
        )
    if not entry["billable"] and md.cost_rates and cost_rate(entry, md.roles, md.cost_rates) is None:
        role = md.roles.get(str(entry.get("user_id")))
        return Violation(
            "time.cost_rate_unknown",
            f"{what} is non-billable and is posted at its cost, but no cost rate is set for the role "
            f"{role or '(unknown)'} in {entry['currency']}. Add it under cost_rates in the hub config.",
            Owner.FINANCE,
        )
    if entry["billable"]:
        role = md.roles.get(str(entry.get("user_id")))
        card = md.rate_cards.get(refs.rate_card or "")
        expected = card[1].get(role or "") if card else None
        if expected is None:
            return Violation(
                "time.rate_unknown",
                f"{what}: the rate card {refs.rate_card or '(none)'} of {name} has no rate for the role "
                f"{role or '(unknown)'}. Add the rate to the rate card.",
                Owner.FINANCE,
            )
        expected_minor = to_minor(expected, project.currency)
        if int(entry["rate_minor"]) != expected_minor:
            return Violation(
                "time.rate_mismatch",
                f"{what} is billed at {_money(entry['rate_minor'], entry['currency'])}/h, but the rate card "
                f"{refs.rate_card} gives {_money(expected_minor, project.currency)}/h for {role}. "
                "Correct the rate in the PSA and approve the entry again.",
                Owner.PMO,
            )
    return None


# -- expenses -----------------------------------------------------------------------------------
def check_expense(entry: dict[str, Any], md: MasterData) -> Violation | None:
    """The first rule an approved expense breaks, or None. The period rule is separate.

    Messages are only built for expenses that break a rule.
    """
    found = md.projects.get(str(entry["workspace_id"]))
    if found is not None and _expense_passes(entry, md, found[0], found[1]):
        return None
    return expense_violation(entry, md)


def _expense_passes(entry: dict[str, Any], md: MasterData, project: Project, refs: ProjectRefs) -> bool:
    """The fast path: True when no rule is broken (no message is built)."""
    if not refs.open_for_expenses or not _project_passes(project, md):
        return False
    return (
        bool(entry.get("category"))
        and entry["currency"] == project.currency
        and (not entry["billable"] or project.billing_model in EXPENSES_REBILLED)
    )


def expense_violation(entry: dict[str, Any], md: MasterData) -> Violation | None:
    """Every expense rule in turn, with its message: the first one broken, or None."""
    what = describe_expense(entry, md)
    found = md.projects.get(str(entry["workspace_id"]))
    if found is None:
        return _project_unknown("expense", entry, what)
    project, refs = found
    broken = _project_violation("expense", "expenses", what, md, refs.open_for_expenses, project)
    if broken is not None:
        return broken
    name = f"project '{project.name}'"
    if not entry.get("category"):
        return Violation(
            "expense.category_missing", f"{what} has no expense category. Add one in the PSA.", Owner.PMO
        )
    if entry["billable"] and project.billing_model not in EXPENSES_REBILLED:
        return Violation(
            "expense.billable_mismatch",
            f"{what} is marked re-billable, but {name} is billed as {_billed_as(project)}, "
            "which does not re-bill expenses.",
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
