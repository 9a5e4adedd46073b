"""Classify ledger entries and gather them into postings.

Every entry is classified once, when it enters the ledger: quarantined (it
breaks a rule), held (its period is closed and the policy holds), or assigned
to a posting whose key is computed from the entry itself — project, task or
category, legal entity, work period, billable flag, posting period — and the
run. Postings are then built from the ledger with one GROUP BY, so a month of
entries is written once and never rewritten on the way to the ERP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from quote2cash.config import PostingConfig
from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.ports import WorkKind
from quote2cash.rules.work import MasterData, Period, Violation, check_entry, describe
from quote2cash.store import cases, repo
from quote2cash.store.tables import posting, work_entry

FLOW = "post_approved_work"
PREFIX = {"time": "Q2C-T", "expense": "Q2C-E"}


def period_label(day: date) -> str:
    """``YYYY-MM`` of a day."""
    return f"{day.year:04d}-{day.month:02d}"


@dataclass
class Classifier:
    """Decides, entry by entry, what happens to it in this run."""

    kind: WorkKind
    md: MasterData
    policy: PostingConfig
    run_id: str
    correlation_id: str
    keys: dict[tuple[Any, ...], str] = field(default_factory=dict)
    periods: dict[date, Period | None] = field(default_factory=dict)
    cases: list[tuple[dict[str, Any], str, str, str | None]] = field(default_factory=list)
    # Whether entries with the same rule-relevant fields pass: a month-end batch repeats them a lot.
    verdicts: dict[tuple[Any, ...], bool] = field(default_factory=dict)

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
        )
        violation = None
        if not self.verdicts.get(signature, False):
            violation = check_entry(self.kind, entry, self.md)
            self.verdicts[signature] = violation is None
        if violation is not None:
            return {
                "status": "quarantined",
                "reason_code": violation.code,
                "posting_key": None,
                "post_date": None,
                "run_id": self.run_id,
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
                    f"{describe(self.kind, entry, self.md)} falls in the closed accounting period {label}; it is "
                    "held. Reopen the period, or switch the closed-period policy to re-date.",
                    Owner.FINANCE,
                )
                return {
                    "status": "held",
                    "reason_code": held.code,
                    "posting_key": None,
                    "post_date": None,
                    "run_id": self.run_id,
                }, held
            post_date = later.start
        project = self.md.projects[str(entry["workspace_id"])]
        group = (
            project.canonical_id,
            entry["task_id"] if self.kind == "time" else entry.get("category"),
            project.legal_entity,
            work_date.year,
            work_date.month,
            bool(entry["billable"]),
            post_date.year,
            post_date.month,
            bool(entry.get("reimbursable")),
            entry["source_id"] if self.policy.mode == "detail" else None,
        )
        key = self.keys.get(group)
        if key is None:
            digest = hashlib.sha1(repr(group).encode()).hexdigest()[:12]
            key = self.keys[group] = f"{PREFIX[self.kind]}-{digest}-{self.run_id.rsplit(':', 1)[-1]}"
        return {
            "status": "assigned",
            "reason_code": None,
            "posting_key": key,
            "post_date": post_date if post_date != work_date else None,
            "run_id": self.run_id,
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


def build_postings(conn: sa.Connection, kind: str, run_id: str, md: MasterData, mode: str) -> int:
    """Create the postings of the entries this run assigned (idempotent); returns how many are new."""
    we = work_entry.c
    as_int = sa.Integer
    rows = conn.execute(
        sa.select(
            we.posting_key,
            sa.func.min(we.workspace_id),
            sa.func.min(we.task_id),
            sa.func.min(we.category),
            sa.func.min(we.work_date),
            sa.func.max(sa.func.coalesce(we.post_date, we.work_date)),
            sa.func.max(sa.cast(we.billable, as_int)),
            sa.func.min(we.currency),
            sa.func.sum(we.minutes),
            sa.func.sum(we.amount_minor),
            sa.func.count(),
        )
        .where(we.kind == kind, we.run_id == run_id, we.status == "assigned")
        .group_by(we.posting_key)
    ).all()
    existing = {k for (k,) in conn.execute(sa.select(posting.c.key).where(posting.c.run_id == run_id))}
    by_workspace = md.projects
    new = []
    for key, ws, task, category, first_day, tran_date, billable, currency, minutes, amount, count in rows:
        if key in existing:
            continue
        project = by_workspace[str(ws)]
        new.append(
            {
                "key": key,
                "kind": kind,
                "mode": mode,
                "run_id": run_id,
                "project": project.canonical_id,
                "task_id": task if kind == "time" else category,
                "legal_entity": project.legal_entity,
                "subsidiary": project.subsidiary,
                "period": period_label(_day(first_day)),
                "billable": bool(billable),
                "reversal_of": None,
                "currency": currency,
                "minutes": int(minutes),
                "amount_minor": int(amount),
                "entries": int(count),
                "tran_date": _day(tran_date),
                "status": "pending",
                "created_at": repo.now(),
            }
        )
    if new:
        conn.execute(sa.insert(posting), new)
    return len(new)


def _day(value: Any) -> date:
    # Aggregates over dates come back as text on SQLite.
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def run_figures(conn: sa.Connection, kind: str, run_id: str) -> dict[str, Any]:
    """What this run decided, counted from the ledger (so a resumed run counts right)."""
    we = work_entry.c
    by_status = conn.execute(
        sa.select(we.status, we.reason_code, sa.func.count(), sa.func.count(we.post_date))
        .where(we.kind == kind, we.run_id == run_id)
        .group_by(we.status, we.reason_code)
    ).all()
    figures: dict[str, Any] = {"valid": 0, "quarantined": 0, "held": 0, "redated": 0, "by_reason": {}}
    for status, reason, n, redated in by_status:
        if status == "assigned":
            figures["valid"] += int(n)
            figures["redated"] += int(redated)
        elif status in ("quarantined", "held"):
            figures[status] += int(n)
            if status == "quarantined":
                figures["by_reason"][reason] = figures["by_reason"].get(reason, 0) + int(n)
    figures["redated_ids"] = [
        s
        for (s,) in conn.execute(
            sa.select(we.source_id)
            .where(we.kind == kind, we.run_id == run_id, we.post_date.is_not(None))
            .limit(100)
        )
    ]
    return figures
