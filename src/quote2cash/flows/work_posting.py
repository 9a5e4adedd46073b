"""Validate, aggregate and post ledger entries to the ERP (F4, F5).

Summary mode makes one journal entry per project × task (or expense category)
× legal entity × work period × billable flag (× posting period, when entries
were re-dated); detail mode one timebill or expense report per entry. A
posting's key is its ERP external id: it is fixed in the hub database before
anything is sent, so a re-sent posting is an upsert of the same record.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa

from quote2cash.config import AccountsConfig
from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.ports import Accounts, Posting, PostingResult
from quote2cash.store import cases, repo
from quote2cash.store.tables import posting, reversal_line, work_entry

FLOW = "post_approved_work"
BATCH = 200


def _case(
    conn: sa.Connection, kind: str, source_id: str, code: str, message: str, owner: Owner, correlation_id: str
) -> None:
    err = BusinessRuleError(message, code=code, owner=owner, system="erp", record=f"{kind}/{source_id}")
    cases.open_case(conn, err, flow=FLOW, subject=f"{kind}/{source_id}", correlation_id=correlation_id)


def plan_reversals(
    conn: sa.Connection, kind: str, run_id: str, md_periods: list[tuple[str, str, str, bool]]
) -> int:
    """Turn entries changed after posting into reversal postings; returns how many postings."""
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


def as_posting(p: dict[str, Any], job: str | None, dept: str | None, accounts: AccountsConfig) -> Posting:
    """A ``posting`` row as the ERP port's :class:`Posting`, with the accounts it moves."""
    kind = p["kind"]
    if kind == "time":
        dr, cr = (
            (accounts.unbilled_receivable, accounts.services_revenue)
            if p["billable"]
            else (accounts.project_cost, accounts.cost_absorption)
        )
    else:
        dr = accounts.rebillable_expenses if p["billable"] else accounts.project_cost
        cr = accounts.expense_clearing
    return Posting(
        key=p["key"],
        kind=kind,
        mode=p["mode"],
        project=p["project"],
        erp_project_id=job,
        task_id=p["task_id"],
        legal_entity=p["legal_entity"],
        subsidiary=p["subsidiary"],
        department=dept,
        period=p["period"],
        tran_date=p["tran_date"],
        billable=bool(p["billable"]),
        minutes=int(p["minutes"]),
        amount_minor=int(p["amount_minor"]),
        currency=p["currency"],
        entries=int(p["entries"]),
        accounts=Accounts(debit=dr, credit=cr),
        reversal_of=p["reversal_of"],
    )


def pending_postings(conn: sa.Connection, kind: str) -> list[dict[str, Any]]:
    """Postings not yet confirmed by the ERP, reversals first."""
    q = (
        sa.select(posting)
        .where(posting.c.kind == kind, posting.c.status == "pending")
        .order_by(posting.c.reversal_of.is_(None), posting.c.key)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def confirm(
    conn: sa.Connection, kind: str, results: list[PostingResult], correlation_id: str
) -> tuple[int, int]:
    """Record what the ERP answered for a batch; failed postings quarantine their entries."""
    now = repo.now()
    ok = [(r.key, r.erp_id) for r in results if r.error is None]
    if ok:
        conn.execute(
            sa.update(posting)
            .where(posting.c.key == sa.bindparam("k"))
            .values(status="posted", erp_id=sa.bindparam("i"), posted_at=now, error=None),
            [{"k": k, "i": i} for k, i in ok],
        )
        # The entries are not rewritten: an entry is posted when the posting it is assigned to is.
    failed = [(r.key, r.error) for r in results if r.error is not None]
    for key, err in failed:
        conn.execute(sa.update(posting).where(posting.c.key == key).values(status="failed", error=err))
        sids = [
            s
            for (s,) in conn.execute(
                sa.select(work_entry.c.source_id).where(
                    work_entry.c.kind == kind, work_entry.c.posting_key == key
                )
            )
        ]
        conn.execute(
            sa.update(work_entry)
            .where(work_entry.c.kind == kind, work_entry.c.posting_key == key)
            .values(status="quarantined", reason_code=err["code"], posting_key=None)
        )
        if not sids:  # a reversal: the posting itself is the case
            _case(
                conn,
                kind,
                key,
                err["code"],
                f"the ERP refused reversal {key}: {err['message']}",
                Owner.FINANCE,
                correlation_id,
            )
        for sid in sids:
            _case(
                conn,
                kind,
                sid,
                err["code"],
                f"the ERP refused posting {key}: {err['message']}",
                Owner.FINANCE,
                correlation_id,
            )
    return len(ok), len(failed)
