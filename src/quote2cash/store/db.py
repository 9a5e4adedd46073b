"""Engines and migrations for the hub database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from quote2cash.errors import ConfigError, HubError

MIGRATIONS = Path(__file__).with_name("migrations")

#: The PostgreSQL advisory-lock key that serialises hub start-up: the ASCII bytes
#: ``q2cstart`` read as a big-endian 64-bit integer (0x7132637374617274). Advisory
#: locks belong to one database, so hubs on other databases of the same server
#: never wait for each other. DBOS's own migration lock (1234567890) is a different key.
STARTUP_LOCK_KEY = 8156691222646321780

#: How long a starting worker waits for another worker's start-up, in seconds.
STARTUP_LOCK_TIMEOUT = 600.0

#: The suffix of the file next to a SQLite hub database that carries its start-up lock.
SQLITE_LOCK_SUFFIX = ".startup-lock"


def is_sqlite(url: str) -> bool:
    """Whether a database URL names a SQLite file."""
    return url.startswith("sqlite")


def sqlite_url(path: Path | str) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path)}"


class WriteGate:
    """The one writer a SQLite file allows, queued in this process.

    SQLite lets one connection write at a time; the others wait in its busy
    handler, which sleeps and polls (1, 2, 5, 10 … 100 ms), so a burst of short
    write transactions from a worker's threads spent most of its time asleep.
    Every engine of the process on the same file passes through one gate: a
    transaction takes it with its first write (or at ``BEGIN`` where the engine
    begins ``IMMEDIATE``) and gives it back when it commits or rolls back, and the
    next writer is woken at once. Re-entrant per thread; other processes on the
    file still meet SQLite's own lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        """Wait for the gate (at once if this thread holds it already)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            while self._owner is not None:
                self._cond.wait()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        """Give the gate back (from any thread: a connection may be closed by another)."""
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._owner, self._depth = None, 0
                self._cond.notify()


_gates: dict[str, WriteGate] = {}
_gates_guard = threading.Lock()
_HELD = "q2c_write_gate"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def write_gate(path: str) -> WriteGate:
    """The gate of a SQLite file, shared by every engine of this process on it."""
    key = str(Path(path).resolve())
    with _gates_guard:
        return _gates.setdefault(key, WriteGate())


def _gated(engine: sa.Engine, gate: WriteGate, *, at_begin: bool) -> None:
    def take(conn: sa.Connection) -> None:
        if not conn.info.get(_HELD):
            gate.acquire()
            conn.info[_HELD] = True

    def give(conn: sa.Connection) -> None:
        if conn.info.pop(_HELD, False):
            gate.release()

    if at_begin:
        sa.event.listen(engine, "begin", take)
    else:

        def on_statement(conn: sa.Connection, _cur: Any, statement: str, *_: Any) -> None:
            if not conn.info.get(_HELD) and statement.lstrip()[:7].upper().startswith(_WRITES):
                take(conn)

        sa.event.listen(engine, "before_cursor_execute", on_statement)
    sa.event.listen(engine, "commit", give)
    sa.event.listen(engine, "rollback", give)

    def returned(_dbapi: Any, record: Any) -> None:  # a connection given back mid-transaction
        if record.info.pop(_HELD, False):
            gate.release()

    sa.event.listen(engine.pool, "checkin", returned)


def make_engine(url: str, *, immediate: bool = False, **kwargs: Any) -> sa.Engine:
    """An engine for the hub database; SQLite files run in WAL mode.

    WAL lets the pollers read while a worker writes, and DBOS does not set it.
    ``immediate``: every transaction begins ``IMMEDIATE`` (DBOS's system
    database engine), taking the write lock at once. On SQLite, writers queue
    at the file's :class:`WriteGate`.
    """
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            if immediate:
                dbapi_conn.isolation_level = "IMMEDIATE"
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # A month-end batch touches a million ledger rows: keep the hot pages in memory.
            cur.execute("PRAGMA cache_size=-131072")  # 128 MiB
            cur.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint the WAL every ~40 MiB rather than every 4 MiB: fewer fsyncs in bulk loads.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            if immediate:
                cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        if path and path != ":memory:":
            _gated(engine, write_gate(path), at_begin=immediate)
        return engine
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("postgresql"):
        raise ConfigError(
            f"database URL '{url.split('://')[0]}://…' is not supported: use sqlite:///path or postgresql://…",
            code="config.database_url",
        )
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **kwargs)


def alembic_config(engine: sa.Engine) -> Config:
    """An Alembic configuration bound to ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the hub tables to the latest migration, one worker at a time.

    Without :func:`startup_lock`, two workers starting together on an empty
    database both see no ``alembic_version`` table, both create it, and one dies.
    """
    with startup_lock(engine):
        # Every head: features add their migrations side by side.
        command.upgrade(alembic_config(engine), "heads")


class _ProcessHold:
    """The in-process side of a start-up lock: re-entrant, and one thread at a time."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0


_holds: dict[tuple[str, ...], _ProcessHold] = {}
_holds_guard = threading.Lock()


def _database_key(url: sa.URL) -> tuple[str, ...]:
    """One database, however its URL is spelled (driver, password, relative path)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        return (backend, str(Path(database).resolve()) if _is_sqlite_file(database) else database)
    return (backend, url.host or "", str(url.port or ""), url.database or "")


def _is_sqlite_file(database: str) -> bool:
    return bool(database) and database != ":memory:" and not database.startswith("file:")


@contextmanager
def startup_lock(engine: sa.Engine, *, timeout: float = STARTUP_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the hub database's start-up lock: one worker process starts at a time.

    Everything that creates or migrates tables on start-up belongs inside it: the
    Alembic upgrade (:func:`migrate` takes it itself), and ``DBOS.launch()`` with
    the datasource it migrates (``SQLAlchemyDatasource.create``). A worker that
    comes second waits, then finds the schema at head and changes nothing.

    - PostgreSQL: a session-level advisory lock on :data:`STARTUP_LOCK_KEY`, on a
      connection of its own, in autocommit, so no transaction stays open while
      the lock is held. A worker that dies releases it with its session. It is
      taken by polling ``pg_try_advisory_lock``: a waiter blocked in
      ``pg_advisory_lock`` would deadlock with the holder's ``DBOS.launch()``.
    - SQLite: ``BEGIN EXCLUSIVE`` on a connection of its own to a file next to
      the database (``hub.sqlite.startup-lock``), not to the database itself:
      an exclusive transaction on the database would block this process's own
      migration and DBOS's, which use other connections. The lock file (and its
      directory) is created if missing; the OS releases it when a worker dies.
      An in-memory database (or a ``file:`` URI) is not locked across processes.

    The lock is re-entrant within a process (keyed by the database, not the
    engine), so ``Hub.launch`` may hold it around :func:`migrate` and
    ``DBOS.launch()``; other threads of the process wait like other processes.

    Raises:
        HubError: the lock was not free within ``timeout`` seconds (another
            worker is stuck in start-up, or holds it for a long migration).
    """
    key = _database_key(engine.url)
    with _holds_guard:
        hold = _holds.setdefault(key, _ProcessHold())
    if not hold.lock.acquire(timeout=timeout):
        raise _timed_out(engine, timeout)
    try:
        if hold.depth:
            hold.depth += 1
            try:
                yield
            finally:
                hold.depth -= 1
            return
        hold.depth = 1
        try:
            if key[0] == "sqlite":
                with _sqlite_lock(engine, key[1], timeout):
                    yield
            else:
                with _postgres_lock(engine, timeout):
                    yield
        finally:
            hold.depth = 0
    finally:
        hold.lock.release()


def _timed_out(engine: sa.Engine, timeout: float) -> HubError:
    where = engine.url.render_as_string(hide_password=True)
    return HubError(
        f"another hub worker has held the start-up lock of the hub database for over {timeout:g}s; "
        "is a worker stuck in start-up or running a long migration?",
        code="hub.startup_lock_timeout",
        record=where,
    )


@contextmanager
def _postgres_lock(engine: sa.Engine, timeout: float) -> Iterator[None]:
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        # Poll with pg_try_advisory_lock; never wait in a blocking pg_advisory_lock. A statement
        # blocked on the lock keeps a snapshot open, and the holder's DBOS.launch() runs
        # CREATE INDEX CONCURRENTLY, which waits for every open snapshot in the database:
        # the holder would wait for the waiter, which waits for the holder, for ever.
        deadline = time.monotonic() + timeout
        pause = 0.02
        while not conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY}
        ).scalar_one():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timed_out(engine, timeout)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)
        try:
            yield
        finally:
            with suppress(sa.exc.DBAPIError):  # if the session is gone, its lock went with it
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})
    finally:
        # Discard the session rather than pool it: a lock left on it must not outlive this block.
        conn.invalidate()
        conn.close()


@contextmanager
def _sqlite_lock(engine: sa.Engine, database: str, timeout: float) -> Iterator[None]:
    if not _is_sqlite_file(database):
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(path.name + SQLITE_LOCK_SUFFIX)
    # timeout is SQLite's busy timeout: BEGIN EXCLUSIVE waits that long for the peer's commit.
    conn = sqlite3.connect(lock_file, timeout=timeout, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise _timed_out(engine, timeout) from exc
            raise
        try:
            yield
        finally:
            conn.execute("ROLLBACK")  # nothing was written: the transaction is only the lock
    finally:
        conn.close()
