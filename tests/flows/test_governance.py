"""Governance rules a finance team relies on (SPEC §1, §3), on SQLite and PostgreSQL:
a customer belongs to a legal entity, and the deal's own commercial terms win."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials
from quote2cash.errors import BusinessRuleError
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.ops import cases as case_ops
from quote2cash.ops.kpis import summary as kpi_summary
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from quote2cash.store import audit, cases
from quote2cash.store.tables import kpi_sample

from .conftest import add_deal, result_of

US, UK = "1", "2"  # the ERP subsidiaries of US01 and UK01 in the seeded firm


def _customers_by_subsidiary(boxes: Sandboxes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in boxes.netsuite.records("customer"):
        out.setdefault(c["subsidiary"]["id"], []).append(c["companyName"])
    return out


def _job_of(boxes: Sandboxes, opp: str) -> dict[str, object]:
    [job] = [j for j in boxes.netsuite.records("job") if j["externalId"] == f"Q2C-P-{opp}"]
    return job


def test_match_in_another_entity_is_a_finance_case_never_a_reuse(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    us_customer = boxes.netsuite.add_customer(
        {"companyName": "Meridian Foods Inc", "url": "https://meridianfoods.com", "subsidiary": {"id": US}}
    )
    hub = make_hub(customers={"other_entity_match": "case"})
    _, opp = add_deal(
        boxes, name="Meridian Foods Ltd", region="UK & Ireland", currency="GBP", website="meridianfoods.com"
    )
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["code"] == "customer.other_entity_match"
    [case] = hub.read(cases.list_cases)
    assert case["owner"] == "finance"
    # The case names both records and the choices.
    for words in ("Meridian Foods Ltd", "Meridian Foods Inc", f"id {us_customer}", "UK01", "create", "link"):
        assert words in case["message"], words
    # Nothing was re-used or created: no job under the US customer, no second customer.
    assert boxes.netsuite.records("job") == []
    assert _customers_by_subsidiary(boxes) == {US: ["Meridian Foods Inc"]}

    # Linking to the other entity's customer is refused again, naming why.
    wf = case_ops.resubmit(hub, case["id"], actor="user:finance", link_to=us_customer)
    assert result_of(wf)["code"] == "customer.other_entity_match"
    assert boxes.netsuite.records("job") == []

    # Finance decides: this entity gets its own customer.
    [case] = hub.read(cases.list_cases)
    wf = case_ops.resubmit(hub, case["id"], actor="user:finance", create_new=True)
    assert result_of(wf)["status"] == "completed"
    assert _customers_by_subsidiary(boxes) == {US: ["Meridian Foods Inc"], UK: ["Meridian Foods Ltd"]}
    job = _job_of(boxes, opp)
    assert job["subsidiary"] == {"id": UK}
    assert job["parent"] != {"id": us_customer}


def test_group_accounts_get_one_customer_per_entity_when_configured(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub(customers={"other_entity_match": "create"})
    _, us_opp = add_deal(boxes, name="Tessellate Inc", website="https://tessellate.com")
    poll_closed_won(hub)
    assert result_of(workflow_id(us_opp))["status"] == "completed"
    _, uk_opp = add_deal(
        boxes, name="Tessellate Ltd", region="UK & Ireland", currency="GBP", website="https://tessellate.com"
    )
    poll_closed_won(hub)
    assert result_of(workflow_id(uk_opp))["status"] == "completed"
    assert _customers_by_subsidiary(boxes) == {US: ["Tessellate Inc"], UK: ["Tessellate Ltd"]}
    us_job, uk_job = _job_of(boxes, us_opp), _job_of(boxes, uk_opp)
    assert us_job["subsidiary"] == {"id": US} and uk_job["subsidiary"] == {"id": UK}
    assert us_job["parent"] != uk_job["parent"]
    assert hub.read(cases.list_cases) == []


def test_the_deals_own_legal_entity_currency_and_amount_win(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    account, opp = add_deal(boxes, name="Larkspur Analytics Inc", currency="USD")
    # The account is American and bills in USD; this deal is contracted by the UK entity, in GBP.
    boxes.salesforce.update("Opportunity", opp, {"Legal_Entity__c": "UK01", "CurrencyIsoCode": "GBP"})
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "completed", hub.read(cases.list_cases)
    assert result["legal_entity"] == "UK01"
    job = _job_of(boxes, opp)
    gbp = next(c["id"] for c in boxes.netsuite.records("currency") if c["symbol"] == "GBP")
    assert job["subsidiary"] == {"id": UK} and job["currency"] == {"id": gbp}
    [customer] = boxes.netsuite.records("customer")
    assert customer["subsidiary"] == {"id": UK} and customer["externalId"] == f"Q2C-C-{account}@UK01"
    [workspace] = boxes.kantata.records("workspaces")
    assert workspace["currency"] == "GBP"
    # The deal's amount (its lines: 100 h at 180) in its own currency, never relabelled.
    assert workspace["price_in_cents"] == 1_800_000
    # The account's own ERP id (its US customer) is not overwritten by the UK customer's.
    assert boxes.salesforce.get("Account", account).get("ERP_Customer_Id__c") is None


def test_a_deal_currency_the_entity_does_not_invoice_in_is_a_case(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes, name="Quillon Media Inc")
    boxes.salesforce.update("Opportunity", opp, {"CurrencyIsoCode": "EUR"})  # US01 invoices in USD only
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["code"] == "deal.currency_not_allowed"
    [case] = hub.read(cases.list_cases)
    assert "EUR" in case["message"] and "USD" in case["message"] and case["owner"] == "sales_ops"
    assert boxes.netsuite.records("customer") == [] and boxes.netsuite.records("job") == []
    assert boxes.kantata.records("workspaces") == []


def test_netsuite_refuses_a_job_outside_its_customers_subsidiary(boxes: Sandboxes) -> None:
    ns = boxes.netsuite
    customer = ns.add_customer({"companyName": "Orrery Ltd", "subsidiary": {"id": UK}})
    client = NetSuiteClient(
        ns.url,
        TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "q2c-ts"),
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(BusinessRuleError) as err:
        client.create(
            "job", {"companyName": "Orrery rollout", "parent": {"id": customer}, "subsidiary": {"id": US}}
        )
    assert err.value.details["vendor_code"] == "INVALID_VALUE"
    assert "subsidiary" in err.value.message
    assert ns.records("job") == []
    job = client.create("job", {"companyName": "Orrery rollout", "parent": {"id": customer}})
    assert ns.get("job", job)["subsidiary"] == {"id": UK}  # inherited from the customer
    client.close()


def _second_deal(boxes: Sandboxes, account: str) -> str:
    sf = boxes.salesforce
    opp = sf.insert(
        "Opportunity",
        {
            "AccountId": account,
            "Name": "Phase 2",
            "StageName": "Negotiation/Review",
            "CloseDate": "2026-11-25",
            "CurrencyIsoCode": "USD",
            "Billing_Model__c": "Time & Materials",
            "Practice__c": "Technology",
            "Start_Date__c": "2027-01-04",
            "End_Date__c": "2027-03-31",
        },
    )
    sf.update("Opportunity", opp, {"StageName": "Closed Won", "Terms_Approved__c": True})
    return opp


def test_an_erp_owned_field_changed_in_the_crm_is_not_propagated(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    account, opp = add_deal(boxes, name="Gannet Systems Inc", terms="Net 30")
    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["status"] == "completed"
    [customer] = boxes.netsuite.records("customer")
    terms = {t["id"]: t["name"] for t in boxes.netsuite.records("term")}
    assert terms[customer["terms"]["id"]] == "Net 30"

    # Sales ops renames the account (the CRM's field) and edits its payment terms (the ERP's).
    boxes.salesforce.update(
        "Account", account, {"Name": "Gannet Systems Group Inc", "Payment_Terms__c": "Net 45"}
    )
    opp2 = _second_deal(boxes, account)
    poll_closed_won(hub)
    assert result_of(workflow_id(opp2))["status"] == "completed"

    [customer] = boxes.netsuite.records("customer")
    assert customer["companyName"] == "Gannet Systems Group Inc"  # the CRM owns the name
    assert terms[customer["terms"]["id"]] == "Net 30"  # the ERP owns the terms: not overwritten
    refusals = [e for e in hub.read(lambda c: audit.entries(c)) if e["action"] == "ownership.refused"]
    assert len(refusals) == 1
    [field] = refusals[0]["after"]["fields"]
    assert field == {"field": "customer.payment_terms", "owner": "erp", "value": "Net 45"}
    counted = hub.read(
        lambda c: c.execute(
            sa.select(sa.func.sum(kpi_sample.c.value)).where(kpi_sample.c.kpi == "ownership_refused_fields")
        ).scalar()
    )
    assert counted == 1
    assert hub.read(kpi_summary)["ownership_refused_fields"] == 1  # q2c kpis shows it
    # Nothing changed since: a third look at the account refuses nothing again.
    opp3 = _second_deal(boxes, account)
    poll_closed_won(hub)
    assert result_of(workflow_id(opp3))["status"] == "completed"
    assert len([e for e in hub.read(lambda c: audit.entries(c)) if e["action"] == "ownership.refused"]) == 1


def test_a_crm_write_back_of_a_field_the_crm_owns_is_withheld_and_recorded(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    # This firm's CRM team keeps the PSA project id on the deal by hand: the CRM owns it.
    hub = make_hub(ownership={"deal.psa_project_id": "crm"})
    _, opp = add_deal(boxes, name="Heron Logistics Inc")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "completed"
    written = boxes.salesforce.get("Opportunity", opp)
    assert written["ERP_Project_Id__c"] == result["erp_project_id"]
    assert written["Integration_Status__c"] == "Project created"
    assert written.get("PSA_Workspace_Id__c") is None
    [refusal] = [e for e in hub.read(lambda c: audit.entries(c)) if e["action"] == "ownership.refused"]
    assert refusal["after"]["fields"][0]["field"] == "deal.psa_project_id"


def test_a_failed_deal_tells_the_crm_what_already_exists(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes, name="Ibis Dynamics Inc", lines=[("Quantum Whisperer", 40)])
    poll_closed_won(hub)
    assert result_of(workflow_id(opp))["code"] == "psa.role_unknown"
    [case] = hub.read(cases.list_cases)
    message = boxes.salesforce.get("Opportunity", opp)["Integration_Message__c"]
    assert message.startswith(f"[psa.role_unknown] case {case['id']}: ERP customer ")
    assert "ERP project" in message and "PSA workspace" in message and "exist" in message
    assert len(message) <= 255
    assert "exist" in case["message"]
