"""The append-only, sealed and anchored audit trail.

Three protections, each against a different way of rewriting history:

- **Sealed chain.** Each entry's hash is an HMAC-SHA256, under a key kept
  outside the database, of its content and the previous entry's hash. Someone
  who can write to the database but does not hold the key cannot edit a row
  and recompute the chain after it: :func:`verify` finds the first entry whose
  seal does not match.
- **Anchors.** Every :attr:`Seal.anchor_every` entries the committed head
  (its sequence number and hash) is appended to a file outside the database
  (:attr:`Seal.anchor_file`). Rows removed from the end of the chain, even
  with the ``audit_head`` cursor row deleted too, fall below the last anchor
  and are reported; a chain rewritten under a stolen key still disagrees with
  the anchors written before.
- **Triggers.** Migration 0007 refuses UPDATE and DELETE on ``audit_log`` (and
  TRUNCATE on PostgreSQL), so no code path of the hub, nor a mistaken
  statement, changes an entry; dropping the triggers takes deliberate DDL.

The key is bound to a database with :func:`bind` (loading a configuration
does it, see :mod:`quote2cash.config`), and found again from any connection
to that database: appends and verification on a database without a bound
key are refused rather than left unsealed.

Appends are serialised through the ``audit_head`` cursor row: a row lock on
PostgreSQL, the database's write lock on SQLite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import ConfigError
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
_LAST = sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)


@dataclass(frozen=True)
class Seal:
    """How one database's audit chain is sealed and anchored.

    Attributes:
        key: the HMAC key; never stored in the database, never printed.
        anchor_file: the file the chain's head is appended to (one JSON line
            per anchor: ``{"seq", "hash", "at"}``); None: no anchors.
        anchor_every: anchor the committed head once every this many entries.
    """

    key: bytes = field(repr=False)
    anchor_file: Path | None = None
    anchor_every: int = 50


_seals: dict[tuple[str, ...], Seal] = {}
_anchored: dict[Path, int] = {}  # the highest seq this process knows is in an anchor file
_guard = threading.Lock()


def _database(target: str | sa.URL | sa.Engine | sa.Connection) -> tuple[str, ...]:
    """One database, however its URL is spelled (driver, password, relative path)."""
    if isinstance(target, sa.Connection):
        target = target.engine
    url = target.url if isinstance(target, sa.Engine) else sa.make_url(target)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            database = str(Path(database).resolve())
        return (backend, database)
    return (backend, url.host or "", str(url.port or ""), url.database or "")


def bind(database: str | sa.URL | sa.Engine, seal: Seal) -> None:
    """Seal the audit chain of ``database`` (a URL or an engine) with ``seal``, in this process."""
    with _guard:
        _seals[_database(database)] = seal


def seal_of(conn: sa.Connection | sa.Engine) -> Seal:
    """The seal bound to the database of ``conn``.

    Raises:
        ConfigError: no key is bound for that database (``audit.unsealed``).
    """
    found = _seals.get(_database(conn))
    if found is None:
        where = conn.engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"the audit trail of {where} has no key loaded: start the hub from its configuration "
            "(its audit.key_env names the environment variable holding the key)",
            code="audit.unsealed",
            record=where,
        )
    return found


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


def _content(row: dict[str, Any], prev_hash: str) -> bytes:
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
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(row: dict[str, Any], prev_hash: str, key: bytes) -> str:
    """The HMAC-SHA256, under ``key``, of an entry's content chained to the previous hash."""
    return hmac.new(key, _content(row, prev_hash), hashlib.sha256).hexdigest()


def unkeyed_hash(row: dict[str, Any], prev_hash: str) -> str:
    """The plain SHA-256 the chain used before it was sealed (read by migration 0007 only)."""
    return hashlib.sha256(_content(row, prev_hash)).hexdigest()


@dataclass(frozen=True)
class Entry:
    """An entry to append: who did what to which subject, and when (default: as it is appended)."""

    actor: str
    action: str
    subject: str
    correlation_id: str | None = None
    systems: list[str] | None = None
    before: Any = None
    after: Any = None
    at: datetime | None = None


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
    """Append an entry (personal data masked, see :func:`~quote2cash.runtime.logs.minimise`); returns its seq."""
    return append_many(conn, [Entry(actor, action, subject, correlation_id, systems, before, after)])


def append_many(conn: sa.Connection, entries: list[Entry]) -> int:
    """Append entries in order, taking the chain's head once; returns the last one's seq.

    Each entry is masked and serialised before the head is locked, so the lock
    (the database's one writer on SQLite) is held only for the hashing and the writes.
    """
    from quote2cash.runtime.logs import minimise

    def masked(value: Any) -> Any:
        return minimise(json.loads(json.dumps(value, default=str))) if value is not None else None

    rows: list[dict[str, Any]] = [
        {
            "at": e.at or now(),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "correlation_id": e.correlation_id,
            "systems": e.systems or [],
            "before": masked(e.before),
            "after": masked(e.after),
        }
        for e in entries
    ]
    seal = seal_of(conn)
    head = _lock_head(conn)
    seq, prev = int(head.split(":")[0]), head.split(":")[1]
    for row in rows:
        seq += 1
        row["seq"], row["prev_hash"] = seq, prev
        row["hash"] = prev = entry_hash(row, prev, seal.key)
    if rows:
        conn.execute(_INSERT, rows)
        conn.execute(_MOVE, {"head": f"{seq}:{prev}", "at": rows[-1]["at"]})
        if seal.anchor_file is not None and any(r["seq"] % seal.anchor_every == 0 for r in rows):
            _anchor_committed(conn.engine, seal)
    return seq


# -- anchors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """One head written to the anchor file: entry ``seq`` had ``hash`` when it was anchored."""

    seq: int
    hash: str
    at: str


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors in a file, in the order written (a torn last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
            found.append(Anchor(int(data["seq"]), str(data["hash"]), str(data.get("at", ""))))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash, or not an anchor
    return found


def _write_anchor(seal: Seal, seq: int, head_hash: str) -> bool:
    """Append ``seq`` and its hash to the anchor file unless a later anchor is known; True if written."""
    path = seal.anchor_file
    if path is None or seq == 0:
        return False
    with _guard:
        if path not in _anchored:
            _anchored[path] = max((a.seq for a in read_anchors(path)), default=0)
        if seq <= _anchored[path]:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"seq": seq, "hash": head_hash, "at": _iso(now())}, separators=(",", ":"))
        # One write of one line with O_APPEND: workers sharing the file never interleave lines.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _anchored[path] = seq
        return True


def _anchor_committed(engine: sa.Engine, seal: Seal) -> None:
    """Anchor the last committed entry, read on a connection of its own.

    The caller's transaction has not committed yet (it may still roll back),
    so its own entries are left to the next anchor: an anchor only ever names
    an entry that is in the database.
    """
    with engine.connect() as other:
        last = other.execute(_LAST).first()
    if last is not None:
        _write_anchor(seal, int(last.seq), str(last.hash))


def anchor(conn: sa.Connection) -> Anchor | None:
    """Anchor the head of the chain as ``conn`` sees it now; None if there was nothing new.

    Run it on a connection outside any open write (``q2c audit anchor``, the
    daily housekeeping), so the head it names is committed.
    """
    seal = seal_of(conn)
    last = conn.execute(_LAST).first()
    if last is None or not _write_anchor(seal, int(last.seq), str(last.hash)):
        return None
    return Anchor(int(last.seq), str(last.hash), _iso(now()))


# -- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the chain.

    Attributes:
        entries: entries read.
        ok: every seal matches, no entry is missing, and every anchor agrees.
        broken_at: the first entry found wrong (or missing).
        reason: what is wrong there.
        anchors: anchors checked.
        anchored_seq: the highest entry an anchor vouches for.
    """

    entries: int
    ok: bool
    broken_at: int | None = None
    reason: str | None = None
    anchors: int = 0
    anchored_seq: int = 0


def verify(conn: sa.Connection) -> ChainReport:
    """Check every seal in order, then the head row and the anchors; report the first entry wrong."""
    seal = seal_of(conn)
    anchors = read_anchors(seal.anchor_file) if seal.anchor_file is not None else []
    expected = {a.seq: a.hash for a in anchors}
    top = max(expected, default=0)

    def report(entries: int, broken_at: int | None = None, reason: str | None = None) -> ChainReport:
        return ChainReport(entries, broken_at is None, broken_at, reason, len(anchors), top)

    prev = GENESIS
    seen: dict[int, str] = {}
    count = 0
    for row in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings():
        count += 1
        seq = int(row["seq"])
        if seq != count:
            return report(count, count, f"entry {count} is missing")
        if row["prev_hash"] != prev:
            return report(count, seq, "previous-hash link does not match")
        if not hmac.compare_digest(entry_hash(dict(row), prev, seal.key), str(row["hash"])):
            return report(count, seq, "content does not match its seal (row was altered)")
        if seq in expected:
            seen[seq] = str(row["hash"])
        prev = str(row["hash"])
    if top > count:
        where = f" ({seal.anchor_file})" if seal.anchor_file else ""
        return report(
            count, count + 1, f"entries after {count} were removed: an anchor{where} records entry {top}"
        )
    for seq, anchored in sorted(expected.items()):
        if seen.get(seq) != anchored:
            return report(count, seq, "entry does not match its anchor (the chain was rewritten)")
    head = conn.execute(_READ).scalar_one_or_none()
    if head is not None and int(head.split(":")[0]) != count:
        return report(count, count + 1, "entries after the last one were removed")
    return report(count)


def entries(conn: sa.Connection, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Recent entries, newest first, optionally for one subject."""
    q = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if subject:
        q = q.where(audit_log.c.subject == subject)
    return [dict(r) for r in conn.execute(q).mappings()]
