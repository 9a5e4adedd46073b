"""The demo is reproducible: the same ``--seed`` and ``--deals`` give the same figures on every run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# Wall-clock measurements, the only figures allowed to differ between runs: how long
# the run took, how long deals and approved work waited (seconds measured by the
# clock), and the share posted within the SLA (a comparison with that clock).
TIMINGS = {"elapsed_s", "latency_p50_s", "latency_p95_s"}
WORK_TIMINGS = {"approval_to_posted_p50_s", "approval_to_posted_p95_s", "posted_within_sla_pct"}
# How long signed-off milestones waited for their invoice (seconds measured by the clock).
BILLING_TIMINGS = {"invoice_cycle_p50_s", "invoice_cycle_p95_s"}


def _demo(workdir: Path) -> dict[str, Any]:
    command = [sys.executable, "-c", "from quote2cash.cli import main; main()", "demo"]
    args = ["--deals", "6", "--seed", "11", "--json", "--workdir", str(workdir)]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _without_timings(figures: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in figures.items() if k not in TIMINGS}
    for kind in ("time", "expense"):
        out[kind] = {k: v for k, v in out[kind].items() if k not in WORK_TIMINGS}
    out["billing"] = {k: v for k, v in out["billing"].items() if k not in BILLING_TIMINGS}
    return out


def test_same_seed_and_deals_give_identical_figures(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"  # the same folder both times: the report paths are part of the figures
    first, second = _demo(workdir), _demo(workdir)

    assert first.keys() >= TIMINGS and first["time"].keys() >= WORK_TIMINGS
    assert first["billing"].keys() >= BILLING_TIMINGS
    assert _without_timings(first) == _without_timings(second)
    # …and the run did something worth comparing: projects, posted work, planted bad entries caught.
    assert first["deals"] == 6 and first["projects_created_erp"] >= 3
    assert (
        first["time"]["approved"] > 100 and first["time"]["posted"] > 0 and first["expense"]["approved"] > 0
    )
    assert first["time"]["quarantined"] + first["time"]["held_closed_period"] > 0
    # …and billed the month: invoices sent in Stripe, one paid, one payment declined.
    billing = first["billing"]
    assert billing["billing_run_status"] == "completed" and billing["invoices_sent"] > 0
    assert billing["payments_made"] > 0 and billing["payments_failed"] == 1
