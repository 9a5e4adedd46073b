"""Shadow mode: NetSuite is the system of record, the legacy file ERP receives a copy of every posting.

The legacy ERP is the simulator over a real folder, with the reference data
of NetSuite (as a migration of reference data leaves it); lead-to-project
creates each deal's customer and project in both, so the copies the hub
dual-posts find them. The comparison report reads both ERPs back.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.cli.stacks import aligned_master
from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import project_key, workflow_id
from quote2cash.ops.posting import post_now
from quote2cash.ops.reconciliation import reconcile
from quote2cash.ops.shadow import shadow_report, where_posted
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.flatfile import FlatFileErpSimulator
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from quote2cash.store import cases
from quote2cash.store.tables import project_registry

from .conftest import FAST, add_deal, result_of


@pytest.fixture
def shadowed(db_url: str, boxes: Sandboxes, tmp_path: Path) -> Iterator[tuple[Hub, FlatFileErpSimulator]]:
    raw = boxes.config(db_url)
    raw["systems"]["legacy"] = {"kind": "flatfile", "folder": str(tmp_path / "legacy")}
    raw["erp_routing"] = {"default": "erp", "shadow": "legacy"}
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    sim = FlatFileErpSimulator(
        tmp_path / "legacy", master=aligned_master(hub.erp("erp").master_data())
    ).start()
    yield hub, sim
    hub.shutdown()
    sim.close()


def _time(boxes: Sandboxes, hub: Hub, workspace: str, currency: str, days: list[str]) -> None:
    kt = boxes.kantata
    users = {u["headline"]: str(u["id"]) for u in kt.records("users")}
    user = users.get("Consultant") or kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    task = next(
        s for s in kt.records("stories") if str(s["workspace_id"]) == workspace and s["story_type"] == "task"
    )
    rate = int(hub.config.rate_cards[f"STD-{currency}"].rates["Consultant"] * 100)
    entries: list[dict[str, Any]] = [
        {
            "workspace_id": workspace,
            "story_id": task["id"],
            "user_id": user,
            "date_performed": day,
            "time_in_minutes": 60 + 30 * (n % 4),
            "billable": True,
            "rate_in_cents": rate,
            "currency": currency,
            "approved": True,
        }
        for n, day in enumerate(days)
    ]
    kt.add_time_entries(entries)


def test_shadow_holds_the_same_totals_and_the_report_lists_a_planted_difference(
    shadowed: tuple[Hub, FlatFileErpSimulator], boxes: Sandboxes, tmp_path: Path
) -> None:
    hub, sim = shadowed
    _, us = add_deal(boxes, region="North America", currency="USD")
    _, uk = add_deal(boxes, region="UK & Ireland", currency="GBP")
    poll_closed_won(hub)
    assert result_of(workflow_id(us))["status"] == result_of(workflow_id(uk))["status"] == "completed"
    # Each deal's customer and project were created in the shadow too, under the hub's external ids.
    sim.wait_idle()
    assert all(refused == 0 for _, refused in sim.imported().values()), sim.imported()
    assert sorted(p["key"] for p in sim.records("project")) == sorted(project_key(o) for o in (us, uk))
    assert len(sim.records("customer")) == 2
    projects = hub.read(lambda c: {r.canonical_id: r for r in c.execute(sa.select(project_registry))})
    october = [f"2026-10-{d:02d}" for d in (5, 6, 7, 8, 9, 12, 13, 14, 15, 16)]
    for opp, currency in ((us, "USD"), (uk, "GBP")):
        _time(boxes, hub, projects[opp].psa_workspace_id, currency, october)

    result = post_now(hub, "time")
    assert result["valid"] == 20 and result["postings_failed"] == 0
    sim.wait_idle()

    # One posting each in the system of record: the copy went to the shadow only.
    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert (
        len(journals) == result["postings_sent"]
        and max(Counter(j["externalId"] for j in journals).values()) == 1
    )
    placed = where_posted(hub, "time", "2026-10")
    assert [(f.erp, f.postings, f.entries) for f in placed.by_erp] == [("erp", len(journals), 20)]
    assert placed.in_several == []
    assert reconcile(hub, "time", "2026-10").breaks == []  # the shadow is not counted as posted

    same = shadow_report(hub, "time", "2026-10", out=tmp_path / "reconciliation")
    assert same.differences == [] and {ln.project for ln in same.lines} == {us, uk}
    for ln in same.lines:
        assert ln.status == "same" and ln.record_erp == "erp"
        assert (ln.record_count, ln.record_entries, ln.record_amount) == (
            ln.shadow_count,
            ln.shadow_entries,
            ln.shadow_amount,
        )
    assert sum(int(ln.record_entries) for ln in same.lines) == 20

    # A planted difference: the shadow refuses the copy of the next posting; the record takes it.
    sim.reject("*", "LEDGER_LOCKED", "the legacy ledger is locked for the audit")
    _time(boxes, hub, projects[uk].psa_workspace_id, "GBP", ["2026-10-19"])
    again = post_now(hub, "time")
    assert again["postings_sent"] == 1 and again["postings_failed"] == 0
    sim.wait_idle()
    assert post_now(hub, "time")["postings_refused_later"] == 0  # the shadow's refusal decides nothing
    assert hub.read(cases.list_cases) == []

    report = shadow_report(hub, "time", "2026-10", out=tmp_path / "reconciliation")
    [difference] = report.differences
    assert (difference.kind, difference.project, difference.shadow) == ("missing_in_shadow", uk, "")
    lines = {ln.project: ln for ln in report.lines}
    assert lines[uk].status == "different" and lines[uk].count_difference == -1
    assert lines[uk].amount_difference == f"-{difference.record}"
    assert lines[us].status == "same"
    assert reconcile(hub, "time", "2026-10").breaks == []

    stem = tmp_path / "reconciliation" / "shadow-time-2026-10"
    assert report.files == [f"{stem}.json", f"{stem}.csv", f"{stem}-differences.csv"]
    assert json.loads(Path(f"{stem}.json").read_text())["differences_by_kind"] == {"missing_in_shadow": 1}
    with open(f"{stem}-differences.csv") as fh:
        [row] = list(csv.DictReader(fh))
    assert (row["difference"], row["project"], row["key"]) == ("missing_in_shadow", uk, difference.key)
