"""The run's business KPIs: approval → posted latency (p50, p95) and the share
of entries posted within the SLA, plus quarantined entries by reason, kept as
``kpi_sample`` rows labelled with the kind of work."""

from __future__ import annotations

import bisect
from typing import Any

import sqlalchemy as sa

from quote2cash.flows.posting.work_type import WorkType
from quote2cash.store import repo
from quote2cash.store.tables import kpi_sample, posting, work_entry


def latency_seconds(conn: sa.Connection) -> sa.ColumnElement[float]:
    """Seconds from the hub first seeing an entry approved to its posting being posted, in SQL."""
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", posting.c.posted_at - work_entry.c.seen_at), sa.Float)
    return sa.cast(
        (sa.func.julianday(posting.c.posted_at) - sa.func.julianday(work_entry.c.seen_at)) * 86400.0,
        sa.Float,
    )


def record_kpis(
    conn: sa.Connection, work: WorkType, run_id: str, sla_hours: float, quarantined: dict[str, int]
) -> dict[str, Any]:
    """Approval → posted latency and % within SLA for the entries this run posted."""
    kind = work.kind
    query = (
        sa.select(latency_seconds(conn))
        .select_from(work_entry.join(posting, posting.c.key == work_entry.c.posting_key))
        .where(
            posting.c.run_id == run_id,
            posting.c.status == "posted",
            work_entry.c.kind == kind,
            work_entry.c.status == "assigned",
        )
    )
    latencies = [v for v in conn.execute(query).scalars().all() if v is not None]
    latencies.sort()
    figures: dict[str, Any] = {"posted_entries": len(latencies)}
    if latencies:
        n = len(latencies)
        sla = sla_hours * 3600
        figures.update(
            approval_to_posted_p50_s=round(latencies[min(n - 1, int(0.50 * n))], 3),
            approval_to_posted_p95_s=round(latencies[min(n - 1, int(0.95 * n))], 3),
            posted_within_sla_pct=round(100.0 * bisect.bisect_right(latencies, sla) / n, 2),
        )
    samples = {f"{kind}.{k}": float(v) for k, v in figures.items()}
    samples.update({f"{kind}.quarantined.{code}": float(n) for code, n in quarantined.items()})
    now = repo.now()
    for name, value in samples.items():
        repo.upsert(
            conn,
            kpi_sample,
            {"kpi": name, "subject": run_id, "value": value, "labels": {"kind": kind}, "at": now},
            ["kpi", "subject"],
        )
    return figures
