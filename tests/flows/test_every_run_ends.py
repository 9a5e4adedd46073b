"""Every run ends completed or with an exception case, never stuck or silent.

Each failure a run can meet is injected for real: a vendor that never
answers, malformed vendor data that the adapter recognises, a value that
breaks the canonical model deep inside a step, and an event whose payload
cannot be read. Each must end in a case that names the systems already
written, leave no DBOS workflow in ERROR and no run record ``running``, and,
once fixed and resubmitted, complete with nothing written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from quote2cash.flows.intake import deliver, dispatch, poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.model import BusinessEvent
from quote2cash.ops import cases as case_ops
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from quote2cash.store import cases
from quote2cash.store.tables import flow_run

from .conftest import add_deal, result_of, wait_for_flows


def _nothing_stuck(hub: Hub) -> None:
    assert DBOS.list_workflows(status=["ERROR"], load_input=False, load_output=False) == []
    running = hub.read(
        lambda c: list(c.execute(sa.select(flow_run.c.subject).where(flow_run.c.status == "running")))
    )
    assert running == []


def _corrupt(boxes: Sandboxes, sobject: str, id_: str, **fields: Any) -> None:
    """Write values the CRM's API would not validate away (a bad import, a formula field)."""
    store = boxes.salesforce.store
    doc = store.get(sobject, id_)
    assert doc is not None
    store.put(sobject, id_, {**doc, **fields})


def _one_of_each(boxes: Sandboxes, opp: str) -> None:
    ref = [w for w in boxes.kantata.records("workspaces")]
    assert len(boxes.netsuite.records("customer")) == 1
    assert [j["externalId"] for j in boxes.netsuite.records("job")] == [f"Q2C-P-{opp}"]
    assert len(ref) == 1
    notes = [r["notes"] for r in boxes.kantata.records("resource_requests")]
    assert len(notes) == len(set(notes)) == 2


def test_a_vendor_that_never_answers_ends_in_a_case_naming_what_was_written(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    fault = boxes.kantata.inject("error", status=503, method="POST", path=r"/workspaces\.json$", count=10_000)
    _, opp = add_deal(boxes)
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "exception" and result["code"] == "vendor.retries_exhausted"
    [case] = hub.read(cases.list_cases)
    assert case["owner"] == "integration"
    job = boxes.netsuite.records("job")[0]
    customer = boxes.netsuite.records("customer")[0]
    # The case says what already happened, so nobody re-keys what exists.
    assert f"ERP customer {customer['id']} and ERP project {job['id']} exist" in case["message"]
    assert "PSA workspace" not in case["message"].split("—")[-1]
    assert case["payload"]["payload"]["Id"] == opp  # the source event, kept for replay
    deal = boxes.salesforce.get("Opportunity", opp)
    assert (
        deal["Integration_Status__c"] == "Exception"
        and "vendor.retries_exhausted" in deal["Integration_Message__c"]
    )
    _nothing_stuck(hub)

    boxes.kantata.faults.clear()
    assert fault.fired > 0
    wf = case_ops.resubmit(hub, case["id"], actor="user:integration")
    assert wf is not None and result_of(wf)["status"] == "completed"
    _one_of_each(boxes, opp)
    assert hub.read(cases.get_case, case["id"])["status"] == "resolved"
    _nothing_stuck(hub)


def test_malformed_vendor_data_is_a_case_for_the_owner_then_completes_once_fixed(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes)
    _corrupt(boxes, "Opportunity", opp, Amount="forty-eight thousand")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "exception" and result["code"] == "deal.malformed"
    [case] = hub.read(cases.list_cases)
    assert case["owner"] == "sales_ops" and "'forty-eight thousand' in Amount" in case["message"]
    assert "nothing was written" in case["message"]
    assert boxes.netsuite.records("customer") == []
    _nothing_stuck(hub)

    _corrupt(boxes, "Opportunity", opp, Amount=48000.0)
    wf = case_ops.resubmit(hub, case["id"], actor="user:sales_ops")
    assert wf is not None and result_of(wf)["status"] == "completed"
    _one_of_each(boxes, opp)


def test_an_unexpected_error_inside_a_step_is_a_case_not_a_stuck_run(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes)
    line = next(r for r in boxes.salesforce.store.all("OpportunityLineItem") if r["OpportunityId"] == opp)
    # Not a date: the canonical model refuses it with a ValueError the adapter does not expect.
    _corrupt(boxes, "OpportunityLineItem", line["Id"], ServiceDate="next spring")
    poll_closed_won(hub)
    result = result_of(workflow_id(opp))
    assert result["status"] == "exception" and result["code"] == "flow.unexpected_error"
    [case] = hub.read(cases.list_cases)
    assert "ValidationError" in case["message"] and "resubmit" in case["message"]
    _nothing_stuck(hub)

    _corrupt(boxes, "OpportunityLineItem", line["Id"], ServiceDate="2026-12-01")
    wf = case_ops.resubmit(hub, case["id"], actor="user:integration")
    assert wf is not None and result_of(wf)["status"] == "completed"
    _one_of_each(boxes, opp)


def test_an_event_whose_payload_cannot_be_read_is_a_case(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub()
    event = BusinessEvent(
        type="opportunity.closed_won", source="webhook", subject="Opportunity/", payload={"Name": "no id"}
    )
    assert deliver(hub, "webhook:broken-1", event)
    dispatch(hub)
    statuses = wait_for_flows(hub, 1)
    assert list(statuses.values()) == ["exception"]
    [case] = hub.read(cases.list_cases)
    assert case["code"] == "deal.malformed" and case["payload"]["payload"] == {"Name": "no id"}
    _nothing_stuck(hub)
