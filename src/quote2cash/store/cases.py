"""The exception queue: cases for people, with a readable message and an owner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import HubError
from quote2cash.runtime.logs import minimise
from quote2cash.store.repo import now
from quote2cash.store.tables import exception_case

OPEN_STATES = ("open", "resubmitted")


def open_case(
    conn: sa.Connection,
    error: HubError | dict[str, Any],
    *,
    flow: str,
    subject: str,
    correlation_id: str | None,
    payload: Any = None,
) -> int:
    """Open a case for ``error`` (or its serialised form), or count another occurrence of the same case.

    The message, details and payload are stored with personal data masked
    (:func:`~quote2cash.runtime.logs.minimise`); ids, amounts and dates stay.
    """
    data = minimise(error.to_dict() if isinstance(error, HubError) else dict(error))
    payload = minimise(payload)
    key = f"{flow}:{subject}:{data['code']}"
    existing = conn.execute(
        sa.select(exception_case.c.id, exception_case.c.status).where(exception_case.c.dedupe_key == key)
    ).first()
    t = now()
    if existing is not None:
        conn.execute(
            sa.update(exception_case)
            .where(exception_case.c.id == existing.id)
            .values(
                occurrences=exception_case.c.occurrences + 1,
                status="open",
                message=data["message"],
                details=data,
                correlation_id=correlation_id,
                updated_at=t,
            )
        )
        return int(existing.id)
    result = conn.execute(
        sa.insert(exception_case).values(
            dedupe_key=key,
            code=data["code"],
            message=data["message"],
            owner=str(data.get("owner") or "integration"),
            flow=flow,
            subject=subject,
            system=data.get("system"),
            record=data.get("record"),
            correlation_id=correlation_id,
            status="open",
            occurrences=1,
            details=data,
            payload=payload,
            created_at=t,
            updated_at=t,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def open_cases(conn: sa.Connection, items: list[tuple[dict[str, Any], str, str, str | None]]) -> int:
    """Open many cases at once: ``(error dict, flow, subject, correlation id)`` each.

    Same semantics as :func:`open_case` (a case already known counts another
    occurrence), in a handful of statements for thousands of cases.
    """
    by_key = {
        f"{flow}:{subject}:{data['code']}": (minimise(data), flow, subject, corr)
        for data, flow, subject, corr in items
    }
    keys = list(by_key)
    existing: set[str] = set()
    for i in range(0, len(keys), 500):
        existing.update(
            k
            for (k,) in conn.execute(
                sa.select(exception_case.c.dedupe_key).where(
                    exception_case.c.dedupe_key.in_(keys[i : i + 500])
                )
            )
        )
    t = now()
    new = [
        {
            "dedupe_key": k,
            "code": d["code"],
            "message": d["message"],
            "owner": str(d.get("owner") or "integration"),
            "flow": flow,
            "subject": subject,
            "system": d.get("system"),
            "record": d.get("record"),
            "correlation_id": corr,
            "status": "open",
            "occurrences": 1,
            "details": d,
            "payload": None,
            "created_at": t,
            "updated_at": t,
        }
        for k, (d, flow, subject, corr) in by_key.items()
        if k not in existing
    ]
    if new:
        conn.execute(sa.insert(exception_case), new)
    if existing:
        conn.execute(
            sa.update(exception_case)
            .where(exception_case.c.dedupe_key == sa.bindparam("k"))
            .values(occurrences=exception_case.c.occurrences + 1, status="open", updated_at=t),
            [{"k": k} for k in existing],
        )
    return len(new)


def close_cases(conn: sa.Connection, flow: str, subject: str, resolution: dict[str, Any]) -> int:
    """Resolve every open case of a subject once its flow completed; returns how many."""
    result = conn.execute(
        sa.update(exception_case)
        .where(
            exception_case.c.flow == flow,
            exception_case.c.subject == subject,
            exception_case.c.status.in_(OPEN_STATES),
        )
        .values(status="resolved", resolution=resolution, updated_at=now())
    )
    return int(result.rowcount)


def set_status(conn: sa.Connection, case_id: int, status: str, resolution: dict[str, Any]) -> None:
    """Move a case to a new status with the person's resolution."""
    conn.execute(
        sa.update(exception_case)
        .where(exception_case.c.id == case_id)
        .values(status=status, resolution=minimise(resolution), updated_at=now())
    )


def get_case(conn: sa.Connection, case_id: int) -> dict[str, Any] | None:
    """One case with its age in hours."""
    row = conn.execute(sa.select(exception_case).where(exception_case.c.id == case_id)).mappings().first()
    return _with_age(dict(row)) if row else None


def list_cases(
    conn: sa.Connection, *, status: str | None = "open", code: str | None = None, flow: str | None = None
) -> list[dict[str, Any]]:
    """Cases, oldest first, filtered by status (``None`` for all), code or flow."""
    q = sa.select(exception_case).order_by(exception_case.c.id)
    if status == "open":
        q = q.where(exception_case.c.status.in_(OPEN_STATES))
    elif status:
        q = q.where(exception_case.c.status == status)
    if code:
        q = q.where(exception_case.c.code == code)
    if flow:
        q = q.where(exception_case.c.flow == flow)
    return [_with_age(dict(r)) for r in conn.execute(q).mappings()]


def open_by_subject(conn: sa.Connection, flow: str, subjects: list[str]) -> dict[str, int]:
    """The open case (its id) of each of these subjects of a flow that has one."""
    found: dict[str, int] = {}
    for chunk in range(0, len(subjects), 500):
        rows = conn.execute(
            sa.select(exception_case.c.subject, exception_case.c.id).where(
                exception_case.c.flow == flow,
                exception_case.c.status.in_(OPEN_STATES),
                exception_case.c.subject.in_(subjects[chunk : chunk + 500]),
            )
        )
        found.update({subject: int(id_) for subject, id_ in rows})
    return found


def counts_by_code(conn: sa.Connection, flow: str | None = None) -> dict[str, int]:
    """Open and closed cases counted by error code."""
    q = sa.select(exception_case.c.code, sa.func.count()).group_by(exception_case.c.code)
    if flow:
        q = q.where(exception_case.c.flow == flow)
    return {code: int(n) for code, n in conn.execute(q)}


def _with_age(row: dict[str, Any]) -> dict[str, Any]:
    created = row["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    row["age_hours"] = round((datetime.now(UTC) - created).total_seconds() / 3600, 2)
    return row
