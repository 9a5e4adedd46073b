"""The outbox relay: business events the hub's own flows emitted, handed to the flow router once each.

A flow writes its events (``project.activated`` …) to the ``outbox`` in the
transaction that completes it (:func:`quote2cash.runtime.flow.emit`). The relay
reads the events not yet relayed, oldest first, dispatches each to the flows
it triggers, and records it as relayed. A crash between the two re-dispatches
the event, which is harmless: a flow's workflow id comes from the event's
subject, so the same run is not started twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from quote2cash.runtime import flow
from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import outbox, outbox_relay


def relay(hub: Hub, *, limit: int = 500) -> int:
    """Dispatch outbox events not yet relayed (those some flow listens to); returns how many."""
    rows = hub.read(
        lambda c: list(
            c.execute(
                sa.select(outbox.c.event_id, outbox.c.event_type, outbox.c.envelope)
                .where(~outbox.c.event_id.in_(sa.select(outbox_relay.c.event_id)))
                .order_by(outbox.c.created_at, outbox.c.event_id)
                .limit(limit)
            )
        )
    )
    if not rows:
        return 0
    for _, event_type, envelope in rows:
        if flow.flows_for(str(event_type)):
            flow.dispatch(envelope)
    now = datetime.now(UTC)

    def mark(conn: sa.Connection) -> None:
        conn.execute(sa.insert(outbox_relay), [{"event_id": r.event_id, "relayed_at": now} for r in rows])

    hub.tx(mark)
    return len(rows)


__all__ = ["relay"]
