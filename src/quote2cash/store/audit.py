"""The append-only, hash-chained audit trail.

Each entry's hash covers its content and the previous entry's hash, so any
edit, deletion or reordering of a past row breaks the chain at that row.
Appends are serialised through the ``audit_head`` cursor row: a row lock on
PostgreSQL, the database's write lock on SQLite.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.store.repo import insert_ignore, now
from quote2cash.store.tables import audit_log, cursor

GENESIS = "0" * 64
_HEAD = "audit_head"
# Built once: an append runs several times per flow run.
_TOUCH = sa.update(cursor).where(cursor.c.name == _HEAD).values(value=cursor.c.value)
_READ = sa.select(cursor.c.value).where(cursor.c.name == _HEAD)
_READ_LOCKED = _READ.with_for_update()
_MOVE = (
    sa.update(cursor)
    .where(cursor.c.name == _HEAD)
    .values(value=sa.bindparam("head"), updated_at=sa.bindparam("at"))
)
_INSERT = sa.insert(audit_log)


def _lock_head(conn: sa.Connection) -> str:
    """The chain's head ``seq:hash``, with the write lock that serialises appends held."""
    for _ in range(2):
        if conn.dialect.name == "postgresql":
            head = conn.execute(_READ_LOCKED).scalar_one_or_none()  # a row lock
        else:
            conn.execute(_TOUCH)  # SQLite: a write takes the database's write lock first
            head = conn.execute(_READ).scalar_one_or_none()
        if head is not None:
            return str(head)
        insert_ignore(conn, cursor, {"name": _HEAD, "value": f"0:{GENESIS}", "updated_at": now()})
    raise RuntimeError("the audit head row cannot be created")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(row: dict[str, Any], prev_hash: str) -> str:
    """The SHA-256 of an entry's content chained to the previous hash."""
    content = {
        "seq": row["seq"],
        "at": _iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "correlation_id": row["correlation_id"],
        "systems": row["systems"],
        "before": row["before"],
        "after": row["after"],
        "prev_hash": prev_hash,
    }
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def append(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    correlation_id: str | None = None,
    systems: list[str] | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append an entry; returns its sequence number."""
    head = _lock_head(conn)
    seq, prev = int(head.split(":")[0]), head.split(":")[1]
    row: dict[str, Any] = {
        "seq": seq + 1,
        "at": now(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "correlation_id": correlation_id,
        "systems": systems or [],
        "before": json.loads(json.dumps(before, default=str)) if before is not None else None,
        "after": json.loads(json.dumps(after, default=str)) if after is not None else None,
        "prev_hash": prev,
    }
    row["hash"] = entry_hash(row, prev)
    conn.execute(_INSERT, row)
    conn.execute(_MOVE, {"head": f"{row['seq']}:{row['hash']}", "at": row["at"]})
    return int(row["seq"])


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the chain."""

    entries: int
    ok: bool
    broken_at: int | None = None
    reason: str | None = None


def verify(conn: sa.Connection) -> ChainReport:
    """Recompute every hash in order; report the first entry that does not match."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings():
        count += 1
        if row["seq"] != expected_seq:
            return ChainReport(count, False, expected_seq, f"entry {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return ChainReport(count, False, row["seq"], "previous-hash link does not match")
        if entry_hash(dict(row), prev) != row["hash"]:
            return ChainReport(count, False, row["seq"], "content does not match its hash (row was altered)")
        prev = row["hash"]
        expected_seq += 1
    head = conn.execute(_READ).scalar_one_or_none()
    if head is not None and int(head.split(":")[0]) != count:
        return ChainReport(count, False, count + 1, "entries after the last one were removed")
    return ChainReport(count, True)


def entries(conn: sa.Connection, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Recent entries, newest first, optionally for one subject."""
    q = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if subject:
        q = q.where(audit_log.c.subject == subject)
    return [dict(r) for r in conn.execute(q).mappings()]
