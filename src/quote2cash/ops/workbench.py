"""The exception workbench beyond the queue itself: assign a case, comment on it,
and fix and resubmit it with an edited payload. Every action is a note on the
case and an entry in the audit trail."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import NotFoundError, UsageError
from quote2cash.ops import cases as case_service
from quote2cash.ops._source import Source, read
from quote2cash.runtime.hub import Hub
from quote2cash.store import audit
from quote2cash.store import cases as case_store
from quote2cash.store.repo import now
from quote2cash.store.tables import case_note, exception_case

#: The largest edited payload accepted, serialised (a payload is one source record).
MAX_PAYLOAD_CHARS = 200_000


def _case(source: Source, case_id: int) -> dict[str, Any]:
    case = read(source, case_store.get_case, case_id)
    if case is None:
        raise NotFoundError(f"there is no exception case {case_id}", code="case.not_found")
    return case


def _note(conn: sa.Connection, case: dict[str, Any], kind: str, author: str, text: str, after: Any) -> None:
    conn.execute(
        sa.insert(case_note).values(case_id=case["id"], kind=kind, author=author, text=text, at=now())
    )
    audit.append(
        conn,
        actor=author,
        action=f"case.{kind}",
        subject=case["subject"],
        correlation_id=case["correlation_id"],
        after={"case": case["id"], **after},
    )


def notes(source: Source, case_id: int) -> list[dict[str, Any]]:
    """The case's assignments and comments, oldest first."""

    def q(conn: sa.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(case_note).where(case_note.c.case_id == case_id).order_by(case_note.c.id)
        )
        return [dict(r) for r in rows.mappings()]

    return read(source, q)


def assignees(source: Source) -> dict[int, str]:
    """Who each assigned case is assigned to now (the latest assignment wins)."""

    def q(conn: sa.Connection) -> dict[int, str]:
        rows = conn.execute(
            sa.select(case_note.c.case_id, case_note.c.text)
            .where(case_note.c.kind == "assigned")
            .order_by(case_note.c.id)
        )
        return {int(c): str(t) for c, t in rows}

    return read(source, q)


def assign(hub: Hub, case_id: int, *, assignee: str, actor: str) -> None:
    """Give a case to a person (an empty name un-assigns it)."""
    case = _case(hub, case_id)
    name = assignee.strip()
    if len(name) > 120:
        raise UsageError("an assignee's name holds at most 120 characters")
    hub.tx(_note, case, "assigned", actor, name, {"assignee": name})


def comment(hub: Hub, case_id: int, *, text: str, actor: str) -> None:
    """Add a comment to a case."""
    if not text.strip():
        raise UsageError("a comment needs some text")
    if len(text) > 5000:
        raise UsageError("a comment holds at most 5,000 characters")
    case = _case(hub, case_id)
    hub.tx(_note, case, "comment", actor, text.strip(), {"comment": text.strip()})


def resubmit_edited(hub: Hub, case_id: int, payload: dict[str, Any], *, actor: str) -> str | None:
    """Fix and resubmit: replace the case's kept payload with an edited one, then re-run.

    The payload before and after is in the audit trail. The edited payload must
    keep the event's identity (``type`` and ``subject``), so the new run is a
    run of the same case.
    """
    case = _case(hub, case_id)
    if case["status"] not in case_store.OPEN_STATES:
        raise UsageError(
            f"case {case_id} is {case['status']}; only open cases can be resubmitted", code="case.not_open"
        )
    kept = case["payload"]
    if not isinstance(kept, dict):
        raise UsageError(
            f"case {case_id} keeps no payload to edit; resubmit it as it is", code="case.no_replay"
        )
    for key in ("type", "subject"):
        if payload.get(key) != kept.get(key):
            raise UsageError(
                f"the edited payload changes the event's {key} ({kept.get(key)!r} → {payload.get(key)!r}); "
                "only the record may be edited"
            )
    if len(json.dumps(payload, default=str)) > MAX_PAYLOAD_CHARS:
        raise UsageError(f"an edited payload holds at most {MAX_PAYLOAD_CHARS:,} characters")
    if payload != kept:

        def record(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(exception_case).where(exception_case.c.id == case_id).values(payload=payload)
            )
            conn.execute(
                sa.insert(case_note).values(
                    case_id=case_id, kind="payload_edited", author=actor, text="payload edited", at=now()
                )
            )
            audit.append(
                conn,
                actor=actor,
                action="case.payload_edited",
                subject=case["subject"],
                correlation_id=case["correlation_id"],
                before={"case": case_id, "payload": kept},
                after={"case": case_id, "payload": payload},
            )

        hub.tx(record)
    return case_service.resubmit(hub, case_id, actor=actor)


__all__ = ["assign", "assignees", "comment", "notes", "resubmit_edited"]
