"""The audit chain verifies, and detects a tampered, deleted or truncated row — on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from quote2cash.store import audit
from quote2cash.store.db import make_engine, migrate
from quote2cash.store.tables import audit_log


def _engine_with_entries(db_url: str, n: int = 5) -> sa.Engine:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        for i in range(n):
            audit.append(
                conn,
                actor="flow:test",
                action="customer.created",
                subject=f"Account/{i}",
                correlation_id=f"c{i}",
                systems=["netsuite"],
                after={"companyName": f"Client {i}"},
            )
    return engine


def test_chain_verifies(db_url: str) -> None:
    engine = _engine_with_entries(db_url)
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert report.ok and report.entries == 5
    engine.dispose()


def test_tampered_row_is_detected(db_url: str) -> None:
    engine = _engine_with_entries(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(audit_log).where(audit_log.c.seq == 3).values(after={"companyName": "Mallory"})
        )
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.broken_at == 3 and "altered" in (report.reason or "")
    engine.dispose()


def test_deleted_or_truncated_rows_are_detected(db_url: str) -> None:
    engine = _engine_with_entries(db_url)
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 2))
    with engine.connect() as conn:
        assert audit.verify(conn).broken_at == 2
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= 2))
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and "removed" in (report.reason or "")
    engine.dispose()
