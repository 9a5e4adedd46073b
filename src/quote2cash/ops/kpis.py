"""Business KPIs from the samples flows record as they run."""

from __future__ import annotations

import statistics
from typing import Any

import sqlalchemy as sa

from quote2cash.ops._source import Source, read
from quote2cash.store.cases import OPEN_STATES
from quote2cash.store.tables import exception_case, kpi_sample


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 3)


def summary(source: Source) -> dict[str, Any]:
    """Closed-won → project latency, the latest posting run's figures per kind, open cases by owner.

    The keys are always there (``time`` and ``expense`` are None before the
    first posting run); counts are integers, latencies seconds, shares percent.
    """
    return read(source, _summary)


def _number(kpi: str, value: float) -> float | int:
    """A count as an integer; any other figure as it was recorded."""
    if kpi.endswith("_entries") or kpi.startswith("quarantined."):
        return int(value)
    return value


def _summary(conn: sa.Connection) -> dict[str, Any]:
    won = [
        float(v)
        for (v,) in conn.execute(
            sa.select(kpi_sample.c.value).where(kpi_sample.c.kpi == "closed_won_to_project_seconds")
        )
    ]
    out: dict[str, Any] = {
        "closed_won_to_project": {"deals": len(won), "p50_s": _pct(won, 50), "p95_s": _pct(won, 95)},
    }
    for kind in ("time", "expense"):
        latest = conn.execute(
            sa.select(kpi_sample.c.subject)
            .where(kpi_sample.c.kpi == f"{kind}.posted_entries")
            .order_by(kpi_sample.c.at.desc())
            .limit(1)
        ).scalar_one_or_none()
        if latest is None:
            out[kind] = None
            continue
        rows = conn.execute(
            sa.select(kpi_sample.c.kpi, kpi_sample.c.value).where(kpi_sample.c.subject == latest)
        )
        figures = {k.split(".", 1)[1]: float(v) for k, v in rows}
        out[kind] = {"run": latest, **{k: _number(k, v) for k, v in sorted(figures.items())}}
    cases = conn.execute(
        sa.select(exception_case.c.owner, exception_case.c.code, sa.func.count())
        .where(exception_case.c.status.in_(OPEN_STATES))
        .group_by(exception_case.c.owner, exception_case.c.code)
    )
    by_owner: dict[str, dict[str, int]] = {}
    for owner, code, n in cases:
        by_owner.setdefault(owner, {})[code] = int(n)
    out["open_cases_by_owner"] = by_owner
    out["open_cases"] = sum(n for codes in by_owner.values() for n in codes.values())
    # Writes the hub withheld because the target owns the field (SPEC §1), counted field by field.
    refused = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(kpi_sample.c.value), 0)).where(
            kpi_sample.c.kpi == "ownership_refused_fields"
        )
    ).scalar_one()
    out["ownership_refused_fields"] = int(refused)
    return out
