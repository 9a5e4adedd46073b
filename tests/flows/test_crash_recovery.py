"""A worker killed with SIGKILL mid-flow and restarted finishes every flow with no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.flows.lead_to_project import BATCH
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from quote2cash.store.db import make_engine
from quote2cash.store.tables import flow_run

from .conftest import add_deal, worker_yaml

pytestmark = pytest.mark.slow
#: A few deals (a workflow each), and a burst that runs in batches (a workflow, one checkpoint, per
#: batch): more than lead-to-project's batch of 25, and no more than the 26 distinct client names
#: (two clients of one name would rightly stop as probable duplicates).
BURSTS = [6, BATCH + 1]


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **SANDBOX_ENV, "Q2C_EXECUTOR_ID": "worker-a"}
    return subprocess.Popen(
        [sys.executable, "-m", "quote2cash", "run", "--config", str(config)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _runs(engine: sa.Engine) -> list[tuple[str, str, dict]]:
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(sa.select(flow_run.c.subject, flow_run.c.status, flow_run.c.steps))
            ]
    except sa.exc.DBAPIError:
        return []  # tables not created yet


@pytest.mark.parametrize("deals", BURSTS)
def test_sigkill_mid_flow_then_restart_finishes_without_duplicates(
    db_url: str, boxes: Sandboxes, tmp_path: Path, deals: int
) -> None:
    opps = [add_deal(boxes)[1] for _ in range(deals)]
    raw = boxes.config(db_url, poll_interval_seconds=0.2)
    config = tmp_path / "q2c.yaml"
    config.write_text(worker_yaml(raw))
    # Slow ERP project writes, so the kill lands while flows are half-way.
    boxes.netsuite.inject("latency", method="PUT", path=r"/job/eid:", seconds=0.8)
    engine = make_engine(db_url)
    log = tmp_path / "worker.log"

    worker = _worker(config, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = _runs(engine)
        if any("erp_customer" in steps and status == "running" for _, status, steps in runs):
            break
        assert worker.poll() is None, log.read_text()
        time.sleep(0.05)
    else:
        pytest.fail("no flow reached the middle in time:\n" + log.read_text())
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    half_way = [s for s, status, _ in _runs(engine) if status == "running"]
    assert half_way, "the kill must interrupt at least one flow"

    restarted = _worker(config, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = _runs(engine)
            if len(runs) == deals and all(status == "completed" for _, status, _ in runs):
                break
            assert restarted.poll() is None, log.read_text()
            time.sleep(0.2)
        else:
            pytest.fail(f"flows did not finish after restart: {_runs(engine)}\n{log.read_text()[-3000:]}")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
        engine.dispose()

    with make_engine(db_url).connect() as conn:
        ledger = dict(
            conn.execute(sa.text("SELECT status, COUNT(*) FROM idempotency_ledger GROUP BY status")).all()
        )
    assert ledger == {"done": 3 * deals}  # no write is left in doubt after the restart
    ns = boxes.netsuite
    assert len(ns.records("customer")) == deals
    assert len(ns.records("job")) == deals
    assert len(boxes.kantata.records("workspaces")) == deals
    assert len(boxes.kantata.records("resource_requests")) == 2 * deals
    ext = Counter(r["externalId"] for r in ns.records("customer") + ns.records("job"))
    assert max(ext.values()) == 1
    for opp in opps:
        deal = boxes.salesforce.get("Opportunity", opp)
        assert deal["ERP_Project_Id__c"] and deal["PSA_Workspace_Id__c"]


def test_sigkill_during_a_posting_batch_then_restart_posts_exactly_the_psa_totals(
    make_hub: Any, boxes: Sandboxes, db_url: str, tmp_path: Path
) -> None:
    from decimal import Decimal

    from quote2cash.flows.lead_to_project import workflow_id
    from quote2cash.store.tables import posting

    from .conftest import result_of

    hub = make_hub()
    _, opp = add_deal(boxes)
    from quote2cash.flows.intake import poll_closed_won

    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["status"] == "completed"
    workspace = boxes.kantata.records("workspaces")[0]["id"]
    hub.shutdown()  # from here on only the worker processes run flows
    kt = boxes.kantata
    user = kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    # 450 tasks -> 450 summary journals -> 3 batch calls, slowed down so the kill lands between them.
    tasks = [
        kt.add_story({"workspace_id": workspace, "title": f"Task {i}", "story_type": "task"})
        for i in range(450)
    ]
    kt.add_time_entries(
        [
            {
                "workspace_id": workspace,
                "story_id": t,
                "user_id": user,
                "date_performed": "2026-10-15",
                "time_in_minutes": 90,
                "billable": True,
                "rate_in_cents": 18000,
                "currency": "USD",
                "approved": True,
            }
            for t in tasks
            for _ in range(2)
        ]
    )
    boxes.netsuite.inject("latency", path="restlet", seconds=1.0)
    config = tmp_path / "q2c.yaml"
    config.write_text(worker_yaml(boxes.config(db_url)))
    env = {**os.environ, **SANDBOX_ENV, "Q2C_EXECUTOR_ID": "worker-b"}
    log = tmp_path / "post.log"
    cmd = [sys.executable, "-m", "quote2cash", "post", "time", "--now", "--config", str(config)]
    engine = make_engine(db_url)

    def counts() -> dict[str, int]:
        try:
            with engine.connect() as conn:
                return {
                    s: int(n)
                    for s, n in conn.execute(
                        sa.select(posting.c.status, sa.func.count()).group_by(posting.c.status)
                    )
                }
        except sa.exc.DBAPIError:
            return {}

    worker = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        c = counts()
        if c.get("posted", 0) > 0 and c.get("pending", 0) > 0:
            break
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    else:
        pytest.fail("the batch never got half-way:\n" + log.read_text()[-3000:])
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert counts().get("pending", 0) > 0

    restarted = subprocess.run(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, timeout=180)
    assert restarted.returncode == 0, log.read_text()[-3000:]
    deadline = time.monotonic() + 60
    while counts().get("pending", 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    engine.dispose()

    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert max(Counter(j["externalId"] for j in journals).values()) == 1
    assert len(journals) == 450
    assert sum(Decimal(j["custbody_q2c_hours"]) for j in journals) == Decimal(900 * 90) / 60
    assert sum(Decimal(j["custbody_q2c_amount"]) for j in journals) == Decimal(900 * 270)


def test_flows_of_a_worker_gone_for_good_are_recovered_by_another(
    db_url: str, boxes: Sandboxes, tmp_path: Path
) -> None:
    opps = [add_deal(boxes)[1] for _ in range(3)]
    config = tmp_path / "q2c.yaml"
    config.write_text(worker_yaml(boxes.config(db_url, poll_interval_seconds=0.2)))
    boxes.netsuite.inject("latency", method="PUT", path=r"/job/eid:", seconds=1.0)
    engine = make_engine(db_url)
    log = tmp_path / "worker.log"
    worker = _worker(config, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        status == "running" and "erp_customer" in steps for _, status, steps in _runs(engine)
    ):
        assert worker.poll() is None, log.read_text()
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    boxes.netsuite.faults.clear()
    env = {**os.environ, **SANDBOX_ENV, "Q2C_EXECUTOR_ID": "worker-c"}
    taken_over = subprocess.run(
        [
            sys.executable,
            "-m",
            "quote2cash",
            "workers",
            "recover",
            "--executor",
            "worker-a",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert taken_over.returncode == 0, taken_over.stdout + taken_over.stderr
    assert "recovering" in taken_over.stdout and "SUCCESS" in taken_over.stdout
    runs = _runs(engine)
    engine.dispose()
    # Whatever the killed worker had started is finished; nothing was created twice.
    started = [s for s, _, _ in runs]
    assert started and all(status == "completed" for _, status, _ in runs), runs
    assert len(boxes.netsuite.records("job")) == len(started) <= len(opps)
    assert max(Counter(r["externalId"] for r in boxes.netsuite.records("job")).values()) == 1
