"""Prometheus ``/metrics`` and ``/healthz``.

Technical metrics: API requests and their latency by route, webhook
deliveries by source and outcome, vendor calls and retries by system, queue
depth (inbox events not yet dispatched, flows enqueued), step latency per
system (from the saga steps of recent runs). Business metrics: the KPIs of
SPEC §5 as the hub records them (closed-won → project latency, % of approved
time posted within SLA, open cases by owner and code, sync success and
duplicate-customer rates, and any other KPI sample as
``q2c_kpi_last{kpi=...}``). Everything is read at scrape time, from the one
hub the app serves; no global registry.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quote2cash.ops import kpis
from quote2cash.ops.runs import exceptions_by_owner_and_age, sync_rates
from quote2cash.runtime.hub import Hub
from quote2cash.store.tables import flow_run, inbox, kpi_sample


class HubMetrics:
    """The app's registry: request counters it updates, and a collector of the hub's state."""

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "q2c_api_requests", "API requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "q2c_api_request_seconds", "API request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.webhooks = Counter(
            "q2c_webhook_events", "webhook events received", ["source", "outcome"], registry=self.registry
        )
        self.registry.register(_HubCollector(hub))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def webhook(self, source: str, accepted: int, duplicates: int) -> None:
        """Count one delivery's events."""
        self.webhooks.labels(source, "accepted").inc(accepted)
        self.webhooks.labels(source, "duplicate").inc(duplicates)


class _HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        calls = GaugeMetricFamily("q2c_vendor_calls", "requests sent to each system", labels=["system"])
        retries = GaugeMetricFamily("q2c_vendor_retries", "requests retried, per system", labels=["system"])
        for name, system in hub.systems.items():
            calls.add_metric([name], system.calls)
            retries.add_metric([name], system.retries)
        yield calls
        yield retries
        pending, runs = hub.read(_state)
        yield GaugeMetricFamily(
            "q2c_inbox_undispatched", "events accepted, flows not yet started", value=pending
        )
        depth = GaugeMetricFamily("q2c_flow_runs", "flow runs by flow and status", labels=["flow", "status"])
        for (flow, status), n in sorted(runs["counts"].items()):
            depth.add_metric([flow, status], n)
        yield depth
        step = GaugeMetricFamily(
            "q2c_step_latency_seconds",
            "saga step latency over the last 1,000 runs",
            labels=["system", "quantile"],
        )
        for system, values in sorted(runs["steps"].items()):
            values.sort()
            for q in (0.5, 0.95):
                step.add_metric([system, str(q)], values[min(len(values) - 1, int(q * len(values)))])
        yield step
        figures = kpis.summary(hub)
        won = figures["closed_won_to_project"]
        lat = GaugeMetricFamily(
            "q2c_closed_won_to_project_seconds", "closed-won → project-created latency", labels=["quantile"]
        )
        for quantile, key in (("0.5", "p50_s"), ("0.95", "p95_s")):
            if won[key] is not None:
                lat.add_metric([quantile], won[key])
        yield lat
        yield GaugeMetricFamily(
            "q2c_deals_turned_into_projects", "deals turned into projects", value=won["deals"]
        )
        sla = GaugeMetricFamily(
            "q2c_posted_within_sla_percent", "approved work posted within SLA, last run", labels=["kind"]
        )
        for kind in ("time", "expense"):
            run = figures.get(kind) or {}
            if run.get("posted_within_sla_pct") is not None:
                sla.add_metric([kind], run["posted_within_sla_pct"])
        yield sla
        open_cases = GaugeMetricFamily("q2c_open_cases", "open exception cases", labels=["owner", "code"])
        for owner, codes in sorted(figures["open_cases_by_owner"].items()):
            for code, n in sorted(codes.items()):
                open_cases.add_metric([owner, code], n)
        yield open_cases
        aged = GaugeMetricFamily(
            "q2c_open_cases_by_age", "open cases by owner and age", labels=["owner", "age"]
        )
        for owner, bands in sorted(exceptions_by_owner_and_age(hub).items()):
            for band, n in bands.items():
                aged.add_metric([owner, band], n)
        yield aged
        points = sync_rates(hub, bucket="day")
        today = points[-1] if points else {}
        if today.get("sync_success_pct") is not None:
            yield GaugeMetricFamily(
                "q2c_sync_success_percent", "runs completed, today", value=today["sync_success_pct"]
            )
        if today.get("duplicate_customer_pct") is not None:
            yield GaugeMetricFamily(
                "q2c_duplicate_customer_percent", "customers stopped as a probable duplicate, today",
                value=today["duplicate_customer_pct"],
            )  # fmt: skip
        last = GaugeMetricFamily("q2c_kpi_last", "the latest sample of each KPI", labels=["kpi"])
        for name, value in runs["last"].items():
            last.add_metric([name], value)
        yield last


def _state(conn: sa.Connection) -> tuple[int, dict[str, Any]]:
    pending = conn.execute(sa.select(sa.func.count()).where(inbox.c.dispatched_at.is_(None))).scalar_one()
    counts = {
        (str(f), str(s)): int(n)
        for f, s, n in conn.execute(
            sa.select(flow_run.c.flow, flow_run.c.status, sa.func.count()).group_by(
                flow_run.c.flow, flow_run.c.status
            )
        )
    }
    steps: dict[str, list[float]] = defaultdict(list)
    recent = conn.execute(
        sa.select(flow_run.c.started_at, flow_run.c.steps).order_by(flow_run.c.started_at.desc()).limit(1000)
    )
    for started, raw in recent:
        previous = started if started.tzinfo else started.replace(tzinfo=UTC)
        for step in sorted(
            (v for v in dict(raw or {}).values() if isinstance(v, dict)), key=lambda v: str(v.get("at"))
        ):
            try:
                at = datetime.fromisoformat(str(step.get("at")))
            except ValueError:
                continue
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            steps[str(step.get("system"))].append(max(0.0, (at - previous).total_seconds()))
            previous = at
    latest = (
        sa.select(kpi_sample.c.kpi, sa.func.max(kpi_sample.c.id).label("id"))
        .group_by(kpi_sample.c.kpi)
        .subquery()
    )
    last = {
        str(k): float(v)
        for k, v in conn.execute(
            sa.select(kpi_sample.c.kpi, kpi_sample.c.value).join(latest, latest.c.id == kpi_sample.c.id)
        )
    }
    return int(pending), {"counts": counts, "steps": dict(steps), "last": last}


# -- health ---------------------------------------------------------------------------------
class Health:
    """Each connected system's state, probed at most every ``ttl`` seconds."""

    def __init__(self, hub: Hub, ttl: float = 10.0) -> None:
        self.hub = hub
        self.ttl = ttl
        self._cache: tuple[float, dict[str, Any]] | None = None

    def report(self) -> dict[str, Any]:
        """``{"status", "database", "systems": {name: {kind, state, ...}}}``."""
        if self._cache is not None and time.monotonic() - self._cache[0] < self.ttl:
            return self._cache[1]
        try:
            self.hub.read(lambda c: c.execute(sa.text("SELECT 1")).scalar_one())
            database = "up"
        except sa.exc.SQLAlchemyError:
            database = "down"
        systems = {}
        for name, settings in self.hub.config.systems.items():
            adapter = self.hub.systems.get(name)
            systems[name] = {
                "kind": settings.kind,
                "state": _probe(getattr(settings, "base_url", None)),
                "calls": adapter.calls if adapter else 0,
                "retries": adapter.retries if adapter else 0,
            }
        down = [n for n, s in systems.items() if s["state"] == "down"]
        status = "down" if database == "down" else ("degraded" if down else "ok")
        report = {"status": status, "database": database, "systems": systems}
        self._cache = (time.monotonic(), report)
        return report


def _probe(url: Any) -> str:
    """``up`` when the system's host accepts a connection, ``down`` when not, ``unknown`` with no URL."""
    if not isinstance(url, str) or "://" not in url:
        return "unknown"
    parts = urlsplit(url)
    if parts.hostname is None:
        return "unknown"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=1.0):
            return "up"
    except OSError:
        return "down"


def percentile(values: list[float], p: int) -> float | None:
    """The p-th percentile, None without values."""
    if not values:
        return None
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=100, method="inclusive")[p - 1]
