"""Intake of source events: poll the CRM for closed-won deals since a durable
cursor, accept each event once into the inbox (de-duplicated by source event
id, payload kept), then dispatch accepted events to their flow.

Accepting and dispatching are separate so that nothing is lost: an event is
committed to the inbox (with the cursor) before any flow starts, and the
dispatcher starts flows for every accepted event not yet dispatched. Starting
a flow twice is harmless: its workflow id is derived from the deal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import VendorPayloadError
from quote2cash.flows import lead_to_project
from quote2cash.model import BusinessEvent
from quote2cash.runtime.hub import Hub
from quote2cash.store import repo
from quote2cash.store.tables import inbox

CURSOR = "salesforce.opportunity.closed_won"
EPOCH = "1970-01-01T00:00:00.000Z"
CLOSED_WON = "opportunity.closed_won"


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    seen: int
    accepted: int
    duplicates: int
    dispatched: int


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce's ``2025-01-01T00:00:00.000+0000`` as an aware datetime."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError) as exc:
        raise VendorPayloadError(
            f"salesforce sent SystemModstamp {value!r}, which is not a Salesforce datetime",
            system="salesforce",
        ) from exc


def soql_literal(value: datetime) -> str:
    """A SOQL datetime literal with milliseconds, UTC."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def closed_won_event(record: dict[str, Any]) -> tuple[str, BusinessEvent]:
    """The source event id and envelope for a closed-won opportunity record."""
    for key in ("Id", "SystemModstamp"):
        if not record.get(key):
            raise VendorPayloadError(f"salesforce opportunity record is missing '{key}'", system="salesforce")
    opp_id = str(record["Id"])
    event = BusinessEvent(
        type=CLOSED_WON,
        source="salesforce",
        subject=f"Opportunity/{opp_id}",
        time=parse_sf_datetime(str(record["SystemModstamp"])),
        payload={k: v for k, v in record.items() if k != "attributes"},
    )
    # One closed-won per deal: a later edit of a won deal is not a second win.
    return f"Opportunity/{opp_id}:closed_won", event


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


def deliver(hub: Hub, source_event_id: str, event: BusinessEvent) -> bool:
    """Accept one event (from a poll or a webhook); False if it was a duplicate."""
    return hub.tx(_accept, source_event_id, event)


def poll_closed_won(hub: Hub, *, dispatch_now: bool = True) -> PollResult:
    """Fetch deals that became closed-won with approved terms since the cursor."""
    since = hub.read(repo.get_cursor, CURSOR) or EPOCH
    soql = (
        "SELECT Id, AccountId, Name, StageName, IsWon, Terms_Approved__c, SystemModstamp FROM Opportunity "
        f"WHERE IsWon = true AND Terms_Approved__c = true AND SystemModstamp > {since} "
        "ORDER BY SystemModstamp ASC"
    )
    records = list(hub.crm.query(soql))
    accepted = 0

    def accept_all(conn: sa.Connection) -> int:
        n = 0
        last = None
        for record in records:
            source_event_id, event = closed_won_event(record)
            n += _accept(conn, source_event_id, event)
            last = event.time
        if last is not None:
            repo.set_cursor(conn, CURSOR, soql_literal(last))
        return n

    if records:
        accepted = hub.tx(accept_all)
    dispatched = dispatch(hub) if dispatch_now else 0
    return PollResult(len(records), accepted, len(records) - accepted, dispatched)


def dispatch(hub: Hub) -> int:
    """Start the flow of every accepted event not yet dispatched."""
    rows = hub.read(
        lambda c: list(
            c.execute(
                sa.select(inbox.c.source, inbox.c.source_event_id, inbox.c.payload)
                .where(inbox.c.dispatched_at.is_(None), inbox.c.event_type == CLOSED_WON)
                .order_by(inbox.c.event_time)
            )
        )
    )
    for source, source_event_id, payload in rows:
        lead_to_project.start(payload)

        def mark(conn: sa.Connection, s: str = source, e: str = source_event_id) -> None:
            conn.execute(
                sa.update(inbox)
                .where(inbox.c.source == s, inbox.c.source_event_id == e)
                .values(dispatched_at=repo.now())
            )

        hub.tx(mark)
    return len(rows)
