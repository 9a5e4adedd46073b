"""Small repositories over the hub tables. Every function takes the caller's
connection, so a flow step and its bookkeeping commit in one transaction.

The statements a flow run executes for every record it writes are built once,
with bind parameters, so SQLAlchemy neither rebuilds nor re-keys them per call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.store.tables import cursor, flow_run, idempotency_ledger, identity_decision, inbox, xref


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def insert_ignore(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert a row unless its key exists; True if it was inserted."""
    # RETURNING says for certain whether a row went in (rowcount is not reliable on every driver).
    stmt = _on_conflict(conn.dialect, table, tuple(values), None)
    return conn.execute(stmt, values).first() is not None


def upsert(conn: sa.Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> None:
    """Insert a row, or update every non-key column of the existing one."""
    conn.execute(_on_conflict(conn.dialect, table, tuple(values), tuple(keys)), values)


_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...] | None], sa.TextClause] = {}


def _on_conflict(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...] | None
) -> sa.TextClause:
    """``INSERT … ON CONFLICT`` (do nothing, or update the non-key columns) as a cached statement.

    The dialects' own ``on_conflict`` constructs are not cacheable, so SQLAlchemy
    compiled one afresh on every call; the text is the same on SQLite and
    PostgreSQL, and typed bind parameters keep each column's conversions.
    """
    cache_key = (dialect.name, table.name, columns, keys)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        q = dialect.identifier_preparer
        names = ", ".join(q.quote(c) for c in columns)
        params = ", ".join(f":{c}" for c in columns)
        sql = f"INSERT INTO {q.format_table(table)} ({names}) VALUES ({params}) ON CONFLICT"
        if keys is None:
            first_key = next(iter(table.primary_key.columns)).name
            sql += f" DO NOTHING RETURNING {q.quote(first_key)}"
        else:
            update = [c for c in columns if c not in keys]
            sql += f" ({', '.join(q.quote(k) for k in keys)})"
            sql += (
                " DO UPDATE SET " + ", ".join(f"{q.quote(c)} = excluded.{q.quote(c)}" for c in update)
                if update
                else " DO NOTHING"
            )
        stmt = sa.text(sql).bindparams(*(sa.bindparam(c, type_=table.c[c].type) for c in columns))
        _STATEMENTS[cache_key] = stmt
    return stmt


# -- cross-references ----------------------------------------------------------------
_XREF_KEY = sa.and_(
    xref.c.system == sa.bindparam("b_system"),
    xref.c.object_type == sa.bindparam("b_object_type"),
    xref.c.canonical_id == sa.bindparam("b_canonical_id"),
)
_GET_XREF = sa.select(xref.c.external_id).where(_XREF_KEY)
_GET_XREFS = sa.select(xref.c.system, xref.c.object_type, xref.c.canonical_id, xref.c.external_id).where(
    xref.c.system.in_(sa.bindparam("systems", expanding=True)),
    xref.c.object_type.in_(sa.bindparam("object_types", expanding=True)),
    xref.c.canonical_id.in_(sa.bindparam("canonical_ids", expanding=True)),
)
_GET_SYNCED = sa.select(xref.c.source_version, xref.c.synced).where(_XREF_KEY)
_SET_SYNCED = (
    sa.update(xref)
    .where(_XREF_KEY)
    .values(source_version=sa.bindparam("b_source_version"), synced=sa.bindparam("b_synced"))
)


def _key(system: str, object_type: str, canonical_id: str) -> dict[str, str]:
    return {"b_system": system, "b_object_type": object_type, "b_canonical_id": canonical_id}


def get_xref(conn: sa.Connection, system: str, object_type: str, canonical_id: str) -> str | None:
    """The external id of a canonical record in a system, if the hub knows it."""
    return conn.execute(_GET_XREF, _key(system, object_type, canonical_id)).scalar_one_or_none()


def get_xrefs(conn: sa.Connection, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """The external ids the hub knows among (system, object type, canonical id) keys, in one query."""
    if not keys:
        return {}
    rows = conn.execute(
        _GET_XREFS,
        {
            "systems": sorted({k[0] for k in keys}),
            "object_types": sorted({k[1] for k in keys}),
            "canonical_ids": sorted({k[2] for k in keys}),
        },
    )
    wanted = set(keys)
    return {
        (r.system, r.object_type, r.canonical_id): str(r.external_id)
        for r in rows
        if (r.system, r.object_type, r.canonical_id) in wanted
    }


def put_xref(conn: sa.Connection, system: str, object_type: str, canonical_id: str, external_id: str) -> None:
    """Record (or correct) the external id of a canonical record."""
    upsert(
        conn,
        xref,
        {
            "system": system,
            "object_type": object_type,
            "canonical_id": canonical_id,
            "external_id": external_id,
            "created_at": now(),
        },
        ["system", "object_type", "canonical_id"],
    )


def get_synced(
    conn: sa.Connection, system: str, object_type: str, canonical_id: str
) -> tuple[str | None, dict[str, Any]] | None:
    """The source version and field values the hub last synced of a record (None: not linked)."""
    row = conn.execute(_GET_SYNCED, _key(system, object_type, canonical_id)).one_or_none()
    return None if row is None else (row.source_version, dict(row.synced or {}))


def set_synced(
    conn: sa.Connection,
    system: str,
    object_type: str,
    canonical_id: str,
    source_version: str | None,
    fields: dict[str, Any],
) -> None:
    """Remember what the hub has now seen of a linked record's source."""
    conn.execute(
        _SET_SYNCED,
        {**_key(system, object_type, canonical_id), "b_source_version": source_version, "b_synced": fields},
    )


def delete_xref(conn: sa.Connection, system: str, object_type: str, canonical_id: str) -> None:
    """Forget a cross-reference (after a compensation removed the record)."""
    conn.execute(
        sa.delete(xref).where(
            xref.c.system == system, xref.c.object_type == object_type, xref.c.canonical_id == canonical_id
        )
    )


# -- idempotency ledger ----------------------------------------------------------------
def ledger_get(conn: sa.Connection, key: str) -> dict[str, Any] | None:
    """The ledger row of an outbound write, if any."""
    row = (
        conn.execute(sa.select(idempotency_ledger).where(idempotency_ledger.c.key == key)).mappings().first()
    )
    return dict(row) if row else None


def ledger_begin(
    conn: sa.Connection, key: str, system: str, operation: str, correlation_id: str | None
) -> bool:
    """Mark a write as in doubt before sending it; False if the key is already known."""
    t = now()
    return insert_ignore(
        conn,
        idempotency_ledger,
        {
            "key": key,
            "system": system,
            "operation": operation,
            "status": "in_doubt",
            "result": None,
            "correlation_id": correlation_id,
            "created_at": t,
            "updated_at": t,
        },
    )


_LEDGER_DONE = (
    sa.update(idempotency_ledger)
    .where(idempotency_ledger.c.key == sa.bindparam("k"))
    .values(status="done", result=sa.bindparam("b_result"), updated_at=sa.bindparam("at"))
)


def ledger_done(conn: sa.Connection, key: str, result: Any) -> None:
    """Mark a write as applied, with what the target answered."""
    conn.execute(_LEDGER_DONE, {"k": key, "b_result": result, "at": now()})


def ledger_applied(
    conn: sa.Connection, key: str, system: str, operation: str, correlation_id: str | None, result: Any
) -> None:
    """Record a write that needed no in-doubt mark (an upsert) as applied, in one statement."""
    t = now()
    upsert(
        conn,
        idempotency_ledger,
        {
            "key": key,
            "system": system,
            "operation": operation,
            "status": "done",
            "result": result,
            "correlation_id": correlation_id,
            "created_at": t,
            "updated_at": t,
        },
        ["key"],
    )


# -- inbox -------------------------------------------------------------------------------
def inbox_accept(conn: sa.Connection, row: dict[str, Any]) -> bool:
    """Store a source event once, personal data masked; a redelivery only bumps its duplicate count."""
    from quote2cash.runtime.logs import minimise

    stored = {**row, "payload": minimise(row["payload"])} if "payload" in row else row
    if insert_ignore(conn, inbox, {**stored, "received_at": now(), "duplicates": 0}):
        return True
    conn.execute(
        sa.update(inbox)
        .where(inbox.c.source == row["source"], inbox.c.source_event_id == row["source_event_id"])
        .values(duplicates=inbox.c.duplicates + 1)
    )
    return False


def inbox_duplicates(conn: sa.Connection) -> int:
    """How many redeliveries the inbox dropped."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(inbox.c.duplicates), 0))).scalar_one())


# -- cursors -------------------------------------------------------------------------------
_GET_CURSOR = sa.select(cursor.c.value).where(cursor.c.name == sa.bindparam("b_name"))


def get_cursor(conn: sa.Connection, name: str) -> str | None:
    """A poller's durable position."""
    return conn.execute(_GET_CURSOR, {"b_name": name}).scalar_one_or_none()


def set_cursor(conn: sa.Connection, name: str, value: str) -> None:
    """Move a poller's durable position."""
    upsert(conn, cursor, {"name": name, "value": value, "updated_at": now()}, ["name"])


# -- flow runs (saga state) ------------------------------------------------------------------
_RUN_KEY = sa.and_(flow_run.c.flow == sa.bindparam("b_flow"), flow_run.c.subject == sa.bindparam("b_subject"))
_GET_RUN = sa.select(flow_run).where(_RUN_KEY)
_REOPEN_RUN = sa.update(flow_run).where(_RUN_KEY).values(status="running", attempts=flow_run.c.attempts + 1)
_SET_STEPS = sa.update(flow_run).where(_RUN_KEY).values(steps=sa.bindparam("b_steps"))
_FINISH_RUN = (
    sa.update(flow_run)
    .where(_RUN_KEY)
    .values(status=sa.bindparam("b_status"), last_error=sa.bindparam("b_last_error"))
)
_COMPLETE_RUN = _FINISH_RUN.values(completed_at=sa.bindparam("b_completed_at"))


def get_run(conn: sa.Connection, flow: str, subject: str) -> dict[str, Any] | None:
    """The saga record of a flow for a subject."""
    row = conn.execute(_GET_RUN, {"b_flow": flow, "b_subject": subject}).mappings().first()
    return dict(row) if row else None


def start_run(
    conn: sa.Connection, flow: str, subject: str, correlation_id: str, trigger_time: datetime | None
) -> dict[str, Any]:
    """Open (or reopen, counting the attempt) the saga record of a flow."""
    existing = get_run(conn, flow, subject)
    if existing is None:
        values: dict[str, Any] = {
            "flow": flow,
            "subject": subject,
            "correlation_id": correlation_id,
            "status": "running",
            "attempts": 1,
            "steps": {},
            "trigger_time": trigger_time,
            "started_at": now(),
        }
        if insert_ignore(conn, flow_run, values):
            return {**{c.name: None for c in flow_run.c}, **values}
    elif existing["status"] == "completed":
        return existing
    else:
        conn.execute(_REOPEN_RUN, {"b_flow": flow, "b_subject": subject})
    run = get_run(conn, flow, subject)
    assert run is not None
    return run


def record_step(
    conn: sa.Connection, flow: str, subject: str, step: str, system: str, external_id: str
) -> None:
    """Note that a step wrote ``external_id`` in ``system``."""
    run = get_run(conn, flow, subject)
    steps = dict(run["steps"]) if run else {}
    steps[step] = {"system": system, "id": external_id, "at": now().isoformat()}
    set_steps(conn, flow, subject, steps)


def set_steps(conn: sa.Connection, flow: str, subject: str, steps: dict[str, Any]) -> None:
    """Replace the steps a run has written (``{step: {"system", "id", "at"}}``)."""
    conn.execute(_SET_STEPS, {"b_flow": flow, "b_subject": subject, "b_steps": steps})


def forget_step(conn: sa.Connection, flow: str, subject: str, step: str) -> None:
    """Remove a step after it was compensated."""
    run = get_run(conn, flow, subject)
    if run is None:
        return
    set_steps(conn, flow, subject, {k: v for k, v in dict(run["steps"]).items() if k != step})


def finish_run(
    conn: sa.Connection, flow: str, subject: str, status: str, error: dict[str, Any] | None = None
) -> None:
    """Close a saga record as completed, exception or compensated."""
    params: dict[str, Any] = {"b_flow": flow, "b_subject": subject, "b_status": status, "b_last_error": error}
    if status == "completed":
        conn.execute(_COMPLETE_RUN, {**params, "b_completed_at": now()})
    else:
        conn.execute(_FINISH_RUN, params)


# -- identity decisions -----------------------------------------------------------------------
def get_identity_decision(conn: sa.Connection, canonical_id: str) -> dict[str, Any] | None:
    """What a person decided about a probable duplicate."""
    row = (
        conn.execute(sa.select(identity_decision).where(identity_decision.c.canonical_id == canonical_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def put_identity_decision(
    conn: sa.Connection, canonical_id: str, decision: str, external_id: str | None, decided_by: str
) -> None:
    """Record a person's decision about a probable duplicate."""
    upsert(
        conn,
        identity_decision,
        {
            "canonical_id": canonical_id,
            "decision": decision,
            "external_id": external_id,
            "decided_by": decided_by,
            "decided_at": now(),
        },
        ["canonical_id"],
    )
