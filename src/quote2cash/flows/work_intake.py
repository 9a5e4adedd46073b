"""Pull time entries and expenses changed in the PSA since a durable cursor,
into the ``work_entry`` ledger.

Pages are committed together with the cursor, so a crash resumes from the
last committed page, and re-reading a page is harmless (rows are keyed by
source id and version). A change to an entry that was already posted marks
it for reversal; it is never overwritten in the ERP.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import VendorPayloadError
from quote2cash.flows.work_assign import Classifier
from quote2cash.ops import exceptions
from quote2cash.runtime.hub import Hub
from quote2cash.store import repo
from quote2cash.store.tables import work_entry

RESOURCES = {"time": "time_entries", "expense": "expenses"}
PAGE = 200
PAGES_PER_COMMIT = 10
EPOCH = "1970-01-01T00:00:00.000000Z"
#: Statuses whose figures are (or are being) posted to the ERP. Posting runs never overlap, so
#: an entry assigned in an earlier run is in a posting that run sent (or failed and quarantined).
IN_ERP = ("assigned",)


def cursor_name(kind: str) -> str:
    """The durable cursor of a kind's change feed."""
    return f"kantata.{RESOURCES[kind]}.changes"


def parse_time(value: str) -> datetime:
    """Kantata's ``2025-01-23T10:00:00.123456Z`` as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def to_row(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A PSA record as a ``work_entry`` row; raises VendorPayloadError naming the field."""
    try:
        version = str(raw["updated_at"])
        row: dict[str, Any] = {
            "kind": kind,
            "source_id": str(raw["id"]),
            "version": version,
            "approved": bool(raw.get("approved")),
            "deleted": bool(raw.get("deleted_at")),
            "workspace_id": str(raw["workspace_id"]),
            "user_id": None if raw.get("user_id") is None else str(raw["user_id"]),
            "currency": str(raw.get("currency") or ""),
            "billable": bool(raw.get("billable")),
            "seen_at": parse_time(version),
        }
        if kind == "time":
            row.update(
                task_id=None if raw.get("story_id") is None else str(raw["story_id"]),
                work_date=date.fromisoformat(str(raw["date_performed"])),
                minutes=int(raw["time_in_minutes"]),
                rate_minor=int(raw.get("rate_in_cents") or 0),
                reimbursable=False,
                category=None,
            )
            row["amount_minor"] = round(row["minutes"] * row["rate_minor"] / 60)
        else:
            row.update(
                task_id=None,
                work_date=date.fromisoformat(str(raw["date"])),
                minutes=0,
                rate_minor=0,
                amount_minor=int(raw["amount_in_cents"]),
                reimbursable=bool(raw.get("reimbursable")),
                category=raw.get("category") or None,
            )
    except (KeyError, TypeError, ValueError) as exc:
        field = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise VendorPayloadError(
            f"kantata sent a {RESOURCES[kind]} record that cannot be read ({field!s}): "
            f"{ {k: raw.get(k) for k in list(raw)[:8]} }",
            system="kantata",
            record=str(raw.get("id")),
            details={"field": str(field)},
        ) from exc
    return row


def _apply(conn: sa.Connection, classifier: Classifier, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Merge one batch of changes into the ledger, classifying new entries; returns counts by outcome."""
    kind = classifier.kind
    counts = {"new": 0, "changed": 0, "reverse": 0, "withdrawn": 0, "same": 0, "ignored": 0}
    ids = [r["source_id"] for r in rows]
    known: dict[str, dict[str, Any]] = {}
    for chunk in range(0, len(ids), 900):
        for r in conn.execute(
            sa.select(work_entry.c.source_id, work_entry.c.version, work_entry.c.status).where(
                work_entry.c.kind == kind, work_entry.c.source_id.in_(ids[chunk : chunk + 900])
            )
        ).mappings():
            known[r["source_id"]] = dict(r)
    inserts: list[dict[str, Any]] = []
    for row in rows:
        live = row["approved"] and not row["deleted"]
        old = known.get(row["source_id"])
        if old is None:
            if live:
                decision, violation = classifier.classify(row)
                inserts.append({**row, **decision})
                if violation is not None:
                    classifier.open_case(conn, row, violation)
                counts["new"] += 1
            else:
                counts["ignored"] += 1  # drafts and deletions the hub never posted
            continue
        if old["version"] == row["version"]:
            counts["same"] += 1
            continue
        values: dict[str, Any] = {k: v for k, v in row.items() if k not in ("kind", "source_id")}
        if old["status"] in IN_ERP:
            # What was posted is kept for the reversal (the right-hand sides read the old row).
            values.update(
                status="reverse",
                posted_version=work_entry.c.version,
                posted_minutes=work_entry.c.minutes,
                posted_amount_minor=work_entry.c.amount_minor,
            )
        else:
            values.update(status="staged" if live else "withdrawn", posting_key=None)
        counts["reverse" if old["status"] in IN_ERP else "changed" if live else "withdrawn"] += 1
        conn.execute(
            sa.update(work_entry)
            .where(work_entry.c.kind == kind, work_entry.c.source_id == row["source_id"])
            .values(**values, reason_code=None)
        )
    if inserts:
        conn.execute(sa.insert(work_entry), inserts)
    return counts


def pull_changes(hub: Hub, classifier: Classifier) -> dict[str, int]:
    """Read every change since the cursor into the ledger; returns counts by outcome."""
    kind = classifier.kind
    name = cursor_name(kind)
    since = hub.read(repo.get_cursor, name) or EPOCH
    totals: dict[str, int] = {"pages": 0}
    pending: list[dict[str, Any]] = []
    poison: list[tuple[VendorPayloadError, dict[str, Any]]] = []
    last = since

    def commit() -> None:
        nonlocal pending, poison

        def write(conn: sa.Connection) -> dict[str, int]:
            counts = _apply(conn, classifier, pending)
            # A record that cannot be read is dead-lettered with its payload, not allowed to block the feed.
            for exc, record in poison:
                exceptions.open_case(
                    conn,
                    exc,
                    flow="post_approved_work",
                    subject=f"{kind}/{record.get('id')}",
                    correlation_id=None,
                    payload=record,
                )
            counts["dead_lettered"] = len(poison)
            repo.set_cursor(conn, name, last)
            return counts

        with hub.engine.begin() as conn:
            for key, n in write(conn).items():
                totals[key] = totals.get(key, 0) + n
        pending, poison = [], []

    while True:
        envelope = hub.psa.fetch_page(
            RESOURCES[kind],
            page=1,
            per_page=PAGE,
            updated_after=last,
            order="updated_at:asc",
            include_deleted="true",
        )
        records = hub.psa.resolve(envelope)
        totals["pages"] += 1
        if not records:
            break
        for record in records:
            try:
                pending.append(to_row(kind, record))
            except VendorPayloadError as exc:
                if not record.get("updated_at"):
                    raise  # without its change stamp the cursor cannot move past it safely
                poison.append((exc, record))
        last = str(records[-1]["updated_at"])
        if totals["pages"] % PAGES_PER_COMMIT == 0:
            commit()
        if len(records) < PAGE:
            break
    if pending or poison or last != since:
        commit()
    return totals
