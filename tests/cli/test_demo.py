"""The demo is reproducible: the same ``--seed`` and ``--deals`` give the same figures on every run;
and it runs the whole loop with Certinia as the PSA, in the CRM's Salesforce org or in one of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.salesforce.certinia import HOURS_FIELDS

# Wall-clock measurements, the only figures allowed to differ between runs: how long
# the run took, how long deals and approved work waited (seconds measured by the
# clock), and the share posted within the SLA (a comparison with that clock).
TIMINGS = {"elapsed_s", "latency_p50_s", "latency_p95_s"}
WORK_TIMINGS = {"approval_to_posted_p50_s", "approval_to_posted_p95_s", "posted_within_sla_pct"}
# How long signed-off milestones waited for their invoice (seconds measured by the clock).
BILLING_TIMINGS = {"invoice_cycle_p50_s", "invoice_cycle_p95_s"}


def _demo(workdir: Path, *extra: str, deals: int = 6) -> dict[str, Any]:
    command = [sys.executable, "-c", "from quote2cash.cli import main; main()", "demo"]
    args = ["--deals", str(deals), "--seed", "11", "--json", "--workdir", str(workdir), *extra]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _without_timings(figures: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in figures.items() if k not in TIMINGS}
    for kind in ("time", "expense"):
        out[kind] = {k: v for k, v in out[kind].items() if k not in WORK_TIMINGS}
    if "billing" in out:
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


def _month_is_posted_and_reconciled(work: dict[str, Any], planted: set[str]) -> None:
    """Every approved entry posted, quarantined or held; every reconciliation break explained by them."""
    assert work["approved"] == work["posted"] + work["quarantined"] + work["held_closed_period"]
    assert set(work["quarantined_by_reason"]) <= planted
    assert sum(work["quarantined_by_reason"].values()) == work["quarantined"]
    assert set(work["reconciliation_breaks"]) <= {"explained"}
    breaks = work["reconciliation_lines"] - work["reconciliation_lines_ok"]
    assert (
        work["reconciliation_breaks_explained"] == breaks == work["reconciliation_breaks"].get("explained", 0)
    )


PLANTED_TIME = {"time.task_closed", "time.rate_mismatch", "time.billable_mismatch"}


def test_the_demo_runs_with_certinia_in_the_crms_salesforce_org(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    figures = _demo(workdir, "--stack", "salesforce,certinia,netsuite", deals=12)
    assert figures["stack"] == "salesforce,certinia,netsuite"
    org = SalesforceSandbox(workdir / "sandboxes" / "salesforce.sqlite")  # the CRM's org holds the PSA
    try:
        projects = [p for p in org.records("pse__Proj__c") if not p["pse__Is_Template__c"]]
        deals = {o["Id"]: o for o in org.records("Opportunity")}
        timecards = org.records("pse__Timecard_Header__c")
        milestones = org.records("pse__Milestone__c")
    finally:
        org.store.close()
    # Won deals became Certinia projects, linked to their deal and account, their ids on the deal.
    assert figures["workspaces_created_psa"] == len(projects) == figures["projects_created_erp"] >= 5
    assert figures["duplicates_in_targets"] == 0 and figures["staffing_requests"] > 0
    assert all(
        p["pse__Opportunity__c"] == p["Hub_Ext_Id__c"] in deals and p["pse__Account__c"] for p in projects
    )
    linked = [p for p in projects if deals[p["Hub_Ext_Id__c"]].get("PSA_Workspace_Id__c") == p["Id"]]
    assert len(linked) == figures["ids_written_back"] > 0
    # A month of weekly timecards: every day with hours posted, quarantined or held, and reconciled.
    days = sum(1 for t in timecards for f in HOURS_FIELDS if t.get(f))
    time, expenses = figures["time"], figures["expense"]
    assert time["approved"] == days > 100 and time["posted"] > 0 and expenses["approved"] > 0
    assert time["quarantined"] + time["held_closed_period"] > 0
    _month_is_posted_and_reconciled(time, PLANTED_TIME)
    _month_is_posted_and_reconciled(expenses, {"expense.category_missing"})
    # The month billed: milestones approved in Certinia invoiced, billed to date back on the projects.
    billing = figures["billing"]
    assert billing["billing_run_status"] == "completed" and billing["invoices_sent"] > 0
    assert {"milestone", "time_and_materials"} <= set(billing["billing_models"])
    assert billing["payments_made"] > 0 and billing["payments_failed"] == 1
    assert any(m.get("pse__Approved__c") for m in milestones)
    assert sum(1 for p in projects if p.get("Billed_To_Date__c")) >= billing["invoices_sent"] // 2


@pytest.mark.slow
def test_the_demo_on_hubspot_certinia_and_business_central_is_reproducible(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    stack = ("--stack", "hubspot,certinia,bc")
    first, second = _demo(workdir, *stack), _demo(workdir, *stack)
    assert _without_timings(first) == _without_timings(second)
    assert first["stack"] == "hubspot,certinia,business_central" and "billing" not in first
    org = SalesforceSandbox(workdir / "sandboxes" / "certinia.sqlite")  # Certinia's own org
    try:
        projects = [p for p in org.records("pse__Proj__c") if not p["pse__Is_Template__c"]]
        assert org.records("Opportunity") == []  # the deals are in HubSpot
    finally:
        org.store.close()
    assert first["workspaces_created_psa"] == len(projects) == first["projects_created_erp"] >= 3
    assert not any(p.get("pse__Opportunity__c") for p in projects)  # nothing to link in another CRM
    assert first["ids_written_back"] > 0 and first["duplicates_in_targets"] == 0
    assert first["time"]["approved"] > 100 and first["time"]["posted"] > 0
    _month_is_posted_and_reconciled(first["time"], PLANTED_TIME)
    _month_is_posted_and_reconciled(first["expense"], {"expense.category_missing"})


def test_demo_serve_keeps_the_console_on_the_demos_data_until_sigterm(tmp_path: Path) -> None:
    import signal

    import httpx

    command = [sys.executable, "-c", "from quote2cash.cli import main; main()", "demo"]
    args = ["--deals", "6", "--seed", "11", "--json", "--serve", "--port", "0", "--workdir", str(tmp_path)]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the summary, once the demo has finished
        assert line.startswith("{"), (line, proc.stderr.read() if proc.poll() is not None else "")
        summary = json.loads(line)
        served = summary["console"]
        assert served["url"].endswith("/console/") and served["token"]
        prompt = proc.stdout.readline()
        assert served["url"] in prompt and served["token"] in prompt  # the summary says where and how
        base = served["url"].removesuffix("/console/")
        with httpx.Client(base_url=base, timeout=10) as http:
            # The API and the console answer with the demo's own data, behind the printed token.
            assert http.get("/api/v1/runs").status_code == 401
            auth = {"Authorization": f"Bearer {served['token']}"}
            params = {"flow": "lead_to_project", "status": "completed", "limit": 1}
            runs = http.get("/api/v1/runs", params=params, headers=auth)
            assert runs.status_code == 200
            assert runs.json()["total"] == summary["flows_completed"] > 0
            page = http.post("/console/login", data={"token": served["token"]}, follow_redirects=True)
            assert page.status_code == 200 and "login" not in str(page.url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
