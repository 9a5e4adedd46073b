"""Classify ledger entries: quarantined, held, or assigned to a posting.

Every entry is classified once, when it enters the ledger: quarantined (it
breaks a rule), held (its period is closed and the policy holds), or assigned
to a posting whose key is computed from the entry itself — project, task or
category, legal entity, work period, billable flag, posting period, the cost
centre where the entry names its own, and the ERP where a hard cutover sends
it to another than its project's — and the run. Postings are then built from the ledger with one GROUP BY
(:mod:`.aggregate`), so a month of entries is written once and never
rewritten on the way to the ERP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from quote2cash.config import PostingConfig
from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.flows.posting.work_type import FLOW, WorkType
from quote2cash.ports import WorkKind
from quote2cash.rules.work import MasterData, Period, Violation, own_cost_centre_violation
from quote2cash.store import cases
from quote2cash.store.tables import work_entry


def period_label(day: date) -> str:
    """``YYYY-MM`` of a day."""
    return f"{day.year:04d}-{day.month:02d}"


@dataclass
class Classifier:
    """Decides, entry by entry, what happens to it in this run."""

    work: WorkType
    md: MasterData
    policy: PostingConfig
    run_id: str
    correlation_id: str
    keys: dict[tuple[Any, ...], str] = field(default_factory=dict)
    periods: dict[date, Period | None] = field(default_factory=dict)
    cases: list[tuple[dict[str, Any], str, str, str | None]] = field(default_factory=list)
    # Whether entries with the same rule-relevant fields pass: a month-end batch repeats them a lot.
    verdicts: dict[tuple[Any, ...], bool] = field(default_factory=dict)
    # Each workspace's project id and legal entity, read off the canonical projects once: a
    # tuple is cheaper to read than a pydantic model's attributes, and this runs for every entry.
    heads: dict[str, tuple[str, str]] = field(init=False)
    erps: dict[str, str] = field(init=False)  # workspace -> its project's ERP

    def __post_init__(self) -> None:
        self.heads = {
            ws: (project.source_id, project.dimensions.legal_entity)
            for ws, (project, _) in self.md.projects.items()
        }
        self.erps = {ws: refs.erp or self.md.default_erp for ws, (_, refs) in self.md.projects.items()}

    @property
    def kind(self) -> WorkKind:
        """The kind of work classified (the ledger's ``kind``)."""
        return self.work.kind

    def _period(self, day: date) -> Period | None:
        if day not in self.periods:
            self.periods[day] = self.md.period_of(day)
        return self.periods[day]

    def classify(self, entry: dict[str, Any]) -> tuple[dict[str, Any], Violation | None]:
        """The ledger columns that record the decision, and the violation if any."""
        # Keyed by role, not person: the rules see a person only through their role's rate.
        signature = (
            entry["workspace_id"],
            entry["task_id"],
            entry["billable"],
            self.md.roles.get(str(entry["user_id"])),
            entry["rate_minor"],
            entry["currency"],
            entry["category"],
            entry.get("cost_centre"),
        )
        violation = None
        if not self.verdicts.get(signature, False):
            violation = self.work.rule(entry, self.md) or own_cost_centre_violation(
                self.kind, entry, self.work.describe(entry, self.md), self.md
            )
            self.verdicts[signature] = violation is None
        if violation is not None:
            return {
                "status": "quarantined",
                "reason_code": violation.code,
                "posting_key": None,
                "post_date": None,
                "run_id": self.run_id,
                "department": None,
            }, violation
        work_date: date = entry["work_date"]
        post_date = work_date
        period = self._period(work_date)
        if period is None or period.closed:
            later = self.md.next_open_period(work_date) if self.policy.closed_period == "redate" else None
            if later is None:
                label = period.name if period else f"{period_label(work_date)} (no such period)"
                held = Violation(
                    "erp.period_closed",
                    f"{self.work.describe(entry, self.md)} falls in the closed accounting period {label}; it "
                    "is held. Reopen the period, or switch the closed-period policy to re-date.",
                    Owner.FINANCE,
                )
                return {
                    "status": "held",
                    "reason_code": held.code,
                    "posting_key": None,
                    "post_date": None,
                    "run_id": self.run_id,
                    "department": None,
                }, held
            post_date = later.start
        project_id, legal_entity = self.heads[str(entry["workspace_id"])]
        department = self.md.own_department(entry)
        # Past a hard cutover its posting goes to another ERP than its project's: a posting of its own.
        project_erp = self.erps[str(entry["workspace_id"])]
        erp = self.md.posting_erp(legal_entity, post_date, project_erp) if self.md.cutovers else project_erp
        group = (
            project_id,
            entry[self.work.line_field],
            legal_entity,
            work_date.year,
            work_date.month,
            bool(entry["billable"]),
            post_date.year,
            post_date.month,
            bool(entry.get("reimbursable")),
            entry["source_id"] if self.policy.mode == "detail" else None,
            *((department,) if department else ()),  # keys of entries naming no cost centre stay as they were
            *((erp,) if erp != project_erp else ()),
        )
        key = self.keys.get(group)
        if key is None:
            digest = hashlib.sha1(repr(group).encode()).hexdigest()[:12]
            key = self.keys[group] = f"{self.work.key_prefix}-{digest}-{self.run_id.rsplit(':', 1)[-1]}"
        return {
            "status": "assigned",
            "reason_code": None,
            "posting_key": key,
            "post_date": post_date if post_date != work_date else None,
            "run_id": self.run_id,
            "department": department,
        }, None

    def open_case(self, entry: dict[str, Any], violation: Violation) -> None:
        """Note an exception case for an entry that cannot be posted (written by :meth:`flush_cases`)."""
        subject = f"{self.kind}/{entry['source_id']}"
        err = BusinessRuleError(
            violation.message, code=violation.code, owner=violation.owner, system="psa", record=subject
        )
        self.cases.append((err.to_dict(), FLOW, subject, self.correlation_id))

    def flush_cases(self, conn: sa.Connection) -> int:
        """Write the noted cases in one go, in the caller's transaction."""
        written = cases.open_cases(conn, self.cases) if self.cases else 0
        self.cases = []
        return written


_COLUMNS = (
    "source_id",
    "workspace_id",
    "task_id",
    "user_id",
    "work_date",
    "minutes",
    "amount_minor",
    "rate_minor",
    "currency",
    "billable",
    "reimbursable",
    "category",
    "cost_centre",
)


def classify_staged(conn: sa.Connection, classifier: Classifier) -> int:
    """Classify the entries waiting for it: changed after intake, held, or resubmitted. Returns how many."""
    kind = classifier.kind
    rows = [
        dict(zip(_COLUMNS, r, strict=True))
        for r in conn.execute(
            sa.select(*[work_entry.c[c] for c in _COLUMNS]).where(
                work_entry.c.kind == kind, work_entry.c.status.in_(("staged", "held"))
            )
        )
    ]
    for entry in rows:
        decision, violation = classifier.classify(entry)
        conn.execute(
            sa.update(work_entry)
            .where(work_entry.c.kind == kind, work_entry.c.source_id == entry["source_id"])
            .values(**decision)
        )
        if violation is not None:  # a case already open for the same cause only counts another occurrence
            classifier.open_case(entry, violation)
    classifier.flush_cases(conn)
    return len(rows)
