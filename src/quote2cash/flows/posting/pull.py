"""Pull time entries and expenses changed in the PSA since a durable cursor,
into the ``work_entry`` ledger.

Pages are committed together with the cursor, every few pages and at least
every second, so a crash resumes from the last committed page (a worker
restarted every few seconds still advances), and re-reading a page is harmless (rows are keyed by
source id and version). A change to an entry that was already posted marks
it for reversal; it is never overwritten in the ERP.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from quote2cash.flows.posting.classify import Classifier
from quote2cash.flows.posting.work_type import FLOW
from quote2cash.rules.work import valued
from quote2cash.runtime.hub import Hub
from quote2cash.store import bulk, cases, repo
from quote2cash.store.tables import work_entry

PAGES_PER_COMMIT = 25
#: Pages read so far are committed at least this often (seconds), however few they are.
COMMIT_EVERY = 1.0
EPOCH = "1970-01-01T00:00:00.000000Z"
#: Statuses whose figures are (or are being) posted to the ERP. Posting runs never overlap, so
#: an entry assigned in an earlier run is in a posting that run sent (or failed and quarantined).
IN_ERP = ("assigned",)


def feed_cursor(kind: str, psa: str) -> str:
    """The durable cursor of a kind's change feed in the PSA system ``psa``."""
    return f"{psa}.{kind}.changes"


_DECISION = ("status", "reason_code", "posting_key", "post_date", "run_id", "department")


def _apply(
    conn: sa.Connection, classifier: Classifier, rows: list[dict[str, Any]], maybe_known: list[str]
) -> dict[str, int]:
    """Merge one batch of changes into the ledger, classifying new entries; returns counts by outcome.

    ``maybe_known`` are the entries created before the cursor: only those can already be in the ledger.
    """
    kind = classifier.kind
    counts = {"new": 0, "changed": 0, "reverse": 0, "withdrawn": 0, "same": 0, "ignored": 0}
    # An entry changed while the feed was read shows up twice: its latest version wins.
    rows = list({r["source_id"]: r for r in rows}.values())
    ids = maybe_known
    known: dict[str, tuple[str, str]] = {}
    for chunk in range(0, len(ids), 900):
        for sid, version, status in conn.execute(
            sa.select(work_entry.c.source_id, work_entry.c.version, work_entry.c.status).where(
                work_entry.c.kind == kind, work_entry.c.source_id.in_(ids[chunk : chunk + 900])
            )
        ):
            known[sid] = (version, status)
    columns: tuple[str, ...] | None = None
    inserts: list[tuple[Any, ...]] = []
    md = classifier.md
    for row in rows:
        # The ledger holds what the hub posts: non-billable time at its cost (rules.work.valued).
        row["amount_minor"] = valued(row, md.roles, md.cost_rates)
        live = row["approved"] and not row["deleted"]
        old = known.get(row["source_id"])
        if old is None:
            if live:
                decision, violation = classifier.classify(row)
                if columns is None:
                    columns = (*row, *_DECISION)
                inserts.append((*row.values(), *(decision[k] for k in _DECISION)))
                if violation is not None:
                    classifier.open_case(row, violation)
                counts["new"] += 1
            else:
                counts["ignored"] += 1  # drafts and deletions the hub never posted
            continue
        old_version, old_status = old
        if old_version == row["version"]:
            counts["same"] += 1
            continue
        values: dict[str, Any] = {k: v for k, v in row.items() if k not in ("kind", "source_id")}
        if old_status in IN_ERP:
            # What was posted is kept for the reversal (the right-hand sides read the old row).
            values.update(
                status="reverse",
                posted_version=work_entry.c.version,
                posted_minutes=work_entry.c.minutes,
                posted_amount_minor=work_entry.c.amount_minor,
            )
        else:
            values.update(status="staged" if live else "withdrawn", posting_key=None)
        counts["reverse" if old_status in IN_ERP else "changed" if live else "withdrawn"] += 1
        conn.execute(
            sa.update(work_entry)
            .where(work_entry.c.kind == kind, work_entry.c.source_id == row["source_id"])
            .values(**values, reason_code=None)
        )
    if inserts and columns is not None:
        bulk.insert_rows(conn, work_entry, columns, inserts)
    classifier.flush_cases(conn)
    return counts


def pull_changes(hub: Hub, classifier: Classifier) -> dict[str, int]:
    """Read every change since the cursor into the ledger; returns counts by outcome."""
    kind = classifier.kind
    psa = hub.psa()
    name = feed_cursor(kind, psa.name)
    since = hub.read(repo.get_cursor, name) or EPOCH
    # Every ledger entry was created no later than its version stamp, so an entry created after the
    # newest stamp in the ledger (or read so far) cannot be there yet, and skips the look-up. This
    # comes from the ledger itself, so a lost or rewound cursor only costs look-ups, never a duplicate.
    created_max = (
        hub.read(
            lambda c: c.execute(
                sa.select(sa.func.max(work_entry.c.version)).where(work_entry.c.kind == kind)
            ).scalar_one_or_none()
        )
        or EPOCH
    )
    totals: dict[str, int] = {"pages": 0}
    pending: list[dict[str, Any]] = []
    maybe_known: list[str] = []
    poison: list[tuple[dict[str, Any], dict[str, Any]]] = []
    last = since
    committed_at = time.monotonic()

    def commit() -> None:
        nonlocal pending, poison, maybe_known, committed_at

        def write(conn: sa.Connection) -> dict[str, int]:
            counts = _apply(conn, classifier, pending, maybe_known)
            # A record that cannot be read is dead-lettered with its payload, not allowed to block the feed.
            for error, record in poison:
                cases.open_case(
                    conn,
                    error,
                    flow=FLOW,
                    subject=f"{kind}/{record.get('id')}",
                    correlation_id=None,
                    payload=record,
                )
            counts["dead_lettered"] = len(poison)
            repo.set_cursor(conn, name, last)
            return counts

        with hub.engine.begin() as conn:
            for key, n in write(conn).items():
                totals[key] = totals.get(key, 0) + n
        pending, poison, maybe_known = [], [], []
        committed_at = time.monotonic()

    for page in psa.work_pages(kind, since):
        rows, created, bad, last = page.rows, page.created, page.unreadable, page.last
        totals["pages"] += 1
        for row, stamp in zip(rows, created, strict=True):
            if stamp > created_max:
                created_max = stamp
            else:
                maybe_known.append(row["source_id"])
        pending.extend(rows)
        poison.extend(bad)
        if totals["pages"] % PAGES_PER_COMMIT == 0 or time.monotonic() - committed_at >= COMMIT_EVERY:
            commit()
    if pending or poison or last != since:
        commit()
    return totals
