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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa

from quote2cash.errors import HubError
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
    cursor = cursor_name(hub)
    since = hub.read(repo.get_cursor, cursor)
    page = hub.crm().won_deals(since)
    return _take(hub, (cursor, since, page.cursor), page.events, dispatch_now=dispatch_now)


def poll_billing(hub: Hub, *, dispatch_now: bool = True) -> PollResult:
    """Read the billing system's invoice changes since the cursor into the inbox.

    Webhooks deliver these changes within seconds; the poll finds the ones a
    webhook never brought (the hub down longer than the sender retries, an
    endpoint misconfigured). A change seen both ways has one source event id,
    so it is accepted once. An event that cannot be read becomes a case naming
    it, in the same transaction that moves the cursor past it: nothing is
    skipped unseen, and the poll does not stall on it.
    """
    cursor = f"{hub.config.system_for('billing')}.{BILLING_CURSOR}"
    since = hub.read(repo.get_cursor, cursor)
    page = cast(Billing, hub.system("billing")).changes_since(since)
    return _take(hub, (cursor, since, page.cursor), page.events, page.unreadable, dispatch_now=dispatch_now)


def _take(
    hub: Hub,
    cursor: tuple[str, str | None, str | None],
    events: list[SourceEvent],
    unreadable: Sequence[HubError] = (),
    *,
    dispatch_now: bool,
) -> PollResult:
    """Accept a poll's events (and open a case for each it could not read) in the transaction
    that moves its cursor (name, read from, read to), then dispatch them."""
    name, since, next_cursor = cursor

    def accept_all(conn: sa.Connection) -> int:
        n = sum(_accept(conn, e.source_event_id, e.event) for e in events)
        for error in unreadable:
            subject = f"event/{error.details.get('event') or error.record}"
            cases.open_case(conn, error, flow=BILLING_INTAKE, subject=subject, correlation_id=None)
        if next_cursor is not None:
            repo.set_cursor(conn, name, next_cursor)
        return n

    moved = next_cursor is not None and next_cursor != since
    accepted = hub.tx(accept_all) if events or unreadable or moved else 0
    dispatched = dispatch(hub) if dispatch_now else 0
    return PollResult(len(events), accepted, len(events) - accepted, dispatched)


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
