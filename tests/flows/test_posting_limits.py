"""Posting keeps the ERP account's concurrency limit, and survives a worker killed every few seconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.ops.posting import post_now
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from quote2cash.store.db import make_engine
from quote2cash.store.tables import posting

from .conftest import add_deal, result_of

RATE = 18000  # cents: the STD-USD Consultant rate


def _project_with_entries(hub: Hub, boxes: Sandboxes, entries: int) -> str:
    _, opp = add_deal(boxes)
    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["status"] == "completed"
    kt = boxes.kantata
    workspace = kt.records("workspaces")[0]["id"]
    task = next(
        s for s in kt.records("stories") if s["workspace_id"] == workspace and s["story_type"] == "task"
    )
    user = kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    kt.add_time_entries(
        [
            {
                "workspace_id": workspace,
                "story_id": task["id"],
                "user_id": user,
                "date_performed": f"2026-10-{1 + i % 28:02d}",
                "time_in_minutes": 30 + 15 * (i % 4),
                "billable": True,
                "rate_in_cents": RATE,
                "currency": "USD",
                "approved": True,
            }
            for i in range(entries)
        ]
    )
    return opp


def _expected(entries: int) -> tuple[Decimal, Decimal]:
    minutes = sum(30 + 15 * (i % 4) for i in range(entries))
    return Decimal(minutes) / 60, Decimal(minutes) * RATE / 60 / 100


def _timebills(boxes: Sandboxes) -> list[dict[str, Any]]:
    return [t for t in boxes.netsuite.records("timebill") if t.get("custbody_q2c_kind") == "time"]


def test_posting_never_exceeds_the_erp_concurrency_limit(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    ns = boxes.netsuite
    ns.concurrency_limit = 3
    hub = make_hub(posting={"mode": "detail", "detail_concurrency": 12}, limits={"erp": {"concurrency": 3}})
    _project_with_entries(hub, boxes, 60)
    ns.inject("latency", method="PUT", path=r"/timebill/", seconds=0.05)
    ns.peak_in_flight = 0
    result = post_now(hub, "time")
    assert result["postings_sent"] == 60 and result["postings_failed"] == 0
    # The sandbox counted the requests in flight: the account limit held, nothing was refused.
    assert ns.peak_in_flight == 3 and ns.rejections["concurrency"] == 0
    assert len(_timebills(boxes)) == 60


@pytest.mark.slow
def test_posting_with_a_worker_killed_every_few_seconds_posts_every_entry_once(
    make_hub: Callable[..., Hub], boxes: Sandboxes, db_url: str, tmp_path: Path
) -> None:
    entries = 240
    hub = make_hub()
    _project_with_entries(hub, boxes, entries)
    hub.shutdown()  # from here on only the worker processes post
    boxes.netsuite.inject("latency", method="PUT", path=r"/timebill/", seconds=0.1)
    raw = boxes.config(db_url)
    raw["posting"] = {"mode": "detail", "detail_concurrency": 4}
    config = tmp_path / "q2c.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, **SANDBOX_ENV, "Q2C_EXECUTOR_ID": "worker-k"}
    cmd = [sys.executable, "-m", "quote2cash", "post", "time", "--now", "--config", str(config)]
    log = tmp_path / "post.log"
    engine = make_engine(db_url)
    rng = random.Random(7)

    def posted() -> int:
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(posting).where(posting.c.status == "posted")
                    ).scalar_one()
                )
        except sa.exc.DBAPIError:
            return 0

    kills = 0
    progress: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        worker = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        try:
            worker.wait(timeout=rng.uniform(2.0, 5.0))
        except subprocess.TimeoutExpired:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            kills += 1
            progress.append(posted())
            continue
        assert worker.returncode == 0, log.read_text()[-3000:]
        if posted() == entries:
            break
    engine.dispose()
    assert kills >= 3, f"the worker was never killed mid-run ({progress})"
    assert posted() == entries, f"not every entry was posted: {progress}\n{log.read_text()[-2000:]}"
    # Progress was made between kills, and nothing was posted twice.
    assert progress == sorted(progress) and progress[-1] > progress[0]
    bills = _timebills(boxes)
    assert len(bills) == entries and max(Counter(b["externalId"] for b in bills).values()) == 1
    hours, amount = _expected(entries)
    assert sum(Decimal(b["custbody_q2c_hours"]) for b in bills) == hours
    assert sum(Decimal(b["custbody_q2c_amount"]) for b in bills) == amount
