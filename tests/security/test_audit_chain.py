"""The audit chain against someone with write access to the hub database — on SQLite and PostgreSQL.

The intruder can drop triggers, edit rows, recompute hashes and delete the
``audit_head`` row; they cannot read the audit key (it is in the hub's
environment) nor the anchor file (it is outside the database).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from quote2cash.errors import ConfigError
from quote2cash.store import audit
from quote2cash.store.db import alembic_config, make_engine
from quote2cash.store.tables import audit_log, cursor
from tests.security.chain import KEY, drop_guards, sealed_engine


def _rechain(conn: sa.Connection, digest: Any, *, edit_seq: int, after: Any) -> None:
    """Edit entry ``edit_seq`` and recompute every hash from it on, with ``digest(row, prev)``."""
    rows = [dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()]
    prev = audit.GENESIS
    for row in rows:
        if row["seq"] == edit_seq:
            row["after"] = after
        if row["seq"] >= edit_seq:
            row["prev_hash"] = prev
            row["hash"] = digest(row, prev)
            conn.execute(
                sa.update(audit_log)
                .where(audit_log.c.seq == row["seq"])
                .values(after=row["after"], prev_hash=row["prev_hash"], hash=row["hash"])
            )
        prev = row["hash"]
    conn.execute(
        sa.update(cursor).where(cursor.c.name == "audit_head").values(value=f"{rows[-1]['seq']}:{prev}")
    )


def test_a_row_edited_and_the_chain_recomputed_without_the_key_is_detected(
    db_url: str, tmp_path: Path
) -> None:
    engine = sealed_engine(db_url, tmp_path, entries=6)
    with engine.begin() as conn:
        drop_guards(conn)
        # The old scheme's recomputation (plain SHA-256), which used to pass `q2c audit verify`.
        _rechain(conn, audit.unkeyed_hash, edit_seq=3, after={"companyName": "Mallory Ltd"})
    with engine.connect() as conn:
        report = audit.verify(conn)
        assert conn.execute(sa.select(audit_log.c.after).where(audit_log.c.seq == 3)).scalar_one() == {
            "companyName": "Mallory Ltd"
        }
    assert not report.ok and report.broken_at == 3 and "altered" in (report.reason or "")

    # A guessed key does no better.
    def wrong_key(row: dict[str, Any], prev: str) -> str:
        return audit.entry_hash(row, prev, b"guessed-key-guessed-key")

    with engine.begin() as conn:
        _rechain(conn, wrong_key, edit_seq=3, after={"companyName": "Mallory Ltd"})
    with engine.connect() as conn:
        assert audit.verify(conn).broken_at == 3
    engine.dispose()


def test_the_head_row_deleted_and_rows_truncated_is_detected_through_the_anchor(
    db_url: str, tmp_path: Path
) -> None:
    engine = sealed_engine(db_url, tmp_path, every=3, entries=7)
    with engine.connect() as conn:
        anchored = audit.anchor(conn)  # what `q2c run` does daily and `q2c audit anchor` does now
    assert anchored is not None and anchored.seq == 7
    with engine.begin() as conn:
        drop_guards(conn)
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= 5))
        conn.execute(sa.delete(cursor).where(cursor.c.name == "audit_head"))
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.entries == 4 and report.broken_at == 5
    assert "removed" in (report.reason or "") and "records entry 7" in (report.reason or "")
    engine.dispose()


def test_anchors_are_written_as_the_chain_grows_and_name_only_committed_entries(
    db_url: str, tmp_path: Path
) -> None:
    engine = sealed_engine(db_url, tmp_path, every=3, entries=7)
    anchors = audit.read_anchors(tmp_path / "audit-anchors.jsonl")
    # Appending entry 3 anchors entry 2, the last one committed then; entry 6 anchors 5.
    assert [a.seq for a in anchors] == [2, 5]
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(audit_log.c.seq, audit_log.c.hash)).all())
    assert all(hashes[a.seq] == a.hash for a in anchors)
    # A transaction that rolls back leaves no anchor naming its entries (8 to 10): entry 9
    # anchors entry 7, the last committed.
    with pytest.raises(RuntimeError), engine.begin() as conn:
        for i in range(3):
            audit.append(conn, actor="t", action="x", subject=f"S/{i}")
        raise RuntimeError("rolled back")
    assert [a.seq for a in audit.read_anchors(tmp_path / "audit-anchors.jsonl")] == [2, 5, 7]
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    # Truncating below the last automatic anchor is found even with the head row gone.
    with engine.begin() as conn:
        drop_guards(conn)
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= 4))
        conn.execute(sa.delete(cursor).where(cursor.c.name == "audit_head"))
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.broken_at == 4
    engine.dispose()


def test_a_chain_rewritten_with_the_key_still_disagrees_with_its_anchors(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path, every=3, entries=6)

    def stolen_key(row: dict[str, Any], prev: str) -> str:
        return hmac.new(KEY, audit._content(row, prev), hashlib.sha256).hexdigest()

    with engine.begin() as conn:
        drop_guards(conn)
        _rechain(conn, stolen_key, edit_seq=1, after={"companyName": "Mallory Ltd"})
    with engine.connect() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.broken_at == 2 and "anchor" in (report.reason or "")
    engine.dispose()


def test_update_delete_are_refused_on_the_audit_table(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path, entries=3)
    statements = [
        sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"),
        sa.delete(audit_log).where(audit_log.c.seq == 3),
        sa.delete(audit_log),
    ]
    if engine.dialect.name == "postgresql":
        statements.append(sa.text("TRUNCATE audit_log"))
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one() == 3
        assert audit.verify(conn).ok
    engine.dispose()


def test_appending_without_a_bound_key_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'unsealed.sqlite'}")
    with pytest.raises(ConfigError) as err, engine.begin() as conn:
        audit.append(conn, actor="t", action="x", subject="S/1")
    assert err.value.code == "audit.unsealed"
    engine.dispose()


def test_the_migration_reseals_an_intact_legacy_chain(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    audit.bind(engine, audit.Seal(KEY, tmp_path / "anchors.jsonl"))
    command.upgrade(alembic_config(engine), "0004")
    with engine.begin() as conn:  # three entries chained the old way (plain SHA-256)
        prev = audit.GENESIS
        for seq in (1, 2, 3):
            row = {
                "seq": seq,
                "at": audit.now(),
                "actor": "flow:test",
                "action": "customer.created",
                "subject": f"Account/{seq}",
                "correlation_id": None,
                "systems": [],
                "before": None,
                "after": {"n": seq},
            }
            row["prev_hash"], row["hash"] = prev, audit.unkeyed_hash(row, prev)
            conn.execute(sa.insert(audit_log), row)
            prev = row["hash"]
        conn.execute(sa.insert(cursor).values(name="audit_head", value=f"3:{prev}", updated_at=audit.now()))
    command.upgrade(alembic_config(engine), "heads")
    with engine.begin() as conn:
        assert audit.verify(conn).ok
        audit.append(conn, actor="t", action="after.upgrade", subject="S/4")
    with engine.connect() as conn:
        assert audit.verify(conn).ok and audit.verify(conn).entries == 4
    engine.dispose()
