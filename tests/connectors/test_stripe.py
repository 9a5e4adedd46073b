"""Contract tests: the Stripe connector (official SDK) against the Stripe sandbox over loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.stripe import CONNECTOR, StripeBilling, StripeSettings, billing_event, verify
from quote2cash.connectors.stripe.amounts import from_stripe, to_stripe
from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    InDoubtError,
    NotFoundError,
    TransientError,
    VendorPayloadError,
)
from quote2cash.model import Customer, Invoice, InvoiceChange, InvoiceLine, InvoiceStatus, Money
from quote2cash.ports import Billing
from quote2cash.registry import connector, register
from quote2cash.sandbox.stripe import DEFAULT_KEY, StripeSandbox, sign
from tests.sandbox.test_stripe import Receiver

FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[StripeSandbox]:
    sb = StripeSandbox(tmp_path / "stripe.sqlite")
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


def make(sb: StripeSandbox, key: str = DEFAULT_KEY, **settings: object) -> StripeBilling:
    register(CONNECTOR)
    conn = connector("stripe")
    config = conn.settings.model_validate(
        {
            "kind": "stripe",
            "base_url": sb.url,
            "api_key_env": "STRIPE_KEY",
            "timeout_seconds": 2.0,
            "secrets": {"api_key": key},  # the loader resolves api_key_env into this
            **settings,
        }
    )
    billing = conn.build("billing", config, None, FAST)
    assert isinstance(billing, StripeBilling)
    return billing


@pytest.fixture
def billing(sandbox: StripeSandbox) -> Iterator[StripeBilling]:
    b = make(sandbox)
    yield b
    b.close()


def customer(name: str = "Acme LLP") -> Customer:
    return Customer(
        source_system="salesforce", source_id="001A", name=name, country="GB", legal_entity="UK01"
    )


def invoice(currency: str, *lines: tuple[str, str, str]) -> Invoice:
    return Invoice(
        source_system="hub",
        source_id="BE-1",
        customer_id="CUST-1",
        currency=currency,
        legal_entity="UK01",
        issue_date=date(2025, 6, 1),
        due_date=date(2025, 7, 1),
        lines=[
            InvoiceLine(
                description=d, quantity=Decimal(q), unit_amount=Money.of(a, currency), source_ref=f"M-{i}"
            )
            for i, (d, q, a) in enumerate(lines)
        ],
    )


def test_the_adapter_is_a_billing_port(billing: StripeBilling) -> None:
    assert isinstance(billing, Billing)
    assert isinstance(billing.settings, StripeSettings)


def test_customer_upsert_finds_the_customer_by_external_id(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    first = billing.upsert_customer(customer(), "HUB-C-1")
    sandbox.expire_idempotency_keys()  # a day later: only the metadata can find it
    second = billing.upsert_customer(customer("Acme Ltd"), "HUB-C-1")
    assert first == second
    [stored] = sandbox.objects("customer")
    assert stored["name"] == "Acme Ltd" and stored["metadata"]["q2c_external_id"] == "HUB-C-1"
    assert stored["address"]["country"] == "GB"


def test_an_invoice_created_twice_with_the_same_key_is_one_invoice(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    inv = invoice("USD", ("Architecture review", "1", "1500.00"), ("Workshop day", "2", "1200.00"))
    first = billing.create_invoice(inv, cus, "INV-BE-1")
    again = billing.create_invoice(inv, cus, "INV-BE-1")
    sandbox.expire_idempotency_keys()
    later = billing.create_invoice(inv, cus, "INV-BE-1")
    assert first == again == later
    assert len(sandbox.objects("invoice")) == 1 and len(sandbox.objects("invoiceitem")) == 2
    [stored] = sandbox.objects("invoice")
    assert stored["metadata"]["q2c_key"] == "INV-BE-1" and stored["total"] == 390000
    assert stored["collection_method"] == "send_invoice" and stored["auto_advance"] is False


def test_a_timeout_after_commit_on_create_still_yields_one_invoice(sandbox: StripeSandbox) -> None:
    billing = make(sandbox, timeout_seconds=0.3)
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    sandbox.inject("timeout_after_commit", path="^/v1/invoices$", method="POST", seconds=0.6, count=1)
    inv = invoice("USD", ("Milestone 1", "1", "5000.00"))
    invoice_id = billing.create_invoice(inv, cus, "INV-BE-2")
    assert billing.retries >= 1
    assert [i["id"] for i in sandbox.objects("invoice")] == [invoice_id]
    assert sandbox.calls("POST /v1/invoices") >= 2  # sent again with the same key: replayed
    billing.close()


def test_a_create_that_never_answers_is_in_doubt_and_found_on_the_next_run(sandbox: StripeSandbox) -> None:
    billing = make(sandbox, timeout_seconds=0.3)
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    sandbox.inject(
        "timeout_after_commit", path="^/v1/invoices$", method="POST", seconds=0.6, count=FAST.max_attempts
    )
    inv = invoice("USD", ("Milestone 1", "1", "5000.00"))
    with pytest.raises(InDoubtError):
        billing.create_invoice(inv, cus, "INV-BE-3")
    sandbox.faults.clear()
    sandbox.expire_idempotency_keys()  # even once Stripe forgot the key, the metadata finds the draft
    invoice_id = billing.create_invoice(inv, cus, "INV-BE-3")
    assert [i["id"] for i in sandbox.objects("invoice")] == [invoice_id]
    assert len(sandbox.objects("invoiceitem")) == 1
    billing.close()


@pytest.mark.parametrize(
    ("currency", "lines", "stripe_units", "total"),
    [
        ("USD", [("Consulting", "7.5", "150.00"), ("Licence", "3", "19.99")], [5997, 112500], "1184.97"),
        ("JPY", [("Consulting", "3", "120000"), ("Travel", "1", "8500")], [8500, 360000], "368500"),
        ("BHD", [("Consulting", "3", "1.250"), ("Courier", "1", "0.105")], [100, 3750], "3.850"),
    ],
)
def test_amounts_are_in_the_currencys_stripe_units(
    sandbox: StripeSandbox,
    billing: StripeBilling,
    currency: str,
    lines: list[tuple[str, str, str]],
    stripe_units: list[int],
    total: str,
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    invoice_id = billing.create_invoice(invoice(currency, *lines), cus, f"INV-{currency}")
    items = sandbox.objects("invoiceitem")
    assert sorted(i["amount"] for i in items) == stripe_units
    assert {i["currency"] for i in items} == {currency.lower()}
    issued = billing.finalize_invoice(invoice_id)
    assert issued.amount_total == Money.of(total, currency)
    assert issued.amount_due == Money.of(total, currency)
    # The canonical lines come back as they were sent, in their order (fractional hours included).
    assert [(line.quantity, line.unit_amount.amount) for line in issued.lines] == [
        (Decimal(q), Decimal(a)) for _, q, a in lines
    ]


def test_stripe_events_become_neutral_billing_events_in_the_currencys_units(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    invoice_id = billing.create_invoice(invoice("JPY", ("Consulting", "3", "120000")), cus, "INV-JPY")
    billing.finalize_invoice(invoice_id)
    sandbox.pay(invoice_id)
    [charge] = sandbox.objects("charge")
    sandbox.refund(str(charge["id"]), 60000)
    translated = {e["type"]: billing_event(e) for e in sandbox.objects("event")}
    assert translated["customer.created"] is None  # not a change the billing flows act on
    paid = translated["invoice.paid"]
    assert paid is not None
    event_id, event = paid
    assert (event.type, event.source, event.subject) == (
        "billing.invoice_paid",
        "stripe",
        f"Invoice/{invoice_id}",
    )
    assert event.id == event_id and event.correlation_id == "INV-JPY"
    change = InvoiceChange.model_validate(event.payload)
    assert (change.status, change.hub_key, change.attempts) == (InvoiceStatus.PAID, "INV-JPY", 1)
    assert change.total == change.paid == Money.of("360000", "JPY") and change.paid_at is not None
    refunded = translated["charge.refunded"]
    assert refunded is not None and refunded[1].type == "billing.payment_refunded"
    refund = InvoiceChange.model_validate(refunded[1].payload)
    assert (refund.invoice_id, refund.status, refund.refunded) == (invoice_id, None, Money.of("60000", "JPY"))
    # A refund of a charge no invoice was paid with is not the hub's; an unreadable invoice is refused.
    loose = {"id": "evt_x", "type": "charge.refunded", "data": {"object": {**charge, "invoice": None}}}
    assert billing_event(loose) is None
    broken = {"id": "evt_y", "type": "invoice.paid", "data": {"object": {"id": "in_1", "total": "a lot"}}}
    with pytest.raises(VendorPayloadError, match="evt_y"):
        billing_event(broken)


def test_stripe_units_conversion() -> None:
    assert to_stripe(Decimal("12.34"), "USD") == 1234
    assert to_stripe(Decimal("500"), "JPY") == 500
    assert to_stripe(Decimal("1.234"), "KWD") == 1230 and to_stripe(Decimal("1.235"), "KWD") == 1240
    assert to_stripe(Decimal("5"), "ISK") == 500
    assert from_stripe(3750, "BHD") == Decimal("3.750") and from_stripe("12.5", "USD") == Decimal("0.125")


def test_finalize_numbers_and_sends_then_invoice_changes_follow_the_cursor(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    first_id = billing.create_invoice(invoice("EUR", ("Milestone 1", "1", "2000.00")), cus, "INV-1")
    issued = billing.finalize_invoice(first_id)
    assert issued.status is InvoiceStatus.OPEN and issued.number and issued.number.endswith("-0001")
    assert issued.customer_id == "CUST-1" and issued.legal_entity == "UK01"
    assert issued.due_date is not None and issued.issue_date is not None
    assert billing.finalize_invoice(first_id).number == issued.number  # a re-run changes nothing
    assert sandbox.calls("POST /v1/invoices/") >= 2
    finalized = billing.changes_since(None)
    assert [(e.event.type, e.event.subject) for e in finalized.events] == [
        ("billing.invoice_finalized", f"Invoice/{first_id}")
    ]
    sandbox.pay(first_id)
    page = billing.changes_since(finalized.cursor)
    [paid] = page.events
    assert paid.event.type == "billing.invoice_paid" and paid.source_event_id.startswith("evt_")
    # The id a webhook delivery of the same change carries: seen both ways, accepted once.
    stripe_paid = [
        e["id"]
        for e in sandbox.objects("event")
        if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == first_id
    ]
    assert [paid.source_event_id] == stripe_paid and paid.event.id == stripe_paid[0]
    assert paid.event.payload["paid"] == {"amount": "2000.00", "currency": "EUR"}
    second_id = billing.create_invoice(invoice("EUR", ("Milestone 2", "1", "3000.00")), cus, "INV-2")
    billing.finalize_invoice(second_id)
    sandbox.pay(second_id)
    later = billing.changes_since(page.cursor)
    assert [(e.event.type, e.event.subject) for e in later.events] == [
        ("billing.invoice_finalized", f"Invoice/{second_id}"),
        ("billing.invoice_paid", f"Invoice/{second_id}"),
    ]
    assert billing.changes_since(later.cursor).events == []
    assert [e.source_event_id for e in billing.changes_since(None).events] == [
        e.source_event_id for e in [*finalized.events, *page.events, *later.events]
    ]
    assert billing.get_invoice(second_id).status is InvoiceStatus.PAID


def test_a_cursor_older_than_the_events_stripe_keeps_reads_from_the_oldest_kept(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    first = billing.create_invoice(invoice("EUR", ("M1", "1", "10.00")), cus, "INV-1")
    billing.finalize_invoice(first)
    cursor = billing.changes_since(None).cursor
    assert cursor is not None
    sandbox.pay(first)
    sandbox.store.delete("event", cursor)  # past Stripe's 30 days: gone, and unknown as a cursor
    page = billing.changes_since(cursor)
    assert [(e.event.type, e.event.subject) for e in page.events] == [
        ("billing.invoice_paid", f"Invoice/{first}")
    ]
    assert page.cursor is not None and page.cursor != cursor


def test_an_invoice_change_that_cannot_be_read_is_reported_with_its_event_and_passed(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    first = billing.create_invoice(invoice("EUR", ("M1", "1", "10.00")), cus, "INV-1")
    billing.finalize_invoice(first)
    start = billing.changes_since(None)
    bad_id = sandbox.billing.make_id("evt")  # after every event so far, as Stripe's would be
    bad = {
        "id": bad_id,
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()) + 5,
        "livemode": False,
        "pending_webhooks": 0,
        "api_version": "2025-03-31.basil",
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "in_broken", "object": "invoice", "currency": "eur", "total": "lots"}},
    }
    sandbox.billing.save(bad)
    page = billing.changes_since(start.cursor)
    assert page.events == [] and page.cursor == bad_id  # passed, not stalled on
    [error] = page.unreadable
    assert isinstance(error, VendorPayloadError) and error.details["event"] == bad_id
    assert [e.event.subject for e in start.events] == [f"Invoice/{first}"]


def test_void_open_invoice_delete_draft_refuse_paid(sandbox: StripeSandbox, billing: StripeBilling) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    opened = billing.create_invoice(invoice("USD", ("M1", "1", "100.00")), cus, "INV-V1")
    billing.finalize_invoice(opened)
    billing.void_invoice(opened)
    billing.void_invoice(opened)  # already void: nothing to do
    assert billing.get_invoice(opened).status is InvoiceStatus.VOID
    drafted = billing.create_invoice(invoice("USD", ("M2", "1", "100.00")), cus, "INV-V2")
    billing.void_invoice(drafted)
    assert drafted not in [i["id"] for i in sandbox.objects("invoice")]
    paid = billing.create_invoice(invoice("USD", ("M3", "1", "100.00")), cus, "INV-V3")
    billing.finalize_invoice(paid)
    sandbox.pay(paid)
    with pytest.raises(BusinessRuleError) as err:
        billing.void_invoice(paid)
    assert "credit note" in err.value.message


def test_subscription_and_credit_note_are_created_once(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    sub = billing.create_subscription(
        cus, key="SUP-1", product="Managed support", price=Money.of("2500.00", "GBP")
    )
    assert (
        billing.create_subscription(
            cus, key="SUP-1", product="Managed support", price=Money.of("2500.00", "GBP")
        )
        == sub
    )
    [stored] = sandbox.objects("subscription")
    assert stored["status"] == "active" and stored["items"]["data"][0]["price"]["unit_amount"] == 250000
    first_invoice = stored["latest_invoice"]
    note = billing.credit_note(first_invoice, Money.of("500.00", "GBP"), "CN-1", memo="service credit")
    assert billing.credit_note(first_invoice, Money.of("500.00", "GBP"), "CN-1") == note
    assert billing.get_invoice(first_invoice).amount_remaining == Money.of("2000.00", "GBP")


def test_stripe_errors_become_hub_errors(sandbox: StripeSandbox, billing: StripeBilling) -> None:
    with pytest.raises(NotFoundError) as missing:
        billing.create_invoice(invoice("USD", ("M1", "1", "1.00")), "cus_missing", "INV-E1")
    assert missing.value.details["vendor_code"] == "resource_missing"
    bad = make(sandbox, key="sk_test_wrong")
    with pytest.raises(AuthError):
        bad.upsert_customer(customer(), "HUB-C-9")
    assert bad.calls == 1 and bad.retries == 0  # not retried
    sandbox.inject("throttle", path="^/v1/customers/search$", count=2)
    billing.upsert_customer(customer(), "HUB-C-2")
    assert billing.retries == 2
    sandbox.inject("error", path="^/v1/customers/search$", status=503)
    with pytest.raises(TransientError) as down:
        billing.upsert_customer(customer(), "HUB-C-3")
    assert down.value.details["attempts"] == FAST.max_attempts
    sandbox.faults.clear()
    cus = billing.upsert_customer(customer(), "HUB-C-3")
    with pytest.raises(BusinessRuleError) as mixed:
        billing.create_invoice(
            Invoice(
                source_system="hub",
                source_id="X",
                customer_id="C",
                currency="USD",
                lines=[InvoiceLine(description="x", unit_amount=Money.of("1", "EUR"))],
            ),
            cus,
            "INV-E2",
        )
    assert mixed.value.details["vendor_code"] == "currency_mismatch"


def test_a_reused_key_with_other_parameters_is_a_clear_error(
    sandbox: StripeSandbox, billing: StripeBilling
) -> None:
    cus = billing.upsert_customer(customer(), "HUB-C-1")
    billing.api.call(
        lambda: billing.v1.invoices.create(
            {"customer": cus, "currency": "usd"}, {"idempotency_key": "q2c-invoice-INV-R"}
        ),
        what="create invoice",
    )
    with pytest.raises(BusinessRuleError) as err:
        billing.api.call(
            lambda: billing.v1.invoices.create(
                {"customer": cus, "currency": "eur"}, {"idempotency_key": "q2c-invoice-INV-R"}
            ),
            what="create invoice",
        )
    assert err.value.details["vendor_code"] == "idempotency_error"
    assert "other parameters" in err.value.message


def test_every_call_is_counted_and_passes_the_limiter(sandbox: StripeSandbox) -> None:
    billing = make(sandbox, limits={"concurrency": 2})
    billing.upsert_customer(customer(), "HUB-C-1")
    assert billing.calls == sandbox.calls("/v1/") == 2  # search, then create
    assert billing.api.limiter.concurrency == 2 and billing.api.limiter.peak == 1
    billing.close()


# -- webhooks ------------------------------------------------------------------------------------
def _delivery(secret: str, *, at: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(
        {"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}
    ).encode()
    return payload, sign(payload, secret, at or int(time.time()))


def test_verify_accepts_a_signed_delivery() -> None:
    payload, header = _delivery("whsec_test")
    assert verify(payload, header, "whsec_test")["type"] == "invoice.paid"


def test_verify_rejects_a_tampered_payload_and_a_wrong_secret() -> None:
    payload, header = _delivery("whsec_test")
    with pytest.raises(AuthError) as err:
        verify(payload.replace(b"invoice.paid", b"invoice.void"), header, "whsec_test")
    assert err.value.details["reason"] == "signature_mismatch"
    with pytest.raises(AuthError):
        verify(payload, header, "whsec_other")


def test_verify_rejects_a_stale_timestamp() -> None:
    payload, header = _delivery("whsec_test", at=1_700_000_000)
    with pytest.raises(AuthError) as err:
        verify(payload, header, "whsec_test", now=1_700_000_000 + 301)
    assert err.value.details["reason"] == "stale_timestamp"
    assert verify(payload, header, "whsec_test", now=1_700_000_000 + 299)["id"] == "evt_1"


def test_verify_reads_deliveries_of_the_sandbox(sandbox: StripeSandbox, billing: StripeBilling) -> None:
    hook = Receiver()
    try:
        endpoint = billing.v1.webhook_endpoints.create(
            {"url": hook.url, "enabled_events": ["customer.created"]}
        )
        billing.upsert_customer(customer(), "HUB-C-1")
        assert sandbox.webhooks.idle(5)
        received = hook.received
    finally:
        hook.close()
    event = verify(received[0][0], received[0][1], endpoint.secret)
    assert event["data"]["object"]["metadata"]["q2c_external_id"] == "HUB-C-1"
