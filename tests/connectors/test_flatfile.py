"""The flat-file ERP connector against the legacy ERP simulator, over a real folder.

Every test writes real files and lets the simulator's import job (a thread,
or one pass of it) take them; the last one runs the hub's flows with two ERPs
routed by legal entity: the NetSuite sandbox and the flat-file ERP.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from quote2cash.config import load_config
from quote2cash.connectors.flatfile import CONNECTOR, FlatFileClient, FlatFileErp, FlatFileSettings
from quote2cash.connectors.flatfile.adapter import postings_base
from quote2cash.errors import BusinessRuleError, VendorPayloadError
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.model import Customer, FinancialDimensions, Project
from quote2cash.ops.posting import post_now
from quote2cash.ops.reconciliation import reconcile
from quote2cash.ports import Accounts, ErpRefs, Posting
from quote2cash.registry import register
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.firm import Firm
from quote2cash.sandbox.flatfile import FlatFileErpSimulator
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes, seed
from quote2cash.store import cases
from quote2cash.store.tables import posting, project_registry
from tests.flows.conftest import FAST, add_deal, result_of

register(CONNECTOR)


# -- set-up ------------------------------------------------------------------------------------
@pytest.fixture
def sim(tmp_path: Path) -> Iterator[FlatFileErpSimulator]:
    """The legacy ERP on a fresh exchange folder (not watching until a test starts it)."""
    s = FlatFileErpSimulator(tmp_path / "legacy")
    yield s
    s.close()


def erp_for(folder: Path, **settings: object) -> FlatFileErp:
    config = FlatFileSettings.model_validate({"folder": str(folder), "cache_seconds": 0, **settings})
    erp = CONNECTOR.build("legacy", config, None, FAST)
    assert isinstance(erp, FlatFileErp)
    return erp


@pytest.fixture
def erp(sim: FlatFileErpSimulator) -> FlatFileErp:
    return erp_for(sim.folder)


def customer(name: str = "Aurora Ltd", website: str = "https://aurora.example") -> Customer:
    return Customer(
        source_system="salesforce", source_id="001A", name=name, website=website, legal_entity="UK01"
    )


def project(name: str = "Aurora — Delivery") -> Project:
    return Project(
        source_system="salesforce",
        source_id="006A",
        customer_id="001A",
        opportunity_id="006A",
        name=name,
        billing_model="time_and_materials",
        currency="GBP",
        start_date=date(2026, 10, 1),
        dimensions=FinancialDimensions(legal_entity="UK01", subsidiary="2", department="TECH"),
    )


def with_project(erp: FlatFileErp, sim: FlatFileErpSimulator, key: str = "Q2C-P-006A") -> str:
    """A customer and a project the ERP holds; returns the project's id for postings."""
    cust = erp.upsert_customer(customer(), "Q2C-C-001A", ErpRefs(subsidiary="2", currency="GBP", terms="30"))
    job = erp.upsert_project(
        project(), key, ErpRefs(subsidiary="2", currency="GBP", customer=cust, department="TECH")
    )
    sim.run_once()
    return job


def a_posting(
    key: str, job: str | None, *, minutes: int = 90, amount_minor: int = 27000, **kw: object
) -> Posting:
    values: dict[str, object] = {
        "key": key,
        "kind": "time",
        "mode": "summary",
        "project": "006A",
        "erp_project_id": job,
        "task_id": "T1",
        "legal_entity": "UK01",
        "subsidiary": "2",
        "department": "TECH",
        "period": "2026-10",
        "tran_date": date(2026, 10, 31),
        "billable": True,
        "minutes": minutes,
        "amount_minor": amount_minor,
        "currency": "GBP",
        "entries": 1,
        "accounts": Accounts(debit="1200", credit="4000"),
        **kw,
    }
    return Posting(**values)  # type: ignore[arg-type]


def outbound(sim: FlatFileErpSimulator, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in sim.outbound.glob(pattern))


# -- settings -------------------------------------------------------------------------------------
def test_a_flatfile_system_needs_a_folder_and_no_url(tmp_path: Path) -> None:
    settings = FlatFileSettings.model_validate({"folder": str(tmp_path)})
    assert settings.base_url is None and settings.folder == tmp_path
    with pytest.raises(ValueError, match="folder"):
        FlatFileSettings.model_validate({"kind": "flatfile"})


def test_a_missing_exchange_folder_is_transient(tmp_path: Path) -> None:
    erp = erp_for(tmp_path / "not-mounted")
    with pytest.raises(Exception) as caught:
        erp.master_data()
    assert (
        getattr(caught.value, "retryable", False)
        and getattr(caught.value, "code", "") == "vendor.unreachable"
    )


# -- master data and customers ----------------------------------------------------------------------
def test_master_data_is_read_from_the_erps_export(sim: FlatFileErpSimulator, erp: FlatFileErp) -> None:
    md = erp.master_data()
    assert md.subsidiaries == {"1": True, "2": True, "3": True, "4": True}
    assert md.currencies["GBP"] == "GBP" and md.terms["Net 30"] == "30"
    assert md.departments["Technology"] == "TECH" and "TECH" in md.active_departments
    october = next(p for p in md.periods if p.name == "2026-10")
    assert (october.start, october.end, october.closed) == (date(2026, 10, 1), date(2026, 10, 31), False)

    sim.close_period("2026-10")
    sim.set_department("TECH", False)
    md = erp.master_data(fresh=True)
    assert next(p for p in md.periods if p.name == "2026-10").closed
    assert "TECH" not in md.active_departments


def test_an_unreadable_master_data_export_names_the_field(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    (sim.inbound / "masterdata.json").write_text(json.dumps({"subsidiaries": [], "periods": []}))
    with pytest.raises(VendorPayloadError, match="currencies"):
        erp.master_data()


def test_customers_and_projects_are_upserted_idempotently(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    legacy = sim.add_customer("Basalt GmbH", website="https://basalt.example", subsidiary="3")
    refs = ErpRefs(subsidiary="2", currency="GBP", terms="30")
    assert erp.upsert_customer(customer(), "Q2C-C-001A", refs) == "Q2C-C-001A"
    assert erp.upsert_customer(customer(), "Q2C-C-001A", refs) == "Q2C-C-001A"  # a repeat: no second file
    assert outbound(sim, "customer_*.csv") == ["customer_Q2C-C-001A.csv"]
    sim.run_once()
    [held] = [c for c in sim.records("customer") if c["key"] == "Q2C-C-001A"]

    # A change is a new revision of the same customer, applied to the same ERP record.
    erp.upsert_customer(customer(name="Aurora Group Ltd"), "Q2C-C-001A", refs)
    erp.upsert_customer(customer(name="Aurora Group Ltd"), "Q2C-C-001A", refs)
    assert outbound(sim, "customer_*.csv") == ["customer_Q2C-C-001A.csv", "customer_Q2C-C-001A.r2.csv"]
    sim.run_once()
    [again] = [c for c in sim.records("customer") if c["key"] == "Q2C-C-001A"]
    assert again["erp_id"] == held["erp_id"] and again["name"] == "Aurora Group Ltd"

    # Identity matching sees the ERP's own customers and the hub's.
    found = {c.name: c for c in erp_for(sim.folder).customers()}
    assert found["Basalt GmbH"].id == legacy and found["Basalt GmbH"].external_id is None
    assert found["Aurora Group Ltd"].id == "Q2C-C-001A"

    job = erp.upsert_project(project(), "Q2C-P-006A", ErpRefs(subsidiary="2", customer="Q2C-C-001A"))
    erp.upsert_project(project(), "Q2C-P-006A", ErpRefs(subsidiary="2", customer="Q2C-C-001A"))
    sim.run_once()
    assert [p["key"] for p in sim.records("project")] == [job] == ["Q2C-P-006A"]
    erp.delete_project(job)
    erp.delete_project("Q2C-P-NEVER")  # already gone is success
    sim.run_once()
    assert sim.records("project") == []
    assert all(refused == 0 for _, refused in sim.imported().values())


# -- postings: names, atomicity, manifests -------------------------------------------------------------
def test_the_same_postings_twice_are_the_same_file_and_one_record_each(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    batch = [a_posting(f"TS-{i}", job, amount_minor=10000 + i) for i in range(3)]
    first = erp.post(batch)
    again = erp.post(list(reversed(batch)))  # a resend after a crash, in any order
    stem = postings_base("time", [p.key for p in batch])
    assert [r.erp_id for r in first] == [f"file:{stem}.csv#{n}" for n in (1, 2, 3)]
    assert {r.key: r.erp_id for r in again} == {r.key: r.erp_id for r in first}
    assert outbound(sim, "postings_*") == [f"{stem}.csv", f"{stem}.manifest.json"]
    sim.run_once()
    # The same postings in another batch (a different file) are still one record each.
    other = erp_for(sim.folder)
    results = other.post([batch[1], a_posting("TS-9", job)])
    assert results[0].erp_id and results[0].erp_id.startswith("JE-")
    sim.run_once()
    assert sorted(r["key"] for r in sim.records("postings")) == ["TS-0", "TS-1", "TS-2", "TS-9"]


def test_a_crash_before_the_rename_leaves_no_file_for_the_erp(
    sim: FlatFileErpSimulator, tmp_path: Path
) -> None:
    job = with_project(erp_for(sim.folder), sim)
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import date
        from pathlib import Path
        from quote2cash.connectors.flatfile.client import FlatFileClient
        from quote2cash.connectors.flatfile.adapter import FlatFileErp
        from quote2cash.connectors.flatfile.settings import FlatFileSettings
        from quote2cash.ports import Accounts, Posting

        def die(src, dst):  # the process is killed after the fsync, before the rename
            os.kill(os.getpid(), signal.SIGKILL)

        folder = Path({str(sim.folder)!r})
        erp = FlatFileErp("legacy", FlatFileClient(folder, replace=die), FlatFileSettings(folder=folder))
        erp.post([Posting(key="TS-1", kind="time", mode="summary", project="006A", erp_project_id={job!r},
                  task_id=None, legal_entity="UK01", subsidiary="2", department="TECH", period="2026-10",
                  tran_date=date(2026, 10, 31), billable=True, minutes=60, amount_minor=18000,
                  currency="GBP", entries=1, accounts=Accounts("1200", "4000"))])
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    leftovers = sorted(p.name for p in sim.outbound.iterdir() if "postings" in p.name)
    assert len(leftovers) == 1 and leftovers[0].startswith(".postings_") and leftovers[0].endswith(".tmp")
    assert sim.run_once() == [] and sim.records("postings") == []

    # The hub's next run writes the same file whole; the ERP takes it once.
    [result] = erp_for(sim.folder).post([a_posting("TS-1", job, minutes=60, amount_minor=18000)])
    assert result.erp_id == f"file:{postings_base('time', ['TS-1'])}.csv#1"
    assert not [p for p in sim.outbound.iterdir() if p.name.endswith(".tmp")]
    sim.run_once()
    assert [(r["key"], r["amount"]) for r in sim.records("postings")] == [("TS-1", "180.00")]


def test_a_file_without_its_manifest_is_not_imported_until_it_is_completed(
    sim: FlatFileErpSimulator,
) -> None:
    job = with_project(erp_for(sim.folder), sim)
    calls = []

    def replace_then_die(src: Path, dst: Path) -> None:
        calls.append(dst.name)
        if dst.name.endswith(".manifest.json"):
            raise KeyboardInterrupt("killed before the manifest")
        src.replace(dst)

    erp = FlatFileErp(
        "legacy", FlatFileClient(sim.folder, replace=replace_then_die), FlatFileSettings(folder=sim.folder)
    )
    with pytest.raises(KeyboardInterrupt):
        erp.post([a_posting("TS-1", job)])
    stem = postings_base("time", ["TS-1"])
    assert outbound(sim, "postings_*") == [f"{stem}.csv"]
    assert sim.run_once() == []  # no manifest: the ERP does not take it

    erp_for(sim.folder).post([a_posting("TS-1", job)])
    assert outbound(sim, "postings_*") == [f"{stem}.csv", f"{stem}.manifest.json"]
    assert sim.run_once() == [stem]
    assert len(sim.records("postings")) == 1


def test_a_file_changed_after_its_manifest_is_refused_whole(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    erp.post([a_posting("TS-1", job), a_posting("TS-2", job)])
    stem = postings_base("time", ["TS-1", "TS-2"])
    path = sim.outbound / f"{stem}.csv"
    path.write_bytes(path.read_bytes().replace(b"270.00", b"2700.00"))
    sim.run_once()
    assert sim.records("postings") == []
    rejected = (sim.inbound / f"{stem}.rej.csv").read_text()
    assert "MANIFEST_MISMATCH" in rejected and ",*," in rejected
    with pytest.raises(VendorPayloadError, match="does not match its manifest"):
        erp_for(sim.folder).posted("time", "2026-10")


def test_different_content_under_a_published_key_is_refused(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    erp.post([a_posting("TS-1", job)])
    [result] = erp.post([a_posting("TS-1", job, amount_minor=99900)])
    assert result.erp_id is None and result.error is not None
    assert (
        result.error["code"] == "erp.posting_rejected"
        and result.error["details"]["vendor_code"] == "FILE_CONFLICT"
    )
    client = FlatFileClient(sim.folder)
    base = postings_base("time", ["TS-1"])
    with pytest.raises(BusinessRuleError, match="refusing to overwrite"):
        client.publish(base, [["TS-1", *["x"] * 19]], mutable=False)
    sim.run_once()
    assert [r["amount"] for r in sim.records("postings")] == ["270.00"]


# -- answers --------------------------------------------------------------------------------------------
def test_acknowledged_postings_are_read_back_with_exact_totals(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    batch = [
        a_posting("TS-1", job, minutes=90, amount_minor=27001),
        a_posting("TS-2", job, minutes=45, amount_minor=13050, billable=False),
        a_posting("TS-3", job, minutes=-90, amount_minor=-27001, reversal_of="TS-1"),
        a_posting("TS-X", job, period="2026-11", tran_date=date(2026, 11, 2)),
    ]
    erp.post(batch)
    assert erp.posted("time", "2026-10") == []  # not answered yet
    sim.start()
    sim.wait_idle()
    posted = erp.posted("time", "2026-10")
    assert sorted(r.key for r in posted) == ["TS-1", "TS-2", "TS-3"]
    assert sum(r.amount for r in posted) == Decimal("130.50")
    assert sum(r.hours for r in posted) == Decimal("0.75")
    held = {r["key"]: r["erp_id"] for r in sim.records("postings")}
    assert {r.key: r.erp_id for r in posted} == {k: v for k, v in held.items() if k != "TS-X"}
    assert erp.posted("expense", "2026-10") == [] and erp.rejections() == []


def test_a_refused_posting_is_surfaced_with_its_reason(sim: FlatFileErpSimulator, erp: FlatFileErp) -> None:
    job = with_project(erp, sim)
    sim.close_period("2026-09")
    sim.set_department("OPS", False)
    sim.reject("TS-5", "LEDGER_LOCKED", "the ledger is locked for the audit")
    results = erp.post(
        [
            a_posting("TS-1", job),
            a_posting("TS-2", job, period="2026-09", tran_date=date(2026, 9, 30)),
            a_posting("TS-3", job, department="OPS"),
            a_posting("TS-4", "Q2C-P-UNKNOWN"),
            a_posting("TS-5", job),
        ]
    )
    assert all(r.error is None for r in results)  # the ERP has not answered yet
    sim.run_once()
    refused = {r.key: r.error for r in erp.rejections()}
    assert sorted(refused) == ["TS-2", "TS-3", "TS-4", "TS-5"]
    assert refused["TS-2"] is not None and refused["TS-2"]["code"] == "erp.period_closed"
    assert "2026-09-30 falls in no open accounting period" in refused["TS-2"]["message"]
    assert refused["TS-3"] is not None and refused["TS-3"]["details"]["vendor_code"] == "DEPARTMENT_INACTIVE"
    assert refused["TS-4"] is not None and refused["TS-4"]["details"]["vendor_code"] == "UNKNOWN_PROJECT"
    # A code the hub does not know is not guessed at: unreadable, with the ERP's reason kept.
    assert refused["TS-5"] is not None and refused["TS-5"]["code"] == "vendor.malformed_payload"
    assert "the ledger is locked for the audit" in refused["TS-5"]["message"]
    assert [r.key for r in erp.posted("time", "2026-10")] == ["TS-1"]

    # Once finance reopens the period, the same posting is sent again and accepted.
    sim.close_period("2026-09", closed=False)
    [again] = erp.post([a_posting("TS-2", job, period="2026-09", tran_date=date(2026, 9, 30))])
    assert again.erp_id == f"file:{postings_base('time', ['TS-2'])}.csv#1"
    sim.run_once()
    assert sorted(erp.rejections(kind="time"), key=lambda r: r.key)[0].key == "TS-3"
    assert "TS-2" not in {r.key for r in erp.rejections()}
    assert [r.key for r in erp.posted("time", "2026-09")] == ["TS-2"]


def test_an_unreadable_acknowledgement_file_is_a_payload_error(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    erp.post([a_posting("TS-1", job), a_posting("TS-2", job)])
    stem = postings_base("time", ["TS-1", "TS-2"])
    ack = sim.inbound / f"{stem}.ack.csv"
    ack.write_text("row,key,status,erp_id\r\n1,TS-1,accepted,JE-1\r\n")  # row 2 unanswered
    with pytest.raises(VendorPayloadError, match="rows unanswered \\[2\\]"):
        erp.posted("time", "2026-10")
    ack.write_text("row,key,status,erp_id\r\n1,TS-1,accepted,JE-1\r\n2,TS-7,accepted,JE-2\r\n")
    with pytest.raises(VendorPayloadError, match="which the file does not hold"):
        erp_for(sim.folder).posted("time", "2026-10")
    ack.write_text("key;status\r\n")
    with pytest.raises(VendorPayloadError, match="header"):
        erp_for(sim.folder).posted("time", "2026-10")


def test_an_import_stopped_mid_file_resumes_without_duplicates(
    sim: FlatFileErpSimulator, erp: FlatFileErp
) -> None:
    job = with_project(erp, sim)
    erp.post([a_posting(f"TS-{i}", job) for i in range(4)])
    sim.crash_after(2)
    sim.start()
    deadline = time.monotonic() + 10
    while sim.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.crashed and not sim.running
    before = {r["key"]: r["erp_id"] for r in sim.records("postings")}
    assert sorted(before) == ["TS-0", "TS-1"] and erp.posted("time", "2026-10") == []

    sim.start()
    sim.wait_idle()
    after = {r["key"]: r["erp_id"] for r in sim.records("postings")}
    assert sorted(after) == ["TS-0", "TS-1", "TS-2", "TS-3"]
    assert {k: after[k] for k in before} == before
    assert {r.key: r.erp_id for r in erp.posted("time", "2026-10")} == after


def test_waiting_for_the_answer_returns_the_erps_ids_and_refusals(sim: FlatFileErpSimulator) -> None:
    erp = erp_for(sim.folder, ack_wait_seconds=10, poll_seconds=0.01)
    sim.start()
    job = with_project(erp, sim)
    sim.close_period("2026-09")
    ok, refused = erp.post([a_posting("TS-1", job), a_posting("TS-2", job, tran_date=date(2026, 9, 1))])
    assert ok.erp_id == next(r["erp_id"] for r in sim.records("postings")) and ok.error is None
    assert (
        refused.erp_id is None and refused.error is not None and refused.error["code"] == "erp.period_closed"
    )
    with pytest.raises(BusinessRuleError, match="SUBSIDIARY_INACTIVE") as caught:
        erp.upsert_customer(customer(), "Q2C-C-002", ErpRefs(subsidiary="9", currency="GBP"))
    assert caught.value.code == "vendor.rejected"


# -- the hub's flows with two ERPs ---------------------------------------------------------------------------
@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[Sandboxes]:
    """The three sandboxes with the demo firm's master data and no deals."""
    sb = Sandboxes.open(tmp_path / "sandboxes").start()
    seed(Firm(seed=0), sb)
    yield sb
    sb.stop()


@pytest.fixture
def routed_hub(db_url: str, boxes: Sandboxes, sim: FlatFileErpSimulator) -> Iterator[Hub]:
    raw = boxes.config(db_url)
    raw["systems"]["legacy_uk"] = {"kind": CONNECTOR.kind, "folder": str(sim.folder)}
    raw["erp_routing"] = {"rules": [{"system": "legacy_uk", "legal_entities": ["UK01"]}], "default": "erp"}
    sim.start()
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    yield hub
    hub.shutdown()


def test_netsuite_and_the_flatfile_erp_routed_by_legal_entity(
    routed_hub: Hub, boxes: Sandboxes, sim: FlatFileErpSimulator
) -> None:
    hub = routed_hub
    legacy = hub.systems["legacy_uk"]
    assert isinstance(legacy, FlatFileErp)
    _, us = add_deal(boxes, region="North America", currency="USD")
    _, uk = add_deal(boxes, region="UK & Ireland", currency="GBP")
    poll_closed_won(hub)
    assert result_of(workflow_id(us))["status"] == "completed"
    assert result_of(workflow_id(uk))["status"] == "completed"
    sim.wait_idle()

    # Each deal's customer and project went to its legal entity's ERP only.
    assert [j["externalId"] for j in boxes.netsuite.records("job")] == [f"Q2C-P-{us}"]
    assert [p["key"] for p in sim.records("project")] == [f"Q2C-P-{uk}"]
    assert len(sim.records("customer")) == 1 and len(boxes.netsuite.records("customer")) == 1
    projects = hub.read(
        lambda c: {r["canonical_id"]: dict(r) for r in c.execute(sa.select(project_registry)).mappings()}
    )
    assert projects[us]["erp"] == "erp" and projects[uk]["erp"] == "legacy_uk"

    kt = boxes.kantata
    users = {u["headline"]: str(u["id"]) for u in kt.records("users")}
    consultant = users.get("Consultant") or kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    rates = {code: card.rates["Consultant"] for code, card in hub.config.rate_cards.items()}
    entries = []
    for opp, currency in ((us, "USD"), (uk, "GBP")):
        ws = projects[opp]["psa_workspace_id"]
        task = next(
            s for s in kt.records("stories") if str(s["workspace_id"]) == ws and s["story_type"] == "task"
        )
        for day in ("2026-10-13", "2026-10-14", "2026-10-15"):
            entries.append(
                {
                    "workspace_id": ws,
                    "story_id": task["id"],
                    "user_id": consultant,
                    "date_performed": day,
                    "time_in_minutes": 90,
                    "billable": True,
                    "rate_in_cents": int(rates[f"STD-{currency}"] * 100),
                    "currency": currency,
                    "approved": True,
                }
            )
    kt.add_time_entries(entries)
    result = post_now(hub, "time")
    assert result["valid"] == 6 and result["quarantined"] == 0 and result["postings_failed"] == 0

    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert [j["custbody_q2c_project"] for j in journals] == [us]
    sim.wait_idle()
    [uk_posting] = sim.records("postings")
    expected = (Decimal(rates["STD-GBP"]) * Decimal("4.5")).quantize(Decimal("0.01"))
    assert (uk_posting["project"], uk_posting["currency"], uk_posting["minutes"]) == (uk, "GBP", "270")
    assert Decimal(uk_posting["amount"]) == expected
    erp_ids = hub.read(
        lambda c: {r.project: r.erp_id for r in c.execute(sa.select(posting.c.project, posting.c.erp_id))}
    )
    assert erp_ids[uk].startswith("file:postings_time_") and erp_ids[uk].endswith(".csv#1")

    # Reconciliation reads the acknowledgements back: both ERPs agree with the PSA.
    report = reconcile(hub, "time", "2026-10")
    assert report.breaks == [] and {ln.project for ln in report.lines} == {us, uk}
    assert legacy.rejections() == []

    # A posting the legacy ERP refuses later (its import job runs after the write) becomes a
    # case in the next run, and the posting is no longer counted as posted.
    sim.reject("*", "PERIOD_CLOSED", "October is closed in the legacy ledger")
    ws = projects[uk]["psa_workspace_id"]
    task = next(
        s for s in kt.records("stories") if str(s["workspace_id"]) == ws and s["story_type"] == "task"
    )
    kt.add_time_entries(
        [
            {
                "workspace_id": ws,
                "story_id": task["id"],
                "user_id": consultant,
                "date_performed": "2026-10-20",
                "time_in_minutes": 60,
                "billable": True,
                "rate_in_cents": int(rates["STD-GBP"] * 100),
                "currency": "GBP",
                "approved": True,
            }
        ]
    )
    first = post_now(hub, "time")
    sim.wait_idle()
    again = post_now(hub, "time")  # the refusal is read in the run that sent it, or in the next one
    assert first["postings_refused_later"] + again["postings_refused_later"] == 1
    [case] = hub.read(cases.list_cases)
    assert case["owner"] == "finance" and "October is closed" in case["message"]
    statuses = hub.read(lambda c: sorted(r.status for r in c.execute(sa.select(posting.c.status))))
    assert statuses.count("failed") == 1
