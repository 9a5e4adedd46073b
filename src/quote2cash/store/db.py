"""Engines and migrations for the hub database (SQLite file or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from quote2cash.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    """Whether a database URL names a SQLite file."""
    return url.startswith("sqlite")


def sqlite_url(path: Path | str) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path)}"


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for the hub database; SQLite files run in WAL mode.

    WAL lets the pollers read while a worker writes, and DBOS does not set it.
    """
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # A month-end batch touches a million ledger rows: keep the hot pages in memory.
            cur.execute("PRAGMA cache_size=-131072")  # 128 MiB
            cur.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint the WAL every ~40 MiB rather than every 4 MiB: fewer fsyncs in bulk loads.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.close()

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
    """Bring the hub tables to the latest migration."""
    command.upgrade(alembic_config(engine), "head")
