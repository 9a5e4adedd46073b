"""A legal entity cutting over from the legacy file ERP to NetSuite in the middle of a month.

UK01 moves to NetSuite on 16 October: its projects starting from then are
created in NetSuite, those started before stay on the legacy ERP (and so do
their postings, whatever their date); US01 is on NetSuite throughout. A
month of time across the cutover lands each entry in exactly one system of
record, and the totals match the PSA.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.cli.stacks import cutover_routing
from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.ops.posting import post_now
from quote2cash.ops.reconciliation import reconcile
from quote2cash.ops.shadow import where_posted
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.flatfile import FlatFileErpSimulator
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from quote2cash.store.tables import posting, project_registry

from .conftest import FAST, add_deal, result_of

CUTOVER = date(2026, 10, 16)


@pytest.fixture
def cutting_over(db_url: str, boxes: Sandboxes, tmp_path: Path) -> Iterator[tuple[Hub, FlatFileErpSimulator]]:
    sim = FlatFileErpSimulator(tmp_path / "legacy").start()
    raw = boxes.config(db_url)
    raw["systems"]["legacy"] = {"kind": "flatfile", "folder": str(sim.folder)}
    raw["erp_routing"] = cutover_routing("UK01", CUTOVER, "legacy")
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    yield hub, sim
    hub.shutdown()
    sim.close()


def _deal(boxes: Sandboxes, start: date, **kw: Any) -> str:
    _, opp = add_deal(boxes, won=False, **kw)
    boxes.salesforce.update("Opportunity", opp, {"Start_Date__c": start.isoformat()})
    boxes.salesforce.update("Opportunity", opp, {"StageName": "Closed Won", "Terms_Approved__c": True})
    return opp


def _business_days(start: date, end: date) -> list[date]:
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    return [d for d in days if d.weekday() < 5]


def test_a_month_across_the_cutover_lands_every_entry_in_exactly_one_system_of_record(
    cutting_over: tuple[Hub, FlatFileErpSimulator], boxes: Sandboxes
) -> None:
    hub, sim = cutting_over
    old_uk = _deal(boxes, date(2026, 10, 1), region="UK & Ireland", currency="GBP")
    new_uk = _deal(boxes, CUTOVER, region="UK & Ireland", currency="GBP")
    us = _deal(boxes, date(2026, 10, 1), region="North America", currency="USD")
    poll_closed_won(hub)
    for opp in (old_uk, new_uk, us):
        assert result_of(workflow_id(opp))["status"] == "completed"
    sim.wait_idle()
    projects = hub.read(lambda c: {r.canonical_id: r for r in c.execute(sa.select(project_registry))})
    assert {opp: projects[opp].erp for opp in (old_uk, new_uk, us)} == {
        old_uk: "legacy",
        new_uk: "erp",
        us: "erp",
    }
    assert [p["key"] for p in sim.records("project")] == [f"Q2C-P-{old_uk}"]
    assert sorted(j["externalId"] for j in boxes.netsuite.records("job")) == sorted(
        [f"Q2C-P-{new_uk}", f"Q2C-P-{us}"]
    )

    # Time from each project's start to the end of October, at the rate card's rate.
    kt = boxes.kantata
    users = {u["headline"]: str(u["id"]) for u in kt.records("users")}
    user = users.get("Consultant") or kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    rates = {code: card.rates["Consultant"] for code, card in hub.config.rate_cards.items()}
    entries: list[dict[str, Any]] = []
    expected: dict[str, tuple[int, Decimal]] = {}
    for opp, currency in ((old_uk, "GBP"), (new_uk, "GBP"), (us, "USD")):
        ws = projects[opp].psa_workspace_id
        task = next(
            s for s in kt.records("stories") if str(s["workspace_id"]) == ws and s["story_type"] == "task"
        )
        days = _business_days(projects[opp].start_date, date(2026, 10, 31))
        minutes = [60 + 30 * (n % 5) for n in range(len(days))]
        for day, m in zip(days, minutes, strict=True):
            entries.append(
                {
                    "workspace_id": ws,
                    "story_id": task["id"],
                    "user_id": user,
                    "date_performed": day.isoformat(),
                    "time_in_minutes": m,
                    "billable": True,
                    "rate_in_cents": int(rates[f"STD-{currency}"] * 100),
                    "currency": currency,
                    "approved": True,
                }
            )
        amount = sum((rates[f"STD-{currency}"] * Decimal(m) / 60 for m in minutes), Decimal(0))
        expected[opp] = (len(days), amount.quantize(Decimal("0.01")))
    kt.add_time_entries(entries)

    result = post_now(hub, "time")
    assert result["valid"] == len(entries) and result["quarantined"] == 0 and result["postings_failed"] == 0
    sim.wait_idle()
    assert post_now(hub, "time")["postings_refused_later"] == 0

    # Every posting is in exactly one ERP, the one its project is routed to.
    held = {name: {r.key: r for r in hub.erp(name).posted("time", "2026-10")} for name in ("erp", "legacy")}
    assert set(held["erp"]).isdisjoint(held["legacy"])
    posted_keys = hub.read(
        lambda c: {str(k) for (k,) in c.execute(sa.select(posting.c.key).where(posting.c.status == "posted"))}
    )
    assert set(held["erp"]) | set(held["legacy"]) == posted_keys
    assert {str(r.project) for r in held["legacy"].values()} == {old_uk}
    assert {str(r.project) for r in held["erp"].values()} == {new_uk, us}
    # Before the cutover, every UK01 entry went to the legacy ERP (the new project had none yet).
    before = [e for e in entries if e["date_performed"] < CUTOVER.isoformat() and e["currency"] == "GBP"]
    assert before and {e["workspace_id"] for e in before} == {projects[old_uk].psa_workspace_id}

    placed = {f.erp: f for f in where_posted(hub, "time", "2026-10").by_erp}
    assert placed["legacy"].entries == expected[old_uk][0]
    assert placed["erp"].entries == expected[new_uk][0] + expected[us][0]
    assert placed["legacy"].entries + placed["erp"].entries == len(entries)

    # Totals match the PSA, project by project.
    report = reconcile(hub, "time", "2026-10")
    assert report.breaks == []
    lines = {ln.project: ln for ln in report.lines}
    for opp, (count, amount) in expected.items():
        ln = lines[opp]
        assert (ln.psa_count, Decimal(ln.psa_amount)) == (count, amount)
        assert (ln.erp_count, Decimal(ln.erp_amount)) == (count, amount)


@pytest.fixture
def hard_cutover(db_url: str, boxes: Sandboxes, tmp_path: Path) -> Iterator[tuple[Hub, FlatFileErpSimulator]]:
    sim = FlatFileErpSimulator(tmp_path / "legacy").start()
    raw = boxes.config(db_url)
    raw["systems"]["legacy"] = {"kind": "flatfile", "folder": str(sim.folder)}
    raw["erp_routing"] = {
        "rules": [
            {"system": "erp", "legal_entities": ["UK01"], "postings_from": CUTOVER.isoformat()},
            {"system": "legacy", "legal_entities": ["UK01"]},
        ],
        "default": "erp",
    }
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    yield hub, sim
    hub.shutdown()
    sim.close()


def test_a_hard_cutover_sends_an_open_projects_later_postings_to_the_new_erp(
    hard_cutover: tuple[Hub, FlatFileErpSimulator], boxes: Sandboxes
) -> None:
    hub, sim = hard_cutover
    opp = _deal(boxes, date(2026, 10, 1), region="UK & Ireland", currency="GBP")
    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["status"] == "completed"
    sim.wait_idle()
    [project] = hub.read(lambda c: list(c.execute(sa.select(project_registry))))
    assert project.erp == "legacy"  # started before the cutover: the legacy ERP's project
    # Open across the cutover, it is created in NetSuite too, for the postings after it.
    assert [p["key"] for p in sim.records("project")] == [f"Q2C-P-{opp}"]
    [job] = [j for j in boxes.netsuite.records("job") if j["externalId"] == f"Q2C-P-{opp}"]

    kt = boxes.kantata
    user = kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    task = next(
        s
        for s in kt.records("stories")
        if str(s["workspace_id"]) == project.psa_workspace_id and s["story_type"] == "task"
    )
    rate = int(hub.config.rate_cards["STD-GBP"].rates["Consultant"] * 100)
    days = _business_days(date(2026, 10, 1), date(2026, 10, 30))
    ids = kt.add_time_entries(
        [
            {
                "workspace_id": project.psa_workspace_id,
                "story_id": task["id"],
                "user_id": user,
                "date_performed": day.isoformat(),
                "time_in_minutes": 120,
                "billable": True,
                "rate_in_cents": rate,
                "currency": "GBP",
                "approved": True,
            }
            for day in days
        ]
    )
    result = post_now(hub, "time")
    failed = hub.read(
        lambda c: [r.error for r in c.execute(sa.select(posting).where(posting.c.status == "failed"))]
    )
    assert result["valid"] == len(days) and result["postings_failed"] == 0, failed
    sim.wait_idle()
    assert post_now(hub, "time")["postings_refused_later"] == 0

    # The month is split at the cutover: before it on the legacy ERP, from it on NetSuite, on its job there.
    before = sum(1 for d in days if d < CUTOVER)
    placed = {f.erp: f for f in where_posted(hub, "time", "2026-10").by_erp}
    assert (placed["legacy"].entries, placed["erp"].entries) == (before, len(days) - before)
    assert where_posted(hub, "time", "2026-10").in_several == []
    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert journals and all(j["tranDate"] >= CUTOVER.isoformat() for j in journals)
    assert {ln["entity"]["id"] for j in journals for ln in j["line"]["items"] if ln.get("entity")} == {
        str(job["id"])
    }
    # And the PSA's month reconciles against the two ERPs together.
    report = reconcile(hub, "time", "2026-10")
    assert report.breaks == []
    [line] = report.lines
    assert line.psa_count == line.erp_count == len(days)

    # An entry from after the cutover is corrected: its reversal goes to NetSuite, where its posting went.
    late = next(i for i, d in zip(ids, days, strict=True) if d >= CUTOVER)
    kt.update_time_entry(late, {"time_in_minutes": 60})
    again = post_now(hub, "time")
    assert again["reversal_postings"] == 1 and again["postings_failed"] == 0, again
    sim.wait_idle()
    assert not [
        r.key for r in hub.erp("legacy").posted("time", "2026-10") if "-R" in r.key
    ]  # no reversal there
    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert sum(1 for j in journals if j.get("custbody_q2c_reversal_of")) == 1
    assert reconcile(hub, "time", "2026-10").breaks == []
