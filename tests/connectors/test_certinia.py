"""The Certinia PSA connector against the Salesforce sandbox over loopback HTTP, and the hub's
lead-to-project and posting flows with Certinia as the PSA (Salesforce CRM, NetSuite ERP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.config import load_config
from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.certinia import CONNECTOR, CertiniaPsa, CertiniaSettings
from quote2cash.connectors.certinia.work import pages
from quote2cash.errors import AuthError, BusinessRuleError
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.flows.posting import post_now
from quote2cash.flows.reconcile_work import reconcile
from quote2cash.model import BillingModel, FinancialDimensions, Money, Project, ResourceRequest
from quote2cash.ports import Psa, PsaBilling, WorkPage
from quote2cash.registry import connector, register
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.firm import ENTITIES, PRACTICES, TEMPLATES, Firm
from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.salesforce import certinia as pse
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes, seed
from quote2cash.store.tables import project_registry, work_entry

from ..flows.conftest import add_deal, result_of

FAST = RetryPolicy(max_attempts=4, initial_interval=0.01, max_interval=0.05)
EPOCH = "1970-01-01T00:00:00.000000Z"
MONDAY = date(2026, 10, 12)


def catalogue(box: SalesforceSandbox) -> dict[str, dict[str, str]]:
    """The demo firm's PSA catalogue, and two resources."""
    return pse.seed_catalogue(
        box,
        regions=[e.region for e in ENTITIES],
        practices=PRACTICES,
        templates=TEMPLATES,
        consultants=[
            {"full_name": "Ada Lovelace", "headline": "Consultant", "email": "ada@northwind.example"},
            {"full_name": "Bo Chen", "headline": "Engagement Manager", "email": "bo@northwind.example"},
        ],
    )


def settings(box: SalesforceSandbox, secret: str = "sandbox-secret") -> CertiniaSettings:
    return CertiniaSettings(
        base_url=box.url,
        client_id="q2c",
        client_secret_env="Q2C_SF_SECRET",
        secrets={"client_secret": secret},
    )


@pytest.fixture
def box() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox()
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def ids(box: SalesforceSandbox) -> dict[str, dict[str, str]]:
    return catalogue(box)


@pytest.fixture
def psa(box: SalesforceSandbox, ids: dict[str, dict[str, str]]) -> Iterator[CertiniaPsa]:
    register(CONNECTOR)
    adapter = connector("certinia").build("psa", settings(box), None, FAST)
    assert isinstance(adapter, CertiniaPsa) and isinstance(adapter, Psa)
    yield adapter
    adapter.close()


def project(billing: BillingModel = BillingModel.TIME_AND_MATERIALS, **kw: Any) -> Project:
    fields: dict[str, Any] = {
        "source_system": "salesforce",
        "source_id": "deal-1",
        "customer_id": None,
        "opportunity_id": "deal-1",
        "name": "Acme — Delivery",
        "billing_model": billing,
        "currency": "USD",
        "start_date": date(2026, 12, 1),
        "end_date": date(2027, 3, 31),
        "budget": Money.of(Decimal("48000"), "USD"),
        "dimensions": FinancialDimensions(legal_entity="US01", region="North America", practice="Technology"),
    }
    return Project(**{**fields, **kw})


def children(box: SalesforceSandbox, sobject: str, project_id: str) -> list[dict[str, Any]]:
    return [r for r in box.records(sobject) if r["pse__Project__c"] == project_id]


def read_all(psa: CertiniaPsa, kind: str, since: str) -> tuple[list[WorkPage], str]:
    got = list(psa.work_pages(kind, since))  # type: ignore[arg-type]
    return got, (got[-1].last if got else since)


# -- projects and staffing ---------------------------------------------------------------------
def test_project_from_the_template_of_its_billing_type(
    psa: CertiniaPsa, box: SalesforceSandbox, ids: dict[str, dict[str, str]]
) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    record = box.get("pse__Proj__c", project_id)
    assert record["Hub_Ext_Id__c"] == "Q2C-deal-1" and record["pse__Is_Template__c"] is False
    assert record["pse__Billing_Type__c"] == "Time and Materials" and record["CurrencyIsoCode"] == "USD"
    assert record["pse__Region__c"] == ids["regions"]["North America"]
    assert record["pse__Practice__c"] == ids["practices"]["Technology"]
    assert (record["pse__Start_Date__c"], record["pse__End_Date__c"]) == ("2026-12-01", "2027-03-31")
    assert record["pse__Bookings__c"] == 48000
    # The template's milestones and tasks are copied, moved from its start (2026-01-05) to the project's.
    milestones = sorted(
        children(box, "pse__Milestone__c", project_id), key=lambda m: m["pse__Target_Date__c"]
    )
    assert [(m["Name"], m["pse__Target_Date__c"]) for m in milestones] == [
        ("Discovery", "2026-12-30"),
        ("Delivery", "2027-01-29"),
        ("Handover", "2027-02-28"),
    ]
    tasks = children(box, "pse__Project_Task__c", project_id)
    assert {t["pse__Milestone__c"] for t in tasks} == {m["Id"] for m in milestones}
    assert sorted(t["pse__Start_Date_Time__c"] for t in tasks)[0] == "2026-12-01T09:00:00.000Z"
    # A repeat finds it by the reference; one after a lost answer upserts the same records again.
    assert psa.ensure_project(project(), "Q2C-deal-1") == project_id
    assert psa.ensure_project(project(), "Q2C-deal-1", known_absent=True) == project_id
    assert len([p for p in box.records("pse__Proj__c") if not p["pse__Is_Template__c"]]) == 1
    assert len(children(box, "pse__Milestone__c", project_id)) == 3
    assert len(children(box, "pse__Project_Task__c", project_id)) == 3
    fixed = psa.ensure_project(project(BillingModel.FIXED_FEE), "Q2C-deal-2", known_absent=True)
    assert len(children(box, "pse__Milestone__c", fixed)) == len(TEMPLATES["Fixed-Fee Delivery"])


def test_a_found_project_gets_the_template_records_it_is_missing(
    psa: CertiniaPsa, box: SalesforceSandbox
) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    first = children(box, "pse__Milestone__c", project_id)[0]
    box.delete("pse__Milestone__c", first["Id"])  # as if the copy had stopped half-way
    assert psa.ensure_project(project(), "Q2C-deal-1") == project_id
    assert sorted(m["Name"] for m in children(box, "pse__Milestone__c", project_id)) == sorted(
        TEMPLATES["T&M Delivery"]
    )


def test_projects_link_the_crm_records_of_the_same_org(psa: CertiniaPsa, box: SalesforceSandbox) -> None:
    account = box.insert("Account", {"Name": "Acme"})
    opp = box.insert(
        "Opportunity",
        {"AccountId": account, "Name": "Acme deal", "StageName": "Closed Won", "CloseDate": "2026-11-20"},
    )
    project_id = psa.ensure_project(project(customer_id=account, opportunity_id=opp), opp, known_absent=True)
    record = box.get("pse__Proj__c", project_id)
    assert (record["pse__Account__c"], record["pse__Opportunity__c"]) == (account, opp)


def test_missing_template_region_or_role_goes_to_the_pmo(psa: CertiniaPsa, box: SalesforceSandbox) -> None:
    for template in [p for p in box.records("pse__Proj__c") if p["pse__Billing_Type__c"] == "Retainer"]:
        box.delete("pse__Proj__c", template["Id"])
    with pytest.raises(BusinessRuleError) as no_template:
        psa.ensure_project(project(BillingModel.RETAINER), "Q2C-r", known_absent=True)
    assert no_template.value.code == "psa.template_missing" and "'Retainer'" in no_template.value.message
    lunar = project(dimensions=FinancialDimensions(legal_entity="US01", region="Moon"))
    with pytest.raises(BusinessRuleError) as no_region:
        psa.ensure_project(lunar, "Q2C-m", known_absent=True)
    assert no_region.value.code == "psa.region_unknown"
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    request = ResourceRequest(
        project_id=project_id, role="Astronaut", start_date=date(2026, 12, 1), hours=Decimal(8)
    )
    with pytest.raises(BusinessRuleError) as no_role:
        psa.ensure_staffing(project_id, [request])
    assert no_role.value.code == "psa.role_unknown" and "'Astronaut'" in no_role.value.message
    assert box.records("pse__Resource_Request__c") == []


def test_resource_requests_by_role_are_raised_once(psa: CertiniaPsa, box: SalesforceSandbox) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    requests = [
        ResourceRequest(
            project_id=project_id,
            role=role,
            start_date=date(2026, 12, 1),
            end_date=date(2027, 3, 31),
            hours=Decimal(hours),
            reference=f"q2c-line:{n}",
        )
        for n, (role, hours) in enumerate([("Consultant", 80), ("Engagement Manager", 20)])
    ]
    assert psa.ensure_staffing(project_id, requests, known_empty=True) == 2
    raised = children(box, "pse__Resource_Request__c", project_id)
    assert sorted((r["pse__Resource_Role__c"], r["pse__SOW_Hours__c"]) for r in raised) == [
        ("Consultant", 80),
        ("Engagement Manager", 20),
    ]
    assert {r["pse__Status__c"] for r in raised} == {"Ready to Staff"}
    box.update("pse__Resource_Request__c", raised[0]["Id"], {"pse__Status__c": "Assigned"})
    assert psa.ensure_staffing(project_id, requests) == 2  # a repeat raises nothing, changes nothing
    again = children(box, "pse__Resource_Request__c", project_id)
    assert len(again) == 2 and "Assigned" in {r["pse__Status__c"] for r in again}
    psa.delete_project(project_id)
    psa.delete_project(project_id)  # already gone is success
    assert children(box, "pse__Resource_Request__c", project_id) == []
    assert children(box, "pse__Milestone__c", project_id) == []


# -- billing (F6, F8) --------------------------------------------------------------------------
def test_certinia_reports_milestones_and_projects_for_billing(
    psa: CertiniaPsa, box: SalesforceSandbox
) -> None:
    assert isinstance(psa, PsaBilling)
    fixed = psa.ensure_project(project(BillingModel.FIXED_FEE), "Q2C-deal-1", known_absent=True)
    other = psa.ensure_project(project(BillingModel.MILESTONE, name="Beta — Phases"), "Q2C-deal-2")
    stones = psa.milestones({fixed})
    # The template's phases, in target-date order, due on the dates moved to the project's start.
    assert [m.name for m in stones] == TEMPLATES["Fixed-Fee Delivery"]
    assert [m.due_date for m in stones] == sorted(m.due_date for m in stones if m.due_date)
    assert stones[0].due_date == date(2026, 12, 30)
    assert {m.workspace_id for m in stones} == {fixed}
    assert not any(m.completed or m.completed_at for m in stones)
    # Approving the first milestone is its sign-off; closing another for time entry is not.
    box.update("pse__Milestone__c", stones[0].id, {"pse__Status__c": "Approved", "pse__Approved__c": True})
    psa.close_milestone(stones[1].id)
    again = {m.id: m for m in psa.milestones({fixed, other})}
    assert len(again) == len(TEMPLATES["Fixed-Fee Delivery"]) + len(TEMPLATES["Milestone Delivery"])
    signed = again[stones[0].id]
    assert signed.completed and signed.completed_at is not None and signed.completed_at.tzinfo is not None
    assert [m.id for m in again.values() if m.completed] == [stones[0].id]
    assert psa.milestones(set()) == []
    # Every project but the templates, with the hub's reference where it carries one.
    by_id = {p.id: p for p in psa.projects()}
    box.insert("pse__Proj__c", {"Name": "Internal — Bench"})
    by_id_after = {p.id: p for p in psa.projects()}
    assert (by_id[fixed].reference, by_id[other].reference) == ("Q2C-deal-1", "Q2C-deal-2")
    assert by_id[other].name == "Beta — Phases" and len(by_id) == 2
    assert [p.reference for i, p in by_id_after.items() if i not in by_id] == [None]


def test_billed_to_date_is_written_back(psa: CertiniaPsa, box: SalesforceSandbox) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    psa.write_back_billed(project_id, Money.of(Decimal("12345.67"), "USD"))
    psa.write_back_billed(project_id, Money.of(Decimal("12345.67"), "USD"))  # the same write again
    assert box.get("pse__Proj__c", project_id)["Billed_To_Date__c"] == 12345.67
    with pytest.raises(BusinessRuleError) as wrong:
        psa.write_back_billed(project_id, Money.of(Decimal("10"), "EUR"))
    assert wrong.value.code == "psa.currency_mismatch"
    assert box.get("pse__Proj__c", project_id)["Billed_To_Date__c"] == 12345.67


def test_rejected_credentials_are_an_auth_error(box: SalesforceSandbox, ids: dict[str, Any]) -> None:
    adapter = CONNECTOR.build("psa", settings(box, secret="wrong"), None, FAST)
    assert isinstance(adapter, CertiniaPsa)
    with pytest.raises(AuthError) as err:
        adapter.master_data("time", set())
    assert err.value.system == "certinia"  # the PSA is named, not the CRM whose client it shares
    adapter.close()


# -- delivered work ----------------------------------------------------------------------------
def test_a_week_of_timecards_becomes_one_row_per_day(
    psa: CertiniaPsa, box: SalesforceSandbox, ids: dict[str, dict[str, str]]
) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    milestone = children(box, "pse__Milestone__c", project_id)[0]["Id"]
    ada = ids["resources"]["Ada Lovelace"]
    header = pse.add_timecard(
        box, project_id, ada, MONDAY, [8, 7.5, 0, 4, 8], billable=True, bill_rate=180, milestone=milestone
    )
    got, _ = read_all(psa, "time", EPOCH)
    [page] = got
    stamp = box.get("pse__Timecard_Header__c", header)["SystemModstamp"]
    live = [r for r in page.rows if not r["deleted"]]
    assert [(r["source_id"], r["work_date"], r["minutes"], r["amount_minor"]) for r in live] == [
        (f"{header}/mon", date(2026, 10, 12), 480, 144000),
        (f"{header}/tue", date(2026, 10, 13), 450, 135000),
        (f"{header}/thu", date(2026, 10, 15), 240, 72000),
        (f"{header}/fri", date(2026, 10, 16), 480, 144000),
    ]
    assert {r["source_id"][-3:] for r in page.rows if r["deleted"]} == {"wed", "sat", "sun"}
    assert {
        (r["version"], r["approved"], r["workspace_id"], r["user_id"], r["task_id"]) for r in page.rows
    } == {(stamp, True, project_id, ada, milestone)}
    assert all(r["rate_minor"] == 18000 and r["currency"] == "USD" and r["billable"] for r in live)
    assert page.last == stamp and len(page.created) == len(page.rows) == 7
    # Reconciliation sees the approved days in the range only.
    in_range = list(psa.approved_work("time", date(2026, 10, 13), date(2026, 10, 15)))
    assert [(r["id"], r["minutes"]) for r in in_range] == [(f"{header}/tue", 450), (f"{header}/thu", 240)]
    md = psa.master_data("time", {project_id})
    assert md.task_states[milestone] == (project_id, "open")
    assert md.roles[ada] == "Consultant" and md.names[ada] == "Ada Lovelace"
    psa.close_milestone(milestone)
    assert psa.master_data("time", {project_id}).task_states[milestone] == (project_id, "closed")


def test_expenses_feed_and_reconcile(
    psa: CertiniaPsa, box: SalesforceSandbox, ids: dict[str, dict[str, str]]
) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    ada = ids["resources"]["Ada Lovelace"]
    paid = pse.add_expense(box, project_id, ada, date(2026, 10, 8), Decimal("420.00"), billable=True)
    company = pse.add_expense(box, project_id, ada, date(2026, 10, 9), Decimal("80.5"), reimbursable=False)
    pse.add_expense(box, project_id, ada, date(2026, 10, 9), Decimal("15"), status="Submitted")
    got, _ = read_all(psa, "expense", EPOCH)
    rows = {r["source_id"]: r for page in got for r in page.rows}
    assert (rows[paid]["amount_minor"], rows[paid]["reimbursable"], rows[paid]["category"]) == (
        42000,
        True,
        "Travel",
    )
    assert (rows[company]["amount_minor"], rows[company]["reimbursable"]) == (8050, False)
    assert sum(r["approved"] for r in rows.values()) == 2
    approved = list(psa.approved_work("expense", date(2026, 10, 1), date(2026, 10, 31)))
    assert sorted(r["amount_minor"] for r in approved) == [8050, 42000]


def test_the_cursor_reads_every_change_once(
    psa: CertiniaPsa, box: SalesforceSandbox, ids: dict[str, dict[str, str]]
) -> None:
    project_id = psa.ensure_project(project(), "Q2C-deal-1", known_absent=True)
    ada, bo = ids["resources"]["Ada Lovelace"], ids["resources"]["Bo Chen"]
    seen: list[tuple[str, str]] = []
    cursor = EPOCH
    weeks = [date.fromordinal(MONDAY.toordinal() - 7 * n) for n in range(6)]
    headers = [
        pse.add_timecard(box, project_id, ada, week, [8, 8, 8, 8, 8], status="Submitted") for week in weeks
    ]
    for round_ in range(3):
        got, cursor = read_all(psa, "time", cursor)
        seen.extend((r["source_id"], r["version"]) for page in got for r in page.rows)
        # Between reads: approvals, a new week, a deletion.
        if round_ == 0:
            for h in headers[:3]:
                box.update("pse__Timecard_Header__c", h, {"pse__Status__c": "Approved"})
            pse.add_timecard(box, project_id, bo, MONDAY, [4])
        elif round_ == 1:
            box.delete("pse__Timecard_Header__c", headers[5])
    assert len(seen) == len(set(seen))  # no change read twice
    versions: dict[str, set[str]] = {}
    for sid, version in seen:
        versions.setdefault(sid, set()).add(version)
    assert len(versions) == 7 * 7  # six weeks of Ada's and one of Bo's: every day read
    assert all(len(versions[f"{h}/mon"]) == 2 for h in headers[:3])  # submitted, then approved
    assert len(versions[f"{headers[5]}/mon"]) == 2  # submitted, then deleted
    assert read_all(psa, "time", cursor)[0] == []


def test_pages_end_only_where_the_stamp_changes() -> None:
    def header(n: int, stamp: str) -> dict[str, Any]:
        return {
            "Id": f"a0IHp{n:010d}AAA",
            "SystemModstamp": stamp,
            "CreatedDate": stamp,
            "pse__Project__c": "a0CHp0000000001AAA",
            "pse__Start_Date__c": "2026-10-12",
            "CurrencyIsoCode": "USD",
            "pse__Monday_Hours__c": 1,
        }

    stamps = ["2026-10-01T00:00:00.001+0000"] * 3 + ["2026-10-01T00:00:00.002+0000"] * 2
    records = [header(n, s) for n, s in enumerate(stamps)]
    got = list(pages("time", records, size=2))
    assert [len(p.created) // 7 for p in got] == [3, 2]  # three records share the first stamp
    assert [p.last for p in got] == [stamps[0], stamps[-1]]
    broken = [header(9, stamps[0]) | {"pse__Start_Date__c": None}, header(10, stamps[1])]
    [page] = list(pages("time", broken))
    assert len(page.rows) == 7 and page.unreadable[0][1]["id"] == broken[0]["Id"]


# -- the hub's flows with Certinia as the PSA --------------------------------------------------
@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Callable[[], tuple[Hub, Sandboxes, dict[str, Any]]]]:
    """Salesforce CRM + Certinia PSA in the same sandbox org, and NetSuite ERP; a launched hub."""
    register(CONNECTOR)
    boxes = Sandboxes.open(tmp_path / "sandboxes").start()
    seed(Firm(seed=0), boxes)
    ids = catalogue(boxes.salesforce)
    hubs: list[Hub] = []

    def make() -> tuple[Hub, Sandboxes, dict[str, Any]]:
        raw = boxes.config(db_url)
        raw["systems"]["psa"] = {
            "kind": "certinia",
            "base_url": boxes.salesforce.url,
            "client_id": "q2c",
            "client_secret_env": "Q2C_SANDBOX_SF_SECRET",
            "timeout_seconds": 5,
            "limits": {"concurrency": 8},
        }
        hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
        hubs.append(hub)
        return hub, boxes, ids

    yield make
    for hub in hubs:
        hub.shutdown()
    boxes.stop()


def _journals(boxes: Sandboxes, kind: str) -> list[dict[str, Any]]:
    return [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == kind]


def test_lead_to_project_and_posting_run_with_certinia(
    stack: Callable[[], tuple[Hub, Sandboxes, dict[str, Any]]],
) -> None:
    hub, boxes, ids = stack()
    sf = boxes.salesforce
    account, opp = add_deal(boxes, billing="Time & Materials")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "completed", result
    # The project, from the T&M template, linked to the deal, staffed by role; its id back on the deal.
    [proj] = [p for p in sf.records("pse__Proj__c") if p.get("Hub_Ext_Id__c") == opp]
    assert (proj["pse__Opportunity__c"], proj["pse__Account__c"]) == (opp, account)
    assert proj["pse__Billing_Type__c"] == "Time and Materials"
    assert sorted(m["Name"] for m in children(sf, "pse__Milestone__c", proj["Id"])) == sorted(
        TEMPLATES["T&M Delivery"]
    )
    requests = children(sf, "pse__Resource_Request__c", proj["Id"])
    assert sorted(r["pse__Resource_Role__c"] for r in requests) == ["Consultant", "Engagement Manager"]
    assert sf.get("Opportunity", opp)["PSA_Workspace_Id__c"] == proj["Id"]
    [registered] = hub.read(lambda c: [dict(r) for r in c.execute(sa.select(project_registry)).mappings()])
    assert registered["psa_workspace_id"] == proj["Id"]
    # A second delivery of the same deal creates nothing.
    poll_closed_won(hub)
    assert len([p for p in sf.records("pse__Proj__c") if p.get("Hub_Ext_Id__c") == opp]) == 1

    # F4: a week of approved billable time at the rate card's Consultant rate, on a milestone.
    milestone = sorted(children(sf, "pse__Milestone__c", proj["Id"]), key=lambda m: m["pse__Target_Date__c"])[
        0
    ]
    ada = ids["resources"]["Ada Lovelace"]
    header = pse.add_timecard(
        sf, proj["Id"], ada, MONDAY, [8, 8, 0, 4, 8], billable=True, bill_rate=180, milestone=milestone["Id"]
    )
    pse.add_timecard(
        sf, proj["Id"], ada, date(2026, 10, 19), [8], billable=True, bill_rate=180, status="Submitted"
    )
    posted = post_now("time")
    assert (posted["valid"], posted["quarantined"], posted["postings_failed"]) == (4, 0, 0), posted
    ledger = hub.read(
        lambda c: sorted(
            (r.source_id, r.minutes)
            for r in c.execute(sa.select(work_entry).where(work_entry.c.kind == "time"))
        )
    )
    assert ledger == [
        (f"{header}/fri", 480),
        (f"{header}/mon", 480),
        (f"{header}/thu", 240),
        (f"{header}/tue", 480),
    ]
    [journal] = _journals(boxes, "time")
    assert Decimal(journal["custbody_q2c_hours"]) == 28 and Decimal(journal["custbody_q2c_amount"]) == 5040
    assert post_now("time")["postings_sent"] == 0  # nothing twice

    # Taking the approval back and cutting Thursday reverses the week; approving again re-posts it.
    sf.update("pse__Timecard_Header__c", header, {"pse__Status__c": "Saved", "pse__Thursday_Hours__c": 0})
    sf.update("pse__Timecard_Header__c", header, {"pse__Status__c": "Approved"})
    again = post_now("time")
    assert again["reversal_postings"] == 1, again
    totals = sum((Decimal(j["custbody_q2c_hours"]) for j in _journals(boxes, "time")), Decimal(0))
    assert totals == 24

    # F5: approved expenses.
    pse.add_expense(sf, proj["Id"], ada, date(2026, 10, 8), Decimal("420"), billable=True)
    pse.add_expense(sf, proj["Id"], ada, date(2026, 10, 8), Decimal("80"), billable=True, reimbursable=False)
    expenses = post_now("expense")
    assert (expenses["valid"], expenses["quarantined"]) == (2, 0), expenses
    assert sorted(Decimal(j["custbody_q2c_amount"]) for j in _journals(boxes, "expense")) == [80, 420]

    # F9: the PSA's approved work and the ERP's postings agree.
    for kind in ("time", "expense"):
        report = reconcile(hub, kind, "2026-10", open_cases=False)
        assert report.breaks == [], (kind, report.breaks)
        assert sum(line.psa_count for line in report.lines) == (3 if kind == "time" else 2)
