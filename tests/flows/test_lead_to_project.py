"""F1 + F2 end to end against the sandboxes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import sqlalchemy as sa

from quote2cash.connectors.salesforce.adapter import closed_won_event
from quote2cash.flows.intake import cursor_name, deliver, dispatch, poll_closed_won
from quote2cash.flows.lead_to_project import FLOW, workflow_id
from quote2cash.ops import cases as case_ops
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import kpi_sample

from .conftest import add_deal, result_of, wait_for_flows


def _no_duplicates(boxes: Sandboxes) -> None:
    ns = boxes.netsuite
    ext = Counter(
        r.get("externalId") for r in ns.records("customer") + ns.records("job") if r.get("externalId")
    )
    assert [k for k, n in ext.items() if n > 1] == []
    refs = Counter(r["service_model_ref"] for r in boxes.kantata.records("external_references"))
    assert [k for k, n in refs.items() if n > 1] == []
    notes = Counter(r.get("notes") for r in boxes.kantata.records("resource_requests"))
    assert [k for k, n in notes.items() if n > 1] == []


def test_closed_won_deal_becomes_customer_project_workspace_and_staffing(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    account, opp = add_deal(boxes, name="Harbor Robotics Inc", billing="Fixed Fee")
    add_deal(boxes, won=False)  # an open deal is not picked up
    add_deal(boxes, approved=False)  # won, but terms not approved yet: not picked up

    polled = poll_closed_won(hub)
    assert (polled.seen, polled.accepted, polled.dispatched) == (1, 1, 1)
    result = result_of(workflow_id(opp))
    assert result["status"] == "completed", (result, hub.read(cases.list_cases))

    ns, kt, sf = boxes.netsuite, boxes.kantata, boxes.salesforce
    [customer] = ns.records("customer")
    assert customer["companyName"] == "Harbor Robotics Inc"
    assert customer["externalId"] == f"Q2C-C-{account}@US01"  # one customer per account and legal entity
    assert customer["subsidiary"]["id"] == "1"
    [job] = ns.records("job")
    assert job["parent"]["id"] == str(customer["id"])
    assert job["department"]["id"] and job["class"]["id"]  # practice and region dimensions
    assert job["custentity_q2c_billing_model"] == "fixed_fee"
    [workspace] = kt.records("workspaces")
    stories = [s for s in kt.records("stories") if str(s["workspace_id"]) == str(workspace["id"])]
    assert {s["title"] for s in stories} >= {"Mobilise", "Design", "Build", "Close", "Build sign-off"}
    assert any(s["story_type"] == "milestone" for s in stories)
    requests = kt.records("resource_requests")
    assert sorted((r["start_date"], r["minutes"] / 60) for r in requests) == [
        ("2026-12-01", 20.0),
        ("2026-12-01", 80.0),
    ]
    deal = sf.get("Opportunity", opp)
    assert deal["ERP_Project_Id__c"] == str(job["id"])
    assert deal["PSA_Workspace_Id__c"] == str(workspace["id"])
    assert deal["Integration_Status__c"] == "Project created"
    assert sf.get("Account", account)["ERP_Customer_Id__c"] == str(customer["id"])

    report = hub.read(audit.verify)
    assert report.ok and report.entries >= 4
    # Every outbound write is in the idempotency ledger, and none is left in doubt.
    for key in (f"erp:customer:{account}@US01", f"erp:job:{opp}", f"psa:workspace:{opp}"):
        row = hub.read(repo.ledger_get, key)
        assert row is not None and row["status"] == "done" and row["result"]["id"], key
    latencies = hub.read(lambda c: list(c.execute(sa.select(kpi_sample.c.value))))
    assert len(latencies) == 1 and 0 <= latencies[0][0] < 60


def test_duplicate_closed_won_delivered_twice_creates_nothing_twice(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes)
    poll_closed_won(hub)
    # The same event again: from a webhook, and from a poller whose cursor was lost.
    source = closed_won_event(boxes.salesforce.get("Opportunity", opp))
    assert deliver(hub, source.source_event_id, source.event) is False
    hub.tx(repo.set_cursor, cursor_name(hub), "1970-01-01T00:00:00.000Z")
    again = poll_closed_won(hub)
    assert (again.seen, again.accepted, again.duplicates) == (1, 0, 1)
    # Even a second start of the flow for the same deal is a no-op.
    from quote2cash.runtime import flow

    flow.start(FLOW, source.event)
    assert result_of(workflow_id(opp))["status"] == "completed"
    dispatch(hub)
    wait_for_flows(hub, 1)

    assert len(boxes.netsuite.records("customer")) == 1
    assert len(boxes.netsuite.records("job")) == 1
    assert len(boxes.kantata.records("workspaces")) == 1
    assert hub.read(repo.inbox_duplicates) == 2
    _no_duplicates(boxes)


def test_transient_faults_are_retried_to_success_without_duplicates(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub(timeout=1.0)
    opps = [add_deal(boxes)[1] for _ in range(4)]
    for box in (boxes.netsuite, boxes.kantata, boxes.salesforce):
        box.inject("throttle", probability=0.25, retry_after=0.01)
        box.inject("error", status=503, probability=0.15)
    # Writes that land but whose answer never arrives: the hub must look before it retries.
    boxes.kantata.inject(
        "timeout_after_commit", method="POST", path=r"/workspaces\.json$", count=2, seconds=1.5
    )
    boxes.netsuite.inject("timeout_after_commit", method="PUT", path=r"/customer/eid:", count=1, seconds=1.5)
    boxes.kantata.inject("timeout", method="POST", path=r"/resource_requests\.json$", count=1, seconds=1.5)

    poll = None
    for _ in range(20):  # the poll itself may hit a 503 burst; a poller simply polls again
        try:
            poll = poll_closed_won(hub)
            break
        except Exception:
            continue
    assert poll is not None
    statuses = wait_for_flows(hub, 4, timeout=120)
    assert set(statuses.values()) == {"completed"}, (
        statuses,
        [(c["code"], c["message"]) for c in hub.read(cases.list_cases)],
    )
    assert hub.retries() > 0
    assert len(boxes.netsuite.records("job")) == 4
    assert len(boxes.kantata.records("workspaces")) == 4
    assert len(boxes.kantata.records("resource_requests")) == 8
    for opp in opps:
        assert boxes.salesforce.get("Opportunity", opp)["Integration_Status__c"] == "Project created"
    _no_duplicates(boxes)


def test_inactive_subsidiary_becomes_a_case_then_fix_and_resubmit_completes(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes, name="Maple Freight Corp", region="Canada", currency="CAD")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "exception" and result["code"] == "customer.subsidiary_inactive"

    [case] = hub.read(cases.list_cases)
    assert case["owner"] == "finance"
    assert "Northwind Canada ULC" in case["message"] and "inactive" in case["message"]
    assert boxes.netsuite.records("customer") == []  # nothing written, and not retried blindly
    assert boxes.netsuite.calls("PUT") == 0
    deal = boxes.salesforce.get("Opportunity", opp)
    assert deal["Integration_Status__c"] == "Exception"

    boxes.netsuite.set_inactive("subsidiary", "5", False)  # finance reactivates the subsidiary
    wf = case_ops.resubmit(hub, case["id"], actor="user:finance")
    assert result_of(wf)["status"] == "completed"
    assert len(boxes.netsuite.records("customer")) == 1
    assert hub.read(cases.get_case, case["id"])["status"] == "resolved"
    assert hub.read(audit.verify).ok


def test_probable_duplicate_customer_is_a_case_not_a_second_customer(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    existing = boxes.netsuite.add_customer(
        {
            "companyName": "Globex Corporation",
            "url": "http://globex-group.com",
            "subsidiary": {"id": "1"},
        }
    )
    hub = make_hub()
    _, opp = add_deal(boxes, name="Globex Corp.", website="https://globex.io")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["code"] == "customer.probable_duplicate"
    [case] = hub.read(cases.list_cases)
    assert "Globex Corporation" in case["message"] and f"id {existing}" in case["message"]
    assert len(boxes.netsuite.records("customer")) == 1

    wf = case_ops.resubmit(hub, case["id"], actor="user:sales-ops", link_to=str(existing))
    assert result_of(wf)["status"] == "completed"
    customers = boxes.netsuite.records("customer")
    assert len(customers) == 1
    assert boxes.netsuite.records("job")[0]["parent"]["id"] == str(existing)


def test_failure_half_way_keeps_written_systems_and_resumes_from_failed_step(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes, lines=[("Quantum Whisperer", 40)])
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["code"] == "psa.role_unknown"
    run = hub.read(repo.get_run, FLOW, f"Opportunity/{opp}")
    assert set(run["steps"]) == {"erp_customer", "erp_project", "psa_workspace"}  # what was written, recorded
    boxes.kantata.add_role("Quantum Whisperer")
    [case] = hub.read(cases.list_cases)
    assert result_of(case_ops.resubmit(hub, case["id"], actor="user:pmo"))["status"] == "completed"
    assert len(boxes.netsuite.records("job")) == 1 and len(boxes.kantata.records("workspaces")) == 1
    assert len(boxes.kantata.records("resource_requests")) == 1
    _no_duplicates(boxes)


def test_compensation_policy_undoes_project_side_writes(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub(policies={FLOW: {"compensate": True}})
    _, opp = add_deal(boxes, lines=[("Quantum Whisperer", 40)])
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["compensated"] == ["psa_workspace", "erp_project"]
    assert boxes.netsuite.records("job") == [] and boxes.kantata.records("workspaces") == []
    assert len(boxes.netsuite.records("customer")) == 1  # master data is never compensated
    assert hub.read(repo.get_run, FLOW, f"Opportunity/{opp}")["status"] == "compensated"


def test_a_burst_of_deals_runs_in_batches_each_deal_with_its_own_run_and_case(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    from dbos import DBOS

    from quote2cash.flows.lead_to_project import BATCH

    hub = make_hub()
    deals = BATCH + 5
    # Tax ids of their own, so the similar generated names are never probable duplicates.
    opps = [add_deal(boxes, tax_id=f"98-{i:07d}")[1] for i in range(deals - 2)]
    # Two bad deals, each a case of its own while its batch goes on: a currency its legal
    # entity refuses, and a line the batch's one read of the deals cannot map.
    add_deal(boxes, currency="JPY", tax_id="98-9999999")
    _, unreadable = add_deal(boxes, tax_id="98-9999998", lines=[("Consultant", -8)])
    queries = boxes.salesforce.calls("GET /services/data/v62.0/query")

    polled = poll_closed_won(hub)
    assert polled.dispatched == deals
    statuses = wait_for_flows(hub, deals, timeout=180)
    assert Counter(statuses.values()) == {"completed": deals - 2, "exception": 2}
    batches = DBOS.list_workflows(name="run_flow_batch", load_input=False, load_output=False)
    assert 1 < len(batches) < deals
    results = [r for w in batches for r in result_of(w.workflow_id)]
    assert sorted(r["status"] for r in results) == ["completed"] * (deals - 2) + ["exception"] * 2
    assert DBOS.list_workflows(status=["ERROR"], load_input=False, load_output=False) == []
    assert sorted(c["code"] for c in hub.read(cases.list_cases)) == [
        "deal.currency_not_allowed",
        "deal.malformed",
    ]
    assert all(c["flow"] == FLOW for c in hub.read(cases.list_cases))
    assert statuses[f"Opportunity/{unreadable}"] == "exception"
    # A batch reads its deals together: the poll, then two queries a batch, not two a deal.
    assert boxes.salesforce.calls("GET /services/data/v62.0/query") - queries == 1 + 2 * len(batches)
    for opp in opps:
        assert boxes.salesforce.get("Opportunity", opp)["ERP_Project_Id__c"]
    _no_duplicates(boxes)


def test_a_batch_whose_read_ahead_fails_reads_each_deal_itself_and_loses_none(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    from quote2cash.flows.lead_to_project import BATCH

    hub = make_hub()
    deals = BATCH + 5
    opps = [add_deal(boxes, tax_id=f"97-{i:07d}")[1] for i in range(deals)]
    assert poll_closed_won(hub, dispatch_now=False).accepted == deals
    # The first query after the poll, a batch's read of its deals, is refused as Salesforce
    # refuses a query that runs too long; the batch's runs then read their deals one by one.
    refusal = [{"message": "Your query request was running for too long.", "errorCode": "QUERY_TIMEOUT"}]
    rule = boxes.salesforce.inject("reject", method="GET", path=r"/query$", count=1, status=400, body=refusal)
    queries = boxes.salesforce.calls("GET /services/data/v62.0/query")
    dispatch(hub)
    statuses = wait_for_flows(hub, deals, timeout=180)
    assert rule.fired == 1
    assert Counter(statuses.values()) == {"completed": deals}
    assert hub.read(cases.list_cases) == []
    for opp in opps:
        assert boxes.salesforce.get("Opportunity", opp)["ERP_Project_Id__c"]
    # Two queries a batch, but the refused batch's deals were read one at a time, two each.
    from dbos import DBOS

    sizes = [len(w.input["args"][1]) for w in DBOS.list_workflows(name="run_flow_batch")]
    made = boxes.salesforce.calls("GET /services/data/v62.0/query") - queries
    assert made in {1 + 2 * (len(sizes) - 1) + 2 * size for size in sizes}, (made, sizes)
    _no_duplicates(boxes)


def test_a_launched_hub_is_already_polling_every_queue_it_registered(make_hub: Callable[..., Hub]) -> None:
    import threading

    # The engine starts polling a queue registered after its launch at its queue manager's
    # next look, up to a second later; a launch returns only once every queue is polled, so
    # a burst dispatched right after it does not wait.
    hub = make_hub()
    polled = {t.name for t in threading.enumerate()}
    assert {f"queue-worker-{q.name}" for q in hub.queues.values()} <= polled
