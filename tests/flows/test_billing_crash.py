"""A billing worker killed with SIGKILL between Stripe's answer and the hub's commit of an invoice,
then restarted: the run finishes, and nothing is invoiced twice; SQLite and PostgreSQL."""

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
import yaml

from quote2cash.store.db import make_engine
from quote2cash.store.tables import audit_log, billing_invoice, invoiced_work

from .billing_fixtures import Cash

pytestmark = pytest.mark.slow
PROJECTS = 4
#: Invoice creates Stripe applies but answers only after this long: the worker dies meanwhile.
HELD = 2
EXECUTOR = "billing-worker"
# Per project: 7.5 h of a Consultant (180.00/h) and 2 h of an Engagement Manager (320.00/h).
EXPECTED_MINOR = 135000 + 64000


def _worker(c: Cash, config: Path, log: Path, *command: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **c.env, "Q2C_EXECUTOR_ID": EXECUTOR}
    return subprocess.Popen(
        [sys.executable, "-m", "quote2cash", *command, "--config", str(config)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _invoices(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(sa.select(billing_invoice).order_by(billing_invoice.c.key)).mappings()
        ]


def _finished(engine: sa.Engine, run_id: str) -> dict[str, Any] | None:
    """The summary the run audits when it completes."""
    with engine.connect() as conn:
        after = conn.execute(
            sa.select(audit_log.c.after).where(
                audit_log.c.action == "billing.period_run", audit_log.c.subject == run_id
            )
        ).scalar()
    return dict(after) if after else None


def _keyed(c: Cash) -> list[dict[str, Any]]:
    return [i for i in c.stripe.objects("invoice") if (i.get("metadata") or {}).get("q2c_key")]


def test_sigkill_between_stripe_and_the_local_commit_never_bills_twice(cash: Cash, tmp_path: Path) -> None:
    c = cash
    opps = [c.deal("Time & Materials") for _ in range(PROJECTS)]
    projects = c.activate(opps)
    entries = []
    for opp in opps:
        entries.append(c.time(projects[opp], "Consultant", 450, "2026-12-03"))
        entries.append(c.time(projects[opp], "Engagement Manager", 120, "2026-12-04"))
    c.post_time()
    # From here on only worker processes bill; the webhooks have no hub to go to.
    c.api.stop()
    c.stripe.webhooks.stop()
    c.hub.shutdown()

    config = tmp_path / "q2c.yaml"
    config.write_text(yaml.safe_dump(c.raw))
    log = tmp_path / "worker.log"
    engine = make_engine(str(c.raw["hub"]["database_url"]))
    # Stripe creates these invoices and holds its answer: the worker dies before it records them.
    c.stripe.inject("timeout_after_commit", method="POST", path=r"^/v1/invoices$", seconds=20, count=HELD)

    worker = _worker(c, config, log, "bill", "--period", "2026-12")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        rows = _invoices(engine) if len(_keyed(c)) == PROJECTS else []
        if len([r for r in rows if r["erp_id"]]) == PROJECTS - HELD:
            break
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    else:
        pytest.fail("the run never reached the held invoices:\n" + log.read_text()[-3000:])
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    rows = _invoices(engine)
    in_doubt = [r["key"] for r in rows if r["billing_id"] is None]
    assert len(in_doubt) == HELD and len(rows) == PROJECTS  # Stripe holds them, the hub does not
    assert {str(i["metadata"]["q2c_key"]) for i in _keyed(c)} == {r["key"] for r in rows}
    (run_id,) = {str(r["run_id"]) for r in rows}
    assert _finished(engine, run_id) is None
    c.stripe.faults.clear()
    # A worker back after Stripe forgot the keys (24 hours): the hub finds its invoices by metadata.
    c.stripe.expire_idempotency_keys()

    restarted = _worker(c, config, log, "run")
    try:
        deadline = time.monotonic() + 120
        while (summary := _finished(engine, run_id)) is None and time.monotonic() < deadline:
            assert restarted.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    assert summary is not None, "the restarted worker did not finish the run:\n" + log.read_text()[-3000:]
    assert (summary["status"], summary["invoices_planned"], summary["failed"]) == ("completed", PROJECTS, 0)

    rows = _invoices(engine)
    with engine.connect() as conn:
        locked = conn.execute(sa.select(invoiced_work.c.source_id, invoiced_work.c.invoice_key)).all()
    engine.dispose()
    assert [(r["status"], r["total_minor"]) for r in rows] == [("open", EXPECTED_MINOR)] * PROJECTS
    # Stripe: exactly one invoice per key, each with its two lines once.
    stripe_invoices = _keyed(c)
    assert sorted(Counter(str(i["metadata"]["q2c_key"]) for i in stripe_invoices).values()) == [1] * PROJECTS
    for inv in stripe_invoices:
        assert inv["status"] == "open" and inv["total"] == EXPECTED_MINOR
        assert sorted(line["amount"] for line in inv["lines"]["data"]) == [64000, 135000]
    assert {r["billing_id"] for r in rows} == {i["id"] for i in stripe_invoices}
    # The ERP: one AR invoice per Stripe invoice.
    ar = Counter(r.get("externalId") for r in c.boxes.netsuite.records("invoice"))
    assert {r["billing_id"]: ar[r["billing_id"]] for r in rows} == {r["billing_id"]: 1 for r in rows}
    # Every time entry locked by exactly one invoice.
    assert sorted(s for s, _ in locked) == sorted(entries)
    assert {k for _, k in locked} == {r["key"] for r in rows}
