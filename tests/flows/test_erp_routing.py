"""Two ERPs routed by legal entity: the flows run unchanged over the Erp port.

One ERP is the NetSuite sandbox, the other a minimal adapter registered
through the connector registry (``ledger_erp.py``). Lead-to-project creates
each deal's customer and project in the ERP its legal entity is routed to;
posting sends each project's time there; reconciliation reads both.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import project_key, workflow_id
from quote2cash.ops.posting import post_now
from quote2cash.ops.reconciliation import reconcile
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from quote2cash.store import cases
from quote2cash.store.tables import project_registry

from . import ledger_erp
from .conftest import FAST, add_deal, result_of


@pytest.fixture
def routed_hub(db_url: str, boxes: Sandboxes) -> Iterator[Hub]:
    raw = boxes.config(db_url)
    entities = raw["legal_entities"]
    raw["systems"]["ledger_uk"] = {
        "kind": ledger_erp.CONNECTOR.kind,
        "subsidiaries": [e["erp_subsidiary"] for e in entities.values()],
        "currencies": ["GBP", "EUR", "USD"],
    }
    raw["erp_routing"] = {"rules": [{"system": "ledger_uk", "legal_entities": ["UK01"]}], "default": "erp"}
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    yield hub
    hub.shutdown()


def test_two_erps_routed_by_legal_entity_run_the_same_flows(
    routed_hub: Hub, boxes: Sandboxes, tmp_path: object
) -> None:
    hub = routed_hub
    ledger = hub.systems["ledger_uk"]
    assert isinstance(ledger, ledger_erp.LedgerErp)
    _, us = add_deal(boxes, region="North America", currency="USD")
    _, uk = add_deal(boxes, region="UK & Ireland", currency="GBP")
    poll_closed_won(hub)
    assert result_of(workflow_id(us))["status"] == "completed"
    assert result_of(workflow_id(uk))["status"] == "completed"

    # F2 wrote each deal to the ERP its legal entity is routed to, and nowhere else.
    assert [j["externalId"] for j in boxes.netsuite.records("job")] == [f"Q2C-P-{us}"]
    assert list(ledger.projects_by_key) == [f"Q2C-P-{uk}"]
    assert len(ledger.customers_by_key) == 1 and len(boxes.netsuite.records("customer")) == 1
    projects = hub.read(
        lambda c: {r["canonical_id"]: dict(r) for r in c.execute(sa.select(project_registry)).mappings()}
    )
    assert projects[us]["erp"] == "erp" and projects[uk]["erp"] == "ledger_uk"

    # Time on both projects: each project's postings go to its own ERP.
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
    assert Decimal(journals[0]["custbody_q2c_hours"]) == Decimal("4.50")
    [uk_posting] = ledger.postings.values()
    assert (uk_posting.project, uk_posting.currency, uk_posting.minutes) == (uk, "GBP", 270)
    assert uk_posting.amount_minor == int(rates["STD-GBP"] * 100 * Decimal("4.5"))

    # Reconciliation reads both ERPs and finds them in agreement with the PSA.
    report = reconcile(hub, "time", "2026-10")
    assert report.breaks == [] and {ln.project for ln in report.lines} == {us, uk}


@pytest.fixture
def shadowed(db_url: str, boxes: Sandboxes) -> Iterator[Hub]:
    """NetSuite the system of record, the in-test ledger ERP its shadow."""
    raw = boxes.config(db_url)
    raw["systems"]["ledger_new"] = {
        "kind": ledger_erp.CONNECTOR.kind,
        "subsidiaries": [e["erp_subsidiary"] for e in raw["legal_entities"].values()],
        "currencies": ["USD"],
    }
    raw["erp_routing"] = {"default": "erp", "shadow": "ledger_new"}
    hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
    yield hub
    hub.shutdown()


def _an_hour_on_the_first_project(hub: Hub, boxes: Sandboxes) -> None:
    """One approved billable hour on the first workspace's first task, in October."""
    kt = boxes.kantata
    ws = kt.records("workspaces")[0]["id"]
    task = next(s for s in kt.records("stories") if s["workspace_id"] == ws and s["story_type"] == "task")
    user = kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    rate = int(hub.config.rate_cards["STD-USD"].rates["Consultant"] * 100)
    kt.add_time_entries(
        [
            {
                "workspace_id": ws,
                "story_id": task["id"],
                "user_id": user,
                "date_performed": "2026-10-14",
                "time_in_minutes": 60,
                "billable": True,
                "rate_in_cents": rate,
                "currency": "USD",
                "approved": True,
            }
        ]
    )


def test_a_shadow_erp_receives_a_copy_of_every_posting_and_decides_nothing(
    shadowed: Hub, boxes: Sandboxes
) -> None:
    hub = shadowed
    _, opp = add_deal(boxes)
    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["status"] == "completed"
    shadow = hub.systems["ledger_new"]
    assert isinstance(shadow, ledger_erp.LedgerErp)
    # The project is in the shadow too, under the hub's external id and the shadow's own id.
    [(key, mirrored)] = shadow.projects_by_key.items()
    assert key == project_key(opp) and mirrored["id"] != boxes.netsuite.records("job")[0]["id"]
    _an_hour_on_the_first_project(hub, boxes)
    result = post_now(hub, "time")
    assert result["postings_sent"] == 1
    journals = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    assert [j["externalId"] for j in journals] == list(shadow.postings)  # the same posting, dual-posted
    # The copy names the project by the shadow's id; the record's posting by the record's.
    assert [p.erp_project_id for p in shadow.postings.values()] == [mirrored["id"]]
    assert reconcile(hub, "time", "2026-10").breaks == []  # the shadow is not counted twice


def test_a_shadow_that_refuses_the_project_never_stops_lead_to_project(
    shadowed: Hub, boxes: Sandboxes
) -> None:
    hub = shadowed
    shadow = hub.systems["ledger_new"]
    assert isinstance(shadow, ledger_erp.LedgerErp)
    shadow.refuse_projects = True
    _, opp = add_deal(boxes)
    poll_closed_won(hub)
    # The system of record has the project and the run completed; the shadow has the customer only.
    assert result_of(workflow_id(opp))["status"] == "completed"
    [job] = boxes.netsuite.records("job")
    assert shadow.projects_by_key == {} and len(shadow.customers_by_key) == 1
    assert hub.read(cases.list_cases) == []
    # A copy of its posting then names the project by the record's id (as a migration load would).
    _an_hour_on_the_first_project(hub, boxes)
    assert post_now(hub, "time")["postings_sent"] == 1
    assert [p.erp_project_id for p in shadow.postings.values()] == [str(job["id"])]
