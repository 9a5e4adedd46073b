"""the audit trail is sealed with a key and append-only: triggers refuse UPDATE and DELETE

An existing chain (plain SHA-256) is checked first; if it is intact it is
re-sealed with the audit key bound to this database, oldest entry first. A
chain that no longer verifies is left as it is, so the evidence of the change
stays for ``q2c audit verify`` to report.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_REFUSED = "audit_log is append-only: UPDATE and DELETE are refused"

_SQLITE = [
    f"""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END""",
    f"""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END""",
]

_POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION q2c_audit_log_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{_REFUSED} (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION q2c_audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION q2c_audit_log_append_only()""",
]


def _reseal(conn: sa.Connection) -> None:
    from quote2cash.store import audit
    from quote2cash.store.tables import audit_log, cursor

    rows = [dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()]
    if not rows:
        return
    prev = audit.GENESIS
    for n, row in enumerate(rows, start=1):
        intact = row["seq"] == n and row["prev_hash"] == prev and audit.unkeyed_hash(row, prev) == row["hash"]
        if not intact:
            return  # a broken chain is not re-sealed: that would launder the change
        prev = row["hash"]
    key = audit.seal_of(conn).key  # refuses, naming the key, when none is bound
    prev = audit.GENESIS
    update = (
        sa.update(audit_log)
        .where(audit_log.c.seq == sa.bindparam("s"))
        .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"))
    )
    sealed: list[dict[str, Any]] = []
    for row in rows:
        digest = audit.entry_hash(row, prev, key)
        sealed.append({"s": row["seq"], "p": prev, "h": digest})
        prev = digest
    conn.execute(update, sealed)
    conn.execute(
        sa.update(cursor).where(cursor.c.name == "audit_head").values(value=f"{rows[-1]['seq']}:{prev}")
    )


def upgrade() -> None:
    conn = op.get_bind()
    _reseal(conn)
    for statement in _SQLITE if conn.dialect.name == "sqlite" else _POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS q2c_audit_log_append_only()")
