"""The same flows on every stack: only the configuration says which CRM and ERP they talk to.

Each test runs on Salesforce + Kantata + NetSuite and on HubSpot + Certinia +
Business Central (``STACKS``), on SQLite and PostgreSQL, against the real
sandboxes over HTTP: lead-to-project, a duplicate delivery, posting a
month's time with reconciliation, and a worker killed mid-flow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.cli.stacks import StackSandboxes
from quote2cash.flows.intake import deliver, poll_closed_won
from quote2cash.flows.lead_to_project import FLOW
from quote2cash.ops.posting import post_now
from quote2cash.ops.reconciliation import reconcile
from quote2cash.runtime.flow import workflow_id
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV
from quote2cash.store import repo
from quote2cash.store.db import make_engine
from quote2cash.store.tables import flow_run, project_registry

from .conftest import STACKS, result_of, wait_for_flows, worker_yaml

pytestmark = pytest.mark.parametrize("stack", STACKS)
#: Where each ERP is slow to write a project, so a kill lands half-way through a flow.
SLOW_PROJECT_WRITE = {"netsuite": ("PUT", r"/job/eid:"), "business_central": ("POST", r"/projects$")}


def _projects(hub: Hub) -> dict[str, dict[str, Any]]:
    return hub.read(
        lambda c: {r["canonical_id"]: dict(r) for r in c.execute(sa.select(project_registry)).mappings()}
    )


def _month_of_time(sb: StackSandboxes, hub: Hub, project: str, currency: str) -> int:
    """Approved time on every business day of October 2026 on a project, by a consultant at the
    rate card's rate (Kantata's time entries, Certinia's weekly timecards); returns the days."""
    rate = int(hub.config.rate_cards[f"STD-{currency}"].rates["Consultant"] * 100)
    days = [d for d in (date(2026, 10, n) for n in range(1, 32)) if d.weekday() < 5]
    hours = [(day, 90 + 30 * (n % 3)) for n, day in enumerate(days)]
    sb.psa.add_person("Ada Lovelace", f"ada.{project}@northwind.example", "Consultant")
    assert sb.psa.book_time(project, "Consultant", hours, rate, currency)
    return len(days)


def test_lead_to_project_creates_customer_project_staffing_and_writes_back(
    stack: str, boxes: Any, make_hub: Any
) -> None:
    sb = StackSandboxes.of(boxes)
    hub = make_hub()
    _, us = sb.add_deal("Aurora Robotics Inc", region="North America", currency="USD")
    _, uk = sb.add_deal("Basalt Media Ltd", region="UK & Ireland", currency="GBP", lines=[("Analyst", 40)])
    poll_closed_won(hub)
    assert result_of(workflow_id(FLOW, sb.subject(us)))["status"] == "completed"
    assert result_of(workflow_id(FLOW, sb.subject(uk)))["status"] == "completed"

    assert len(sb.erp_customers()) == 2
    assert len(sb.erp_projects()) == 2
    assert sb.psa.projects() == 2 and sb.psa.staffing_requests() == 3
    projects = _projects(hub)
    assert {projects[us]["legal_entity"], projects[uk]["legal_entity"]} == {"US01", "UK01"}
    assert projects[uk]["currency"] == "GBP"
    deals = {d["erp_project_id"]: d for d in sb.deals() if d["erp_project_id"]}
    assert set(deals) == {projects[us]["erp_job_id"], projects[uk]["erp_job_id"]}
    assert all(d["psa_project_id"] for d in deals.values())


def test_a_duplicate_delivery_starts_no_second_flow_and_writes_nothing_twice(
    stack: str, boxes: Any, make_hub: Any
) -> None:
    sb = StackSandboxes.of(boxes)
    hub = make_hub()
    _, deal = sb.add_deal("Cinder Foods Inc")
    assert poll_closed_won(hub).accepted == 1
    assert result_of(workflow_id(FLOW, sb.subject(deal)))["status"] == "completed"
    # The CRM's webhook delivers the same closed-won again, and the poller sees it again.
    event = sb.won_event(deal)
    assert deliver(hub, event.source_event_id, event.event) is False
    assert deliver(hub, event.source_event_id, event.event) is False
    assert poll_closed_won(hub).accepted == 0
    assert list(wait_for_flows(hub, 1).values()) == ["completed"]
    assert hub.read(repo.inbox_duplicates) >= 2
    assert len(sb.erp_projects()) == 1 and len(sb.erp_customers()) == 1
    assert sb.psa.projects() == 1


def test_a_month_of_time_is_posted_once_and_reconciles(stack: str, boxes: Any, make_hub: Any) -> None:
    sb = StackSandboxes.of(boxes)
    hub = make_hub()
    _, us = sb.add_deal("Dynamo Energy Inc", currency="USD")
    _, uk = sb.add_deal("Ember Retail Ltd", region="UK & Ireland", currency="GBP")
    poll_closed_won(hub)
    assert (
        result_of(workflow_id(FLOW, sb.subject(us)))["status"]
        == result_of(workflow_id(FLOW, sb.subject(uk)))["status"]
        == "completed"
    )
    projects = _projects(hub)
    entries = sum(
        _month_of_time(sb, hub, projects[opp]["psa_workspace_id"], projects[opp]["currency"])
        for opp in (us, uk)
    )

    first = post_now(hub, "time")
    assert first["valid"] == entries and first["quarantined"] == 0 and first["postings_failed"] == 0
    again = post_now(hub, "time")  # nothing new: nothing sent
    assert again["postings_sent"] == 0
    keys = sb.erp_postings("time")
    assert len(keys) == first["postings_sent"] > 0 and max(Counter(keys).values()) == 1

    report = reconcile(hub, "time", "2026-10")
    assert report.breaks == []
    lines = {ln.project: ln for ln in report.lines}
    assert set(lines) == {us, uk}
    for ln in lines.values():
        assert (ln.psa_count, ln.psa_hours, ln.psa_amount) == (ln.erp_count, ln.erp_hours, ln.erp_amount)
    assert sum(ln.erp_count for ln in lines.values()) == entries
    assert Decimal(lines[uk].erp_amount) > 0 and lines[uk].currency == "GBP"


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **SANDBOX_ENV, "Q2C_EXECUTOR_ID": "worker-a"}
    return subprocess.Popen(
        [sys.executable, "-m", "quote2cash", "run", "--config", str(config)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _runs(engine: sa.Engine) -> list[tuple[str, str, dict[str, Any]]]:
    try:
        with engine.connect() as conn:
            return [
                (str(s), str(st), dict(steps or {}))
                for s, st, steps in conn.execute(
                    sa.select(flow_run.c.subject, flow_run.c.status, flow_run.c.steps)
                )
            ]
    except sa.exc.DBAPIError:
        return []  # tables not created yet


@pytest.mark.slow
def test_sigkill_mid_flow_then_restart_finishes_every_flow_without_duplicates(
    stack: str, boxes: Any, db_url: str, tmp_path: Path
) -> None:
    sb = StackSandboxes.of(boxes)
    names = ["Fjord", "Glacier", "Helix", "Indigo"]
    deals = [sb.add_deal(f"{n} Analytics Inc")[1] for n in names]
    config = tmp_path / "q2c.yaml"
    config.write_text(worker_yaml(sb.config(db_url, poll_interval_seconds=0.2)))
    method, path = SLOW_PROJECT_WRITE[sb.stack.erp]
    sb.erp.inject("latency", method=method, path=path, seconds=0.8)
    engine = make_engine(db_url)
    log = tmp_path / "worker.log"

    worker = _worker(config, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any("erp_customer" in steps and status == "running" for _, status, steps in _runs(engine)):
            break
        assert worker.poll() is None, log.read_text()
        time.sleep(0.05)
    else:
        pytest.fail("no flow reached the middle in time:\n" + log.read_text())
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert [s for s, status, _ in _runs(engine) if status == "running"], "the kill must interrupt a flow"

    restarted = _worker(config, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = _runs(engine)
            if len(runs) == len(deals) and all(status == "completed" for _, status, _ in runs):
                break
            assert restarted.poll() is None, log.read_text()
            time.sleep(0.2)
        else:
            pytest.fail(f"flows did not finish after restart: {_runs(engine)}\n{log.read_text()[-3000:]}")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    with engine.connect() as conn:
        ledger = dict(
            conn.execute(sa.text("SELECT status, COUNT(*) FROM idempotency_ledger GROUP BY status")).all()
        )
    engine.dispose()
    assert set(ledger) == {"done"}  # no write left in doubt after the restart
    projects = sb.erp_projects()
    assert len(projects) == len(deals) and max(Counter(projects).values()) == 1
    assert len(sb.erp_customers()) == len(deals)
    assert sb.psa.projects() == len(deals) and max(Counter(sb.psa.references()).values()) == 1
    assert sb.psa.staffing_requests() == 2 * len(deals)
    written = {d["erp_project_id"] for d in sb.deals() if d["erp_project_id"] and d["psa_project_id"]}
    assert len(written) == len(deals)
