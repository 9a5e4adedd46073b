"""Gather ledger entries into postings: this run's new postings, and the
reversals of entries that changed after they were posted.

Summary mode makes one journal entry per project × task (or expense category)
× legal entity × work period × billable flag (× posting period, when entries
were re-dated); detail mode one timebill or expense report per entry. A
posting's key is its ERP external id: it is fixed in the hub database before
anything is sent (:mod:`.send`), so a re-sent posting is an upsert of the
same record. No posting is ever changed once made: a correction is a
reversal plus a new posting.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa

from quote2cash.flows.posting.classify import period_label
from quote2cash.flows.posting.work_type import WorkType
from quote2cash.rules.work import MasterData
from quote2cash.store import repo
from quote2cash.store.tables import posting, reversal_line, work_entry


def build_postings(conn: sa.Connection, work: WorkType, run_id: str, md: MasterData, mode: str) -> int:
    """Create the postings of the entries this run assigned (idempotent); returns how many are new."""
    kind = work.kind
    we = work_entry.c
    as_int = sa.Integer
    rows = conn.execute(
        sa.select(
            we.posting_key,
            sa.func.min(we.workspace_id),
            sa.func.min(we[work.line_field]),
            sa.func.min(we.work_date),
            sa.func.max(sa.func.coalesce(we.post_date, we.work_date)),
            sa.func.max(sa.cast(we.billable, as_int)),
            sa.func.min(we.currency),
            sa.func.sum(we.minutes),
            sa.func.sum(we.amount_minor),
            sa.func.count(),
            sa.func.min(we.department),  # one per posting: it is part of the key
        )
        .where(we.kind == kind, we.run_id == run_id, we.status == "assigned")
        .group_by(we.posting_key)
    ).all()
    existing = {k for (k,) in conn.execute(sa.select(posting.c.key).where(posting.c.run_id == run_id))}
    by_workspace = md.projects
    new = []
    for key, ws, line, first_day, tran_date, billable, currency, minutes, amount, count, dept in rows:
        if key in existing:
            continue
        project, refs = by_workspace[str(ws)]
        legal_entity = project.dimensions.legal_entity
        new.append(
            {
                "key": key,
                "kind": kind,
                "mode": mode,
                "run_id": run_id,
                "project": project.source_id,
                "task_id": line,
                "legal_entity": legal_entity,
                "subsidiary": project.dimensions.subsidiary,
                "department": dept,
                # Every entry of a posting is on the same side of any hard cutover (it is in the key).
                "erp": md.posting_erp(legal_entity or "", _day(tran_date), refs.erp),
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


def plan_reversals(
    conn: sa.Connection, work: WorkType, run_id: str, md_periods: list[tuple[str, str, str, bool]]
) -> int:
    """Turn entries changed after posting into reversal postings; returns how many postings."""
    kind = work.kind
    rows = list(
        conn.execute(
            sa.select(work_entry).where(work_entry.c.kind == kind, work_entry.c.status == "reverse")
        ).mappings()
    )
    if not rows:
        return 0
    by_posting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_posting[str(r["posting_key"])].append(dict(r))
    open_starts = sorted(date.fromisoformat(s) for _, s, _, closed in md_periods if not closed)
    made = 0
    for original_key, entries in by_posting.items():
        original = conn.execute(sa.select(posting).where(posting.c.key == original_key)).mappings().first()
        if original is None:
            continue
        n = conn.execute(
            sa.select(sa.func.count()).select_from(posting).where(posting.c.reversal_of == original_key)
        ).scalar_one()
        key = f"{original_key}-R{n + 1}"
        minutes = sum(int(e["posted_minutes"] or 0) for e in entries)
        amount = sum(int(e["posted_amount_minor"] or 0) for e in entries)
        tran = original["tran_date"]
        if not any(s <= tran for s in open_starts) or _closed(tran, md_periods):
            later = [s for s in open_starts if s > tran]
            tran = later[0] if later else date.today()
        conn.execute(
            sa.insert(posting).values(
                key=key,
                kind=kind,
                mode=original["mode"],
                run_id=run_id,
                project=original["project"],
                task_id=original["task_id"],
                legal_entity=original["legal_entity"],
                subsidiary=original["subsidiary"],
                department=original["department"],
                erp=original["erp"],  # a reversal goes where the posting it reverses went
                period=original["period"],
                billable=original["billable"],
                reversal_of=original_key,
                currency=original["currency"],
                minutes=-minutes,
                amount_minor=-amount,
                entries=-len(entries),
                tran_date=tran,
                status="pending",
                created_at=repo.now(),
            )
        )
        conn.execute(
            sa.insert(reversal_line),
            [
                {
                    "posting_key": key,
                    "kind": kind,
                    "source_id": e["source_id"],
                    "version": e["posted_version"],
                    "reversed_posting": original_key,
                    "minutes": int(e["posted_minutes"] or 0),
                    "amount_minor": int(e["posted_amount_minor"] or 0),
                }
                for e in entries
            ],
        )
        made += 1
    # What the PSA now says is either posted again (once validated) or withdrawn.
    conn.execute(
        sa.update(work_entry)
        .where(work_entry.c.kind == kind, work_entry.c.status == "reverse")
        .values(
            status=sa.case(
                (sa.and_(work_entry.c.approved, sa.not_(work_entry.c.deleted)), "staged"), else_="withdrawn"
            ),
            posting_key=None,
            posted_version=None,
            posted_minutes=None,
            posted_amount_minor=None,
        )
    )
    return made


def _closed(day: date, periods: list[tuple[str, str, str, bool]]) -> bool:
    return any(
        date.fromisoformat(s) <= day <= date.fromisoformat(e) and closed for _, s, e, closed in periods
    )


def run_figures(conn: sa.Connection, work: WorkType, run_id: str) -> dict[str, Any]:
    """What this run decided, counted from the ledger (so a resumed run counts right)."""
    kind = work.kind
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
