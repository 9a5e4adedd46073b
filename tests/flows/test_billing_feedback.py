"""F8: Stripe webhooks through the hub's API — verified, de-duplicated, applied by state not
arrival — update the ERP, the CRM and the PSA; SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import httpx
import sqlalchemy as sa

from quote2cash.flows.billing.periods import bill_now
from quote2cash.sandbox.stripe._webhooks import sign
from quote2cash.store.tables import billing_invoice, inbox, webhook_delivery

from .billing_fixtures import Cash


def _wait(c: Cash, key: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        row = dict(
            c.hub.read(
                lambda x: (
                    x.execute(sa.select(billing_invoice).where(billing_invoice.c.key == key)).mappings().one()
                )
            )
        )
        if check(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def _post(
    c: Cash, event: dict[str, Any], *, t: int | None = None, secret: str | None = None
) -> httpx.Response:
    body = json.dumps(event).encode()
    header = sign(body, secret or c.secret, t or int(time.time()))
    return httpx.post(
        c.webhook_url, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def _billed(c: Cash, two: bool = False) -> tuple[str, list[dict[str, Any]]]:
    opps = [c.deal("Time & Materials") for _ in range(2 if two else 1)]
    projects = c.activate(opps)
    for opp in opps:
        c.time(projects[opp], "Consultant", 120, "2026-12-02")
    c.post_time()
    assert bill_now("2026-12")["issued"] == len(opps)
    return opps[0], [c.invoices(o)[0] for o in opps]


def test_payment_feedback_reaches_erp_crm_and_psa_once_whatever_the_order(cash: Cash) -> None:
    c = cash
    opp, (inv, other) = _billed(c, two=True)
    c.stripe.pay(str(inv["billing_id"]))
    paid = _wait(c, inv["key"], lambda r: r["status"] == "paid" and r["erp_payment_id"])
    assert (paid["status"], paid["payment_status"], paid["paid_minor"]) == ("paid", "paid", 36000)
    payments = [
        p
        for p in c.boxes.netsuite.records("customerpayment")
        if p.get("externalId") == f"{inv['billing_id']}-paid"
    ]
    assert len(payments) == 1 and str(payments[0]["payment"]) == "360.00"
    time.sleep(0.5)
    deal = c.boxes.salesforce.get("Opportunity", opp)  # type: ignore[attr-defined]
    assert deal["Payment_Status__c"] == "paid" and deal["Billed_To_Date__c"] == 360.0
    assert deal["Last_Invoice_Number__c"] == paid["number"]
    ws = c.boxes.kantata.get("workspaces", str(c.schedule(opp)["psa_workspace_id"]))
    assert ws is not None and ws["billed_to_date_in_cents"] == 36000

    # Every event of the invoice again, newest first, twice: duplicates by id, nothing applied.
    events = [e for e in c.stripe.objects("event") if e["data"]["object"].get("id") == inv["billing_id"]]
    assert {"invoice.finalized", "invoice.paid"} <= {e["type"] for e in events}
    for event in sorted(events, key=lambda e: e["id"], reverse=True) * 2:
        assert _post(c, event).status_code == 200
    # An older state arriving late under a new event id: not newer than what was applied.
    finalized = next(e for e in events if e["type"] == "invoice.finalized")
    assert _post(c, {**finalized, "id": "evt_late_finalized"}).status_code == 200
    c.settle()
    after = _wait(c, inv["key"], lambda r: True)
    assert (after["status"], after["payment_status"], after["state_rank"]) == (
        "paid",
        "paid",
        paid["state_rank"],
    )
    assert (
        len(
            [
                p
                for p in c.boxes.netsuite.records("customerpayment")
                if p.get("externalId") == f"{inv['billing_id']}-paid"
            ]
        )
        == 1
    )

    # A declined card: the other deal shows the failed payment, its invoice stays open.
    # The sandbox raises Stripe's 402 card_error, as the API answers it.
    with contextlib.suppress(Exception):
        c.stripe.pay(str(other["billing_id"]), succeed=False)
    failed = _wait(c, other["key"], lambda r: r["payment_status"] == "failed")
    assert (failed["status"], failed["payment_status"]) == ("open", "failed")
    assert not [
        p
        for p in c.boxes.netsuite.records("customerpayment")
        if p.get("externalId") == f"{other['billing_id']}-paid"
    ]


def test_voided_invoice_is_credited_in_the_erp(cash: Cash) -> None:
    c = cash
    _, (inv,) = _billed(c)
    c.hub.system("billing").void_invoice(str(inv["billing_id"]))  # type: ignore[attr-defined]
    void = _wait(c, inv["key"], lambda r: r["erp_void_id"] is not None)
    assert void["status"] == "void"
    (memo,) = [
        m
        for m in c.boxes.netsuite.records("creditmemo")
        if m.get("externalId") == f"{inv['billing_id']}-void"
    ]
    assert str(memo["custbody_q2c_total"]) == "360.00"


def test_bad_signature_or_stale_timestamp_is_rejected_recorded_and_applies_nothing(cash: Cash) -> None:
    c = cash
    event = {
        "id": "evt_forged",
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": "in_forged", "object": "invoice", "status": "paid"}},
    }
    forged = _post(c, event, secret="whsec_not_the_endpoints")
    stale = _post(c, {**event, "id": "evt_stale"}, t=int(time.time()) - 301)
    assert (forged.status_code, stale.status_code) == (401, 401)  # problem details, nothing applied
    recorded = c.hub.read(
        lambda x: x.execute(sa.select(webhook_delivery.c.outcome, webhook_delivery.c.reason)).all()
    )
    assert ("rejected", "signature_mismatch") in recorded and ("rejected", "stale_timestamp") in recorded
    assert not c.hub.read(
        lambda x: x.execute(
            sa.select(inbox.c.source_event_id).where(inbox.c.source_event_id.in_(["evt_forged", "evt_stale"]))
        ).all()
    )


def test_a_payment_no_webhook_brought_is_found_by_the_poll_and_applied_once(cash: Cash) -> None:
    from quote2cash.flows.intake import BILLING_INTAKE, poll_billing
    from quote2cash.sandbox.stripe import DEFAULT_KEY
    from quote2cash.store import cases

    c = cash
    _, (inv,) = _billed(c)
    billing_id = str(inv["billing_id"])
    assert _wait(c, inv["key"], lambda r: r["status"] == "open")["status"] == "open"
    # Someone disables the hub's endpoint in Stripe: the payment's events are never delivered.
    auth = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    [endpoint] = httpx.get(f"{c.stripe.url}/v1/webhook_endpoints", headers=auth).json()["data"]
    disabled = httpx.post(
        f"{c.stripe.url}/v1/webhook_endpoints/{endpoint['id']}", headers=auth, data={"disabled": "true"}
    )
    assert disabled.json()["status"] == "disabled"
    c.stripe.pay(billing_id)
    time.sleep(1.0)
    assert _wait(c, inv["key"], lambda r: False, timeout=0)["status"] == "open"  # the hub heard nothing

    def payments() -> list[dict[str, Any]]:
        return [
            p
            for p in c.boxes.netsuite.records("customerpayment")
            if p.get("externalId") == f"{billing_id}-paid"
        ]

    found = poll_billing(c.hub)
    assert found.accepted >= 1  # the payment (and any change of it the webhooks had not brought)
    paid = _wait(c, inv["key"], lambda r: r["status"] == "paid" and r["erp_payment_id"])
    assert (paid["status"], paid["paid_minor"]) == ("paid", 36000)
    assert len(payments()) == 1
    # Polled again, and the same event delivered late by webhook: accepted once, applied once.
    assert poll_billing(c.hub).accepted == 0
    [event] = [
        e
        for e in c.stripe.objects("event")
        if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == billing_id
    ]
    late = _post(c, event)
    assert late.status_code == 200 and late.json()["duplicates"] == 1
    c.settle()
    assert len(payments()) == 1

    # An event Stripe holds that cannot be read: a case naming it, and the poll goes on past it.
    bad_id = c.stripe.billing.make_id("evt")
    c.stripe.billing.save(
        {
            **event,
            "id": bad_id,
            "data": {"object": {"id": "in_broken", "object": "invoice", "currency": "eur", "total": "lots"}},
        }
    )
    assert poll_billing(c.hub).accepted == 0
    [case] = c.hub.read(cases.list_cases, flow=BILLING_INTAKE)
    assert case["subject"] == f"event/{bad_id}" and case["code"] == "vendor.malformed_payload"
    assert poll_billing(c.hub).accepted == 0
    assert len(c.hub.read(cases.list_cases, flow=BILLING_INTAKE)) == 1
