"""Read models for the operations API and the console: flow runs with their
per-system timeline, KPIs over time, and the audit trail searched and exported."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import NotFoundError, UsageError
from quote2cash.ops._source import Source, read
from quote2cash.store.cases import OPEN_STATES
from quote2cash.store.tables import audit_log, exception_case, flow_run, kpi_sample

RUN_STATUSES = ("running", "completed", "exception", "compensated")
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    v = _utc(value)
    return v.isoformat() if v else None


def _steps(raw: Any, started: datetime | None) -> list[dict[str, Any]]:
    """The saga steps oldest first, each with the seconds it took after the one before."""
    steps = sorted(
        ({"step": name, **(v if isinstance(v, dict) else {})} for name, v in dict(raw or {}).items()),
        key=lambda s: str(s.get("at", "")),
    )
    previous = _utc(started)
    for s in steps:
        try:
            at = _utc(datetime.fromisoformat(str(s.get("at"))))
        except ValueError:
            at = None
        s["seconds"] = round((at - previous).total_seconds(), 3) if at and previous else None
        previous = at or previous
    return steps


def _run(row: Any) -> dict[str, Any]:
    started, completed = _utc(row.started_at), _utc(row.completed_at)
    return {
        "flow": row.flow,
        "subject": row.subject,
        "correlation_id": row.correlation_id,
        "status": row.status,
        "attempts": int(row.attempts),
        "trigger_time": _iso(row.trigger_time),
        "started_at": _iso(started),
        "completed_at": _iso(completed),
        "duration_s": round((completed - started).total_seconds(), 3) if started and completed else None,
        "steps": _steps(row.steps, started),
        "last_error": row.last_error,
    }


def list_runs(
    source: Source,
    *,
    flow: str | None = None,
    status: str | None = None,
    subject: str | None = None,
    correlation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Flow runs, newest first, filtered by flow, status, subject (a prefix) or correlation id."""
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"unknown run status {status!r}: use one of {', '.join(RUN_STATUSES)}")

    def q(conn: sa.Connection) -> list[dict[str, Any]]:
        query = sa.select(flow_run).order_by(flow_run.c.started_at.desc(), flow_run.c.subject)
        if flow:
            query = query.where(flow_run.c.flow == flow)
        if status:
            query = query.where(flow_run.c.status == status)
        if subject:
            query = query.where(flow_run.c.subject.startswith(subject, autoescape=True))
        if correlation_id:
            query = query.where(flow_run.c.correlation_id == correlation_id)
        return [_run(r) for r in conn.execute(query)]

    return read(source, q)


def show_run(source: Source, flow: str, subject: str) -> dict[str, Any]:
    """One run with its timeline: the audit entries of its subject, oldest first, by system."""

    def q(conn: sa.Connection) -> dict[str, Any]:
        row = conn.execute(
            sa.select(flow_run).where(flow_run.c.flow == flow, flow_run.c.subject == subject)
        ).first()
        if row is None:
            raise NotFoundError(f"there is no run of {flow} for {subject}", code="run.not_found")
        run = _run(row)
        entries = conn.execute(
            sa.select(audit_log).where(audit_log.c.subject == subject).order_by(audit_log.c.seq)
        ).mappings()
        run["timeline"] = [
            {
                "seq": int(e["seq"]),
                "at": _iso(e["at"]),
                "actor": e["actor"],
                "action": e["action"],
                "systems": list(e["systems"] or []) or ["hub"],
                "after": e["after"],
            }
            for e in entries
        ]
        run["cases"] = [
            {"id": int(c.id), "code": c.code, "status": c.status}
            for c in conn.execute(
                sa.select(exception_case.c.id, exception_case.c.code, exception_case.c.status).where(
                    exception_case.c.flow == flow, exception_case.c.subject == subject
                )
            )
        ]
        return run

    return read(source, q)


# -- KPIs over time --------------------------------------------------------------------------
def kpi_names(source: Source) -> list[str]:
    """The KPIs with samples."""
    return read(
        source, lambda c: sorted(str(k) for (k,) in c.execute(sa.select(kpi_sample.c.kpi).distinct()))
    )


def _bucket_start(at: datetime, size: timedelta) -> datetime:
    at = _utc(at) or at
    if size >= timedelta(days=1):
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def _quantile(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def series(
    source: Source,
    kpi: str,
    *,
    bucket: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """One KPI over time: per bucket (``hour`` or ``day``) its count, mean, p50, p95 and last value."""
    if bucket not in BUCKETS:
        raise UsageError(f"unknown bucket {bucket!r}: use hour or day")

    def q(conn: sa.Connection) -> list[tuple[datetime, float]]:
        query = sa.select(kpi_sample.c.at, kpi_sample.c.value).where(kpi_sample.c.kpi == kpi)
        if since:
            query = query.where(kpi_sample.c.at >= since)
        if until:
            query = query.where(kpi_sample.c.at < until)
        return [(a, float(v)) for a, v in conn.execute(query.order_by(kpi_sample.c.at))]

    grouped: dict[datetime, list[float]] = defaultdict(list)
    for at, value in read(source, q):
        grouped[_bucket_start(at, BUCKETS[bucket])].append(value)
    return [
        {
            "at": start.isoformat(),
            "count": len(vs),
            "mean": round(statistics.fmean(vs), 3),
            "p50": round(_quantile(vs, 50), 3),
            "p95": round(_quantile(vs, 95), 3),
            "last": round(vs[-1], 3),
        }
        for start, vs in sorted(grouped.items())
    ]


AGE_BANDS = (("< 1 h", 1.0), ("1–24 h", 24.0), ("1–7 d", 168.0), ("> 7 d", float("inf")))


def exceptions_by_owner_and_age(source: Source) -> dict[str, dict[str, int]]:
    """Open cases counted by owning team and age band."""

    def q(conn: sa.Connection) -> list[tuple[str, datetime]]:
        rows = conn.execute(
            sa.select(exception_case.c.owner, exception_case.c.created_at).where(
                exception_case.c.status.in_(OPEN_STATES)
            )
        )
        return [(str(o), c) for o, c in rows]

    now = datetime.now(UTC)
    out: dict[str, dict[str, int]] = {}
    for owner, created in read(source, q):
        hours = (now - (_utc(created) or now)).total_seconds() / 3600
        band = next(name for name, upper in AGE_BANDS if hours < upper)
        out.setdefault(owner, dict.fromkeys((b for b, _ in AGE_BANDS), 0))[band] += 1
    return out


def sync_rates(source: Source, *, bucket: str = "day") -> list[dict[str, Any]]:
    """Per bucket: runs settled, the share that completed (sync success rate, %), and the share of
    customers synced that stopped as a probable duplicate (duplicate-customer rate, %)."""
    size = BUCKETS.get(bucket)
    if size is None:
        raise UsageError(f"unknown bucket {bucket!r}: use hour or day")

    def q(conn: sa.Connection) -> tuple[list[Any], list[Any], list[Any]]:
        runs = list(conn.execute(sa.select(flow_run.c.status, flow_run.c.started_at)))
        synced = list(
            conn.execute(
                sa.select(audit_log.c.at).where(
                    audit_log.c.action.in_(("customer.created", "customer.matched", "customer.updated"))
                )
            )
        )
        dups = list(
            conn.execute(
                sa.select(exception_case.c.created_at).where(
                    exception_case.c.code.in_(("customer.probable_duplicate", "customer.other_entity_match"))
                )
            )
        )
        return runs, synced, dups

    runs, synced, dups = read(source, q)
    by: dict[datetime, dict[str, int]] = defaultdict(lambda: {"settled": 0, "ok": 0, "synced": 0, "dups": 0})
    for status, started in runs:
        if status == "running":
            continue
        b = by[_bucket_start(started, size)]
        b["settled"] += 1
        b["ok"] += status == "completed"
    for (at,) in synced:
        by[_bucket_start(at, size)]["synced"] += 1
    for (at,) in dups:
        by[_bucket_start(at, size)]["dups"] += 1
    return [
        {
            "at": start.isoformat(),
            "runs": v["settled"],
            "sync_success_pct": round(100.0 * v["ok"] / v["settled"], 2) if v["settled"] else None,
            "duplicate_customer_pct": round(100.0 * v["dups"] / (v["synced"] + v["dups"]), 2)
            if v["synced"] + v["dups"]
            else None,
        }
        for start, v in sorted(by.items())
    ]


# -- the audit trail -------------------------------------------------------------------------
def _audit_query(
    subject: str | None,
    actor: str | None,
    action: str | None,
    correlation_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> sa.Select[Any]:
    query = sa.select(audit_log)
    if subject:
        query = query.where(audit_log.c.subject.startswith(subject, autoescape=True))
    if actor:
        query = query.where(audit_log.c.actor.contains(actor, autoescape=True))
    if action:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if correlation_id:
        query = query.where(audit_log.c.correlation_id == correlation_id)
    if since:
        query = query.where(audit_log.c.at >= since)
    if until:
        query = query.where(audit_log.c.at < until)
    return query


def _entry(row: Any) -> dict[str, Any]:
    return {
        "seq": int(row["seq"]),
        "at": _iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "correlation_id": row["correlation_id"],
        "systems": list(row["systems"] or []),
        "before": row["before"],
        "after": row["after"],
        "hash": row["hash"],
    }


def search_audit(
    source: Source,
    *,
    subject: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of audit entries, newest first, and how many match in all."""

    def q(conn: sa.Connection) -> tuple[list[dict[str, Any]], int]:
        query = _audit_query(subject, actor, action, correlation_id, since, until)
        total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(audit_log.c.seq.desc()).limit(limit).offset(offset)).mappings()
        return [_entry(r) for r in rows], int(total)

    return read(source, q)


EXPORT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "subject",
    "correlation_id",
    "systems",
    "before",
    "after",
    "hash",
)


def export_audit(source: Source, fmt: str = "jsonl", **filters: Any) -> Iterator[str]:
    """Every matching audit entry, oldest first, as JSON lines or CSV (for an auditor)."""
    if fmt not in ("jsonl", "csv"):
        raise UsageError(f"unknown export format {fmt!r}: use jsonl or csv")
    rows = read(
        source,
        lambda c: [
            _entry(r)
            for r in c.execute(
                _audit_query(
                    filters.get("subject"), filters.get("actor"), filters.get("action"),
                    filters.get("correlation_id"), filters.get("since"), filters.get("until"),
                ).order_by(audit_log.c.seq)
            ).mappings()
        ],
    )  # fmt: skip
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, default=str, sort_keys=True) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                json.dumps(row[c], default=str) if isinstance(row[c], dict | list) else row[c]
                for c in EXPORT_COLUMNS
            ]
        )
    yield buf.getvalue()
