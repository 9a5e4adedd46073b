"""The audit chain verifies, and detects a tampered, deleted or truncated row — on both databases.

An intruder has to drop the append-only triggers first (see tests/security for the triggers themselves).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from quote2cash.store import audit
from quote2cash.store.tables import audit_log
from tests.security.chain import drop_guards, sealed_engine


def test_chain_verifies(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path, entries=5)
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert report.ok and report.entries == 5
    engine.dispose()


def test_tampered_row_is_detected(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path, entries=5)
    with engine.begin() as conn:
        drop_guards(conn)
        conn.execute(
            sa.update(audit_log).where(audit_log.c.seq == 3).values(after={"companyName": "Mallory"})
        )
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.broken_at == 3 and "altered" in (report.reason or "")
    engine.dispose()


def test_deleted_or_truncated_rows_are_detected(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path, entries=5)
    with engine.begin() as conn:
        drop_guards(conn)
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 2))
    with engine.connect() as conn:
        assert audit.verify(conn).broken_at == 2
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= 2))
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and "removed" in (report.reason or "")
    engine.dispose()
