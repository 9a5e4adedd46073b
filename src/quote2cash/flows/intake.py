"""Intake of source events: poll the CRM for closed-won deals, and the billing
system for invoice changes (the fallback for webhooks that never arrived), each
since a durable cursor; accept each event once into the inbox (de-duplicated by
source event id, payload kept), then dispatch accepted events to their flows.

Accepting and dispatching are separate so that nothing is lost: an event is
committed to the inbox (with the cursor) before any flow starts, and the
dispatcher starts flows for every accepted event not yet dispatched. Starting
a flow twice is harmless: its workflow id is derived from the event's subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa

from quote2cash.model import BusinessEvent
from quote2cash.ports import Billing, SourceEvent
from quote2cash.runtime import flow
from quote2cash.runtime.hub import Hub
from quote2cash.store import cases, repo
from quote2cash.store.tables import inbox

CURSOR = "crm.opportunity.closed_won"
BILLING_CURSOR = "billing.invoice_changes"
#: The flow named on the case of a billing event that cannot be read.
BILLING_INTAKE = "billing_intake"


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    seen: int
    accepted: int
    duplicates: int
    dispatched: int


def _accept(conn: sa.Connection, source_event_id: str, event: BusinessEvent) -> bool:
    return repo.inbox_accept(
        conn,
        {
            "source": event.source,
            "source_event_id": source_event_id,
            "event_id": event.id,
            "event_type": event.type,
            "subject": event.subject,
            "correlation_id": event.correlation_id,
            "event_time": event.time,
            "payload": event.model_dump(mode="json"),
        },
    )


def cursor_name(hub: Hub) -> str:
    """The durable cursor of the CRM's closed-won feed."""
    return f"{hub.config.system_for('crm')}.{CURSOR}"


def deliver(hub: Hub, source_event_id: str, event: BusinessEvent) -> bool:
    """Accept one event (from a poll or a webhook); False if it was a duplicate."""
    return hub.tx(_accept, source_event_id, event)


def poll_closed_won(hub: Hub, *, dispatch_now: bool = True) -> PollResult:
    """Fetch deals that became closed-won with approved terms since the cursor."""
    crm = hub.crm()
    cursor = cursor_name(hub)
    page = crm.won_deals(hub.read(repo.get_cursor, cursor))

    def accept_all(conn: sa.Connection, events: list[SourceEvent]) -> int:
        n = sum(_accept(conn, e.source_event_id, e.event) for e in events)
        if page.cursor is not None:
            repo.set_cursor(conn, cursor, page.cursor)
        return n

    accepted = hub.tx(accept_all, page.events) if page.events else 0
    dispatched = dispatch(hub) if dispatch_now else 0
    return PollResult(len(page.events), accepted, len(page.events) - accepted, dispatched)


def poll_billing(hub: Hub, *, dispatch_now: bool = True) -> PollResult:
    """Read the billing system's invoice changes since the cursor into the inbox.

    Webhooks deliver these changes within seconds; the poll finds the ones a
    webhook never brought (the hub down longer than the sender retries, an
    endpoint misconfigured). A change seen both ways has one source event id,
    so it is accepted once. An event that cannot be read becomes a case naming
    it, in the same transaction that moves the cursor past it: nothing is
    skipped unseen, and the poll does not stall on it.
    """
    system = hub.config.system_for("billing")
    port = cast(Billing, hub.system("billing"))
    cursor = f"{system}.{BILLING_CURSOR}"
    page = port.changes_since(hub.read(repo.get_cursor, cursor))

    def accept_all(conn: sa.Connection) -> int:
        n = sum(_accept(conn, e.source_event_id, e.event) for e in page.events)
        for error in page.unreadable:
            subject = f"event/{error.details.get('event') or error.record}"
            cases.open_case(conn, error, flow=BILLING_INTAKE, subject=subject, correlation_id=None)
        if page.cursor is not None:
            repo.set_cursor(conn, cursor, page.cursor)
        return n

    accepted = hub.tx(accept_all)
    dispatched = dispatch(hub) if dispatch_now else 0
    return PollResult(len(page.events), accepted, len(page.events) - accepted, dispatched)


def dispatch(hub: Hub) -> int:
    """Start the flows of every accepted event not yet dispatched; returns how many events."""
    rows = hub.read(
        lambda c: list(
            c.execute(
                sa.select(inbox.c.source, inbox.c.source_event_id, inbox.c.payload)
                .where(inbox.c.dispatched_at.is_(None))
                .order_by(inbox.c.event_time)
            )
        )
    )
    flow.dispatch_all([payload for _, _, payload in rows])
    done = [(source, source_event_id) for source, source_event_id, _ in rows]
    if done:

        def mark(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(inbox)
                .where(inbox.c.source == sa.bindparam("s"), inbox.c.source_event_id == sa.bindparam("e"))
                .values(dispatched_at=repo.now()),
                [{"s": s, "e": e} for s, e in done],
            )

        hub.tx(mark)
    return len(rows)
