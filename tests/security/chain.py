"""Helpers for the audit-chain tests: a sealed hub database, and what an intruder with write access does."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from quote2cash.store import audit
from quote2cash.store.db import make_engine, migrate

KEY = b"test-audit-key-0123456789abcdef"


def sealed_engine(db_url: str, folder: Path, *, every: int = 3, entries: int = 0) -> sa.Engine:
    """A migrated hub database whose chain is sealed with :data:`KEY` and anchored in ``folder``."""
    engine = make_engine(db_url)
    audit.bind(engine, audit.Seal(KEY, folder / "audit-anchors.jsonl", every))
    migrate(engine)
    for i in range(entries):
        with engine.begin() as conn:  # one transaction each, as flow steps commit
            audit.append(
                conn,
                actor="flow:test",
                action="customer.created",
                subject=f"Account/{i}",
                correlation_id=f"c{i}",
                systems=["netsuite"],
                after={"companyName": f"Client {i}", "amount": "1200.00"},
            )
    return engine


def drop_guards(conn: sa.Connection) -> None:
    """What an intruder with DDL rights does first: remove the append-only triggers."""
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
    else:
        conn.execute(sa.text("DROP TRIGGER audit_log_no_update_delete ON audit_log"))
        conn.execute(sa.text("DROP TRIGGER audit_log_no_truncate ON audit_log"))
