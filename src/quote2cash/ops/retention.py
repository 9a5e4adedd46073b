"""Retention: source payloads older than the configured age are pruned (SPEC §4).

What is pruned, and what stays:

- an inbox event's payload, once the event was dispatched and was received
  more than ``retention.payload_days`` ago, is replaced by a tombstone
  (``{"pruned_at": ...}``); the row stays, with its ids, subject, type, time
  and duplicate count, so de-duplication and the KPIs are unchanged. Such an
  event can no longer be replayed;
- a resolved or ignored case's payload, once the case was last touched more
  than that long ago, is removed; open cases keep theirs until they are closed;
- the audit trail is never pruned: it is append-only, and what it holds was
  minimised when it was written.

``q2c retention prune`` runs it now; ``q2c run`` runs it once a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import exception_case, inbox

#: Cases in these states keep no payload past the retention age.
CLOSED_STATES = ("resolved", "ignored")


@dataclass(frozen=True)
class PruneReport:
    """What one prune removed.

    Attributes:
        cutoff: payloads older than this were pruned (None: retention is off).
        inbox_payloads: inbox events whose payload was replaced by a tombstone.
        case_payloads: closed cases whose payload was removed.
    """

    cutoff: datetime | None
    inbox_payloads: int = 0
    case_payloads: int = 0


def _prune(conn: sa.Connection, cutoff: datetime) -> PruneReport:
    tombstone = {"pruned_at": datetime.now(UTC).isoformat(timespec="seconds")}
    events = conn.execute(
        sa.update(inbox)
        .where(
            inbox.c.received_at < cutoff,
            inbox.c.dispatched_at.is_not(None),
            inbox.c.payload["pruned_at"].as_string().is_(None),
        )
        .values(payload=tombstone)
    )
    cases = conn.execute(
        sa.update(exception_case)
        .where(
            exception_case.c.updated_at < cutoff,
            exception_case.c.status.in_(CLOSED_STATES),
            exception_case.c.payload.is_not(None),
        )
        .values(payload=sa.null())
    )
    return PruneReport(cutoff, int(events.rowcount), int(cases.rowcount))


def prune(source: Hub | sa.Engine, *, days: int | None = None, now: datetime | None = None) -> PruneReport:
    """Prune payloads older than ``days`` (default: the hub's ``retention.payload_days``), in one transaction.

    With no age configured (``payload_days: null``) and none given, nothing is pruned.
    """
    if days is None and isinstance(source, Hub):
        days = source.config.retention.payload_days
    if days is None:
        return PruneReport(None)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    engine = source.engine if isinstance(source, Hub) else source
    with engine.begin() as conn:
        return _prune(conn, cutoff)


__all__ = ["CLOSED_STATES", "PruneReport", "prune"]
