"""Record what the ERP answered, and close the cases the answers settle.

A posting the ERP accepted is ``posted`` (its entries are posted with it, they
are not rewritten); one it refused is ``failed`` and quarantines its entries,
each with a case for finance. Once an entry is posted, any case still open for
it (fixed in the PSA, period reopened) is resolved.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.flows.posting.work_type import FLOW, WorkType
from quote2cash.ports import PostingResult
from quote2cash.store import cases, repo
from quote2cash.store.tables import exception_case, posting, work_entry


def _case(
    conn: sa.Connection, kind: str, source_id: str, code: str, message: str, owner: Owner, correlation_id: str
) -> None:
    err = BusinessRuleError(message, code=code, owner=owner, system="erp", record=f"{kind}/{source_id}")
    cases.open_case(conn, err, flow=FLOW, subject=f"{kind}/{source_id}", correlation_id=correlation_id)


def pending_postings(conn: sa.Connection, work: WorkType) -> list[dict[str, Any]]:
    """Postings not yet confirmed by the ERP, reversals first."""
    q = (
        sa.select(posting)
        .where(posting.c.kind == work.kind, posting.c.status == "pending")
        .order_by(posting.c.reversal_of.is_(None), posting.c.key)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def confirm(
    conn: sa.Connection, work: WorkType, results: list[PostingResult], correlation_id: str
) -> tuple[int, int]:
    """Record what the ERP answered for a batch; failed postings quarantine their entries."""
    kind = work.kind
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


def resolve_cases(conn: sa.Connection, work: WorkType) -> int:
    """Close the cases of entries that have now been posted (fixed in the PSA, period reopened)."""
    kind = work.kind
    prefix = f"{kind}/"
    open_ids = [
        subject[len(prefix) :]
        for (subject,) in conn.execute(
            sa.select(exception_case.c.subject).where(
                exception_case.c.flow == FLOW,
                exception_case.c.status.in_(cases.OPEN_STATES),
                exception_case.c.subject.startswith(prefix),
            )
        )
    ]
    resolved = 0
    for i in range(0, len(open_ids), 500):
        # Two look-ups by primary key (a join would let the planner scan the ledger).
        # Filtered on status here, not in SQL: with it the planner prefers the (kind, status)
        # index and walks every assigned entry of the ledger instead of 500 primary keys.
        assigned: dict[str, str] = {
            str(sid): str(key)
            for sid, key, status in conn.execute(
                sa.select(work_entry.c.source_id, work_entry.c.posting_key, work_entry.c.status).where(
                    work_entry.c.kind == kind, work_entry.c.source_id.in_(open_ids[i : i + 500])
                )
            )
            if status == "assigned"
        }
        done = set(
            conn.execute(
                sa.select(posting.c.key).where(
                    posting.c.key.in_(set(assigned.values())), posting.c.status == "posted"
                )
            ).scalars()
        )
        posted = [prefix + sid for sid, key in assigned.items() if key in done]
        if posted:
            resolved += conn.execute(
                sa.update(exception_case)
                .where(
                    exception_case.c.flow == FLOW,
                    exception_case.c.status.in_(cases.OPEN_STATES),
                    exception_case.c.subject.in_(posted),
                )
                .values(
                    status="resolved",
                    resolution={"by": f"flow:{FLOW}", "note": "entry posted"},
                    updated_at=repo.now(),
                )
            ).rowcount
    return resolved
