"""The Stripe sandbox over loopback HTTP: the official SDK, unmodified, against it; wire format; webhooks."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from quote2cash.sandbox.stripe import DEFAULT_KEY, StripeSandbox


def sdk(sb: StripeSandbox, key: str = DEFAULT_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": sb.url}, max_network_retries=0)


def raw(sb: StripeSandbox, key: str = DEFAULT_KEY) -> httpx.Client:
    return httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[StripeSandbox]:
    sb = StripeSandbox(tmp_path / "stripe.sqlite", webhook_retry_initial=0.02)
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


@pytest.fixture
def client(sandbox: StripeSandbox) -> stripe.StripeClient:
    return sdk(sandbox)


def draft(c: stripe.StripeClient, **params: Any) -> Any:
    customer = c.v1.customers.create(params={"name": "Acme LLP", "email": "ap@acme.test"})
    invoice = c.v1.invoices.create(
        params={
            "customer": customer.id,
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "currency": "usd",
            **params,
        }
    )
    c.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": 150000, "currency": "usd"}
    )
    c.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": invoice.id,
            "unit_amount": 12500,
            "quantity": 4,
            "currency": "usd",
            "description": "Workshop days",
        }
    )
    return c.v1.invoices.retrieve(invoice.id)


# -- the official SDK round-trips --------------------------------------------------------------
def test_customers_round_trip_with_metadata_search_and_delete(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"name": "Acme LLP", "metadata": {"q2c_external_id": "C-1", "region": "EMEA"}}
    )
    assert created.id.startswith("cus_") and created.metadata["q2c_external_id"] == "C-1"
    updated = client.v1.customers.update(created.id, params={"name": "Acme Ltd", "metadata": {"region": ""}})
    assert updated.name == "Acme Ltd" and dict(updated.metadata) == {"q2c_external_id": "C-1"}
    found = client.v1.customers.search(params={"query": "metadata['q2c_external_id']:'C-1'"})
    assert [c.id for c in found.data] == [created.id]
    assert client.v1.customers.search(params={"query": "metadata['q2c_external_id']:'C-2'"}).data == []
    assert client.v1.customers.delete(created.id).deleted is True
    assert client.v1.customers.retrieve(created.id).get("deleted") is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(created.id, params={"name": "gone"})
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_invoice_is_numbered_on_finalize_paid_with_a_card_and_refunded(client: stripe.StripeClient) -> None:
    invoice = draft(client, metadata={"q2c_key": "INV-1"})
    assert invoice.status == "draft" and invoice.number is None
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (200000, 200000, 200000)
    assert [line.amount for line in invoice.lines.data] == [50000, 150000]  # newest first
    opened = client.v1.invoices.finalize_invoice(invoice.id)
    assert opened.status == "open" and opened.number.endswith("-0001")
    assert opened.status_transitions.finalized_at is not None
    sent = client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open"
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid" and paid.paid is True
    assert (paid.amount_paid, paid.amount_remaining) == (200000, 0)
    charge = client.v1.charges.retrieve(paid.charge)
    assert charge.amount == 200000 and charge.status == "succeeded"
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 50000})
    assert refund.amount == 50000
    charge = client.v1.charges.retrieve(charge.id)
    assert charge.amount_refunded == 50000 and charge.refunded is False
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 200000})
    assert err.value.code == "amount_too_large"


def test_a_declined_card_is_a_card_error_and_the_invoice_stays_open(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    invoice = client.v1.invoices.finalize_invoice(draft(client).id)
    with pytest.raises(stripe.CardError) as err:
        client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert err.value.json_body["error"]["decline_code"] == "generic_decline"
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.attempt_count, after.amount_remaining) == ("open", 1, 200000)
    assert sandbox.pay(invoice.id)["status"] == "paid"


def test_void_and_uncollectible_follow_the_life_cycle(client: stripe.StripeClient) -> None:
    invoice = draft(client)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)  # a draft is deleted, not voided
    client.v1.invoices.finalize_invoice(invoice.id)
    voided = client.v1.invoices.void_invoice(invoice.id)
    assert voided.status == "void" and voided.amount_remaining == 0
    other = client.v1.invoices.finalize_invoice(draft(client).id)
    assert client.v1.invoices.mark_uncollectible(other.id).status == "uncollectible"
    assert client.v1.invoices.delete(draft(client).id).deleted is True


def test_tax_rates_add_exclusive_tax_to_the_total(client: stripe.StripeClient) -> None:
    vat = client.v1.tax_rates.create(params={"display_name": "VAT", "percentage": "20", "inclusive": False})
    invoice = draft(client, default_tax_rates=[vat.id])
    assert (invoice.subtotal, invoice.tax, invoice.total) == (200000, 40000, 240000)
    assert invoice.total_tax_amounts[0].tax_rate == vat.id


def test_subscription_bills_its_first_period_and_renews(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"name": "Acme LLP"})
    product = client.v1.products.create(params={"name": "Managed support"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 250000,
            "recurring": {"interval": "month"},
        }
    )
    assert price.type == "recurring" and price.recurring.interval == "month"
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id, "quantity": 2}],
            "collection_method": "send_invoice",
            "days_until_due": 14,
            "expand": ["latest_invoice"],
        }
    )
    assert sub.status == "active" and sub["items"].data[0].price.id == price.id
    first = sub.latest_invoice
    assert (
        first.status == "open"
        and first.amount_due == 500000
        and first.billing_reason == "subscription_create"
    )
    assert first.lines.data[0].type == "subscription"
    sandbox.advance(32 * 86400)
    invoices = client.v1.invoices.list(params={"subscription": sub.id})
    assert [i.billing_reason for i in invoices.data] == ["subscription_cycle", "subscription_create"]
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"


def test_credit_notes_lower_what_is_due_or_refund_what_was_paid(client: stripe.StripeClient) -> None:
    invoice = client.v1.invoices.finalize_invoice(draft(client).id)
    pre = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 30000, "memo": "goodwill"})
    assert pre.type == "pre_payment" and pre.number.endswith("-CN-01") and pre.status == "issued"
    assert client.v1.invoices.retrieve(invoice.id).amount_remaining == 170000
    paid = client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert paid.status == "paid" and paid.amount_paid == 170000
    line = paid.lines.data[0]
    post = client.v1.credit_notes.create(
        params={"invoice": invoice.id, "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id}]}
    )
    assert post.type == "post_payment" and post.total == line.amount
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1000000})


def test_zero_and_three_decimal_currencies(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Kaisha KK"})
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 120000, "currency": "jpy"}
    )
    assert item.amount == 120000 and item.currency == "jpy"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1255, "currency": "bhd"})
    assert err.value.code == "invalid_amount"


# -- the wire format -------------------------------------------------------------------------------
def test_unknown_parameters_are_refused_with_stripes_error_body(sandbox: StripeSandbox) -> None:
    with raw(sandbox) as http:
        top = http.post("/v1/customers", data={"name": "Acme", "nmae": "typo"})
        nested = http.post("/v1/customers", data={"invoice_settings[colour]": "red"})
        bad_int = http.post("/v1/customers", data={"balance": "ten"})
        missing = http.post("/v1/invoices", data={})
    assert top.status_code == 400
    assert top.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "message": "Received unknown parameter: nmae",
            "param": "nmae",
            "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        }
    }
    assert nested.json()["error"]["param"] == "invoice_settings[colour]"
    assert bad_int.json()["error"]["code"] == "parameter_invalid_integer"
    assert missing.json()["error"]["code"] == "parameter_missing"
    assert sandbox.objects("customer") == []  # nothing was created


def test_auth_missing_or_wrong_key_is_401(sandbox: StripeSandbox) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        none = http.get("/v1/customers")
    assert none.status_code == 401 and none.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.AuthenticationError):
        sdk(sandbox, "sk_test_wrong").v1.customers.list()
    with httpx.Client(base_url=sandbox.url) as http:
        unknown = http.get("/v1/nothing", headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert unknown.status_code == 404 and "Unrecognized request URL" in unknown.json()["error"]["message"]


def test_paging_with_starting_after_and_ending_before(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"name": f"C{i}"}).id for i in range(5)]
    newest_first = list(reversed(ids))
    first = client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in first.data] == newest_first[:2] and first.has_more and first.url == "/v1/customers"
    second = client.v1.customers.list(params={"limit": 2, "starting_after": first.data[-1].id})
    third = client.v1.customers.list(params={"limit": 2, "starting_after": second.data[-1].id})
    assert [c.id for c in second.data + third.data] == newest_first[2:]
    assert second.has_more and not third.has_more
    back = client.v1.customers.list(params={"limit": 2, "ending_before": third.data[0].id})
    assert [c.id for c in back.data] == newest_first[2:4]
    assert [c.id for c in client.v1.customers.list().auto_paging_iter()] == newest_first


def test_expand_replaces_ids_with_objects(client: stripe.StripeClient) -> None:
    invoice = draft(client)
    expanded = client.v1.invoices.retrieve(invoice.id, params={"expand": ["customer"]})
    assert expanded.customer.object == "customer" and expanded.customer.name == "Acme LLP"
    listed = client.v1.invoices.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.object == "customer"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(invoice.id, params={"expand": ["total"]})


def test_state_survives_a_restart_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "stripe.sqlite"
    first = StripeSandbox(path)
    first.start()
    invoice = sdk(first).v1.invoices.finalize_invoice(draft(sdk(first)).id)
    first.stop()
    first.store.close()
    second = StripeSandbox(path)
    second.start()
    try:
        again = sdk(second).v1.invoices.retrieve(invoice.id)
        assert (again.number, again.status, again.total) == (invoice.number, "open", 200000)
        assert len(sdk(second).v1.events.list(params={"limit": 100}).data) > 0
    finally:
        second.stop()
        second.store.close()


def test_injected_throttling_reaches_the_sdk_as_a_rate_limit(sandbox: StripeSandbox) -> None:
    sandbox.inject("throttle", path="^/v1/customers$", count=1)
    with pytest.raises(stripe.RateLimitError):
        sdk(sandbox).v1.customers.list()
    assert sdk(sandbox).v1.customers.list().data == []


def test_rate_limit_of_the_account(tmp_path: Path) -> None:
    sb = StripeSandbox(rate_limit=3)
    sb.start()
    try:
        with raw(sb) as http:
            codes = [http.get("/v1/customers").status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    finally:
        sb.stop()


# -- idempotency ------------------------------------------------------------------------------------
def test_same_key_and_parameters_replay_the_first_answer(sandbox: StripeSandbox) -> None:
    with raw(sandbox) as http:
        first = http.post("/v1/customers", data={"name": "Acme"}, headers={"Idempotency-Key": "k1"})
        again = http.post("/v1/customers", data={"name": "Acme"}, headers={"Idempotency-Key": "k1"})
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(sandbox.objects("customer")) == 1


def test_same_key_with_other_parameters_is_an_idempotency_error(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k2"})
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "k2"})
    assert err.value.http_status == 400 and err.value.json_body["error"]["type"] == "idempotency_error"
    assert len(sandbox.objects("customer")) == 1


def test_keys_belong_to_one_api_key(tmp_path: Path) -> None:
    sb = StripeSandbox(api_keys=(DEFAULT_KEY, "sk_test_other"))
    sb.start()
    try:
        a = sdk(sb).v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k"})
        b = sdk(sb, "sk_test_other").v1.customers.create(
            params={"name": "A"}, options={"idempotency_key": "k"}
        )
        assert a.id != b.id
    finally:
        sb.stop()


def test_concurrent_use_of_one_key_is_409_in_progress(sandbox: StripeSandbox) -> None:
    answers: list[httpx.Response] = []
    with sandbox.hold("^/v1/invoices$") as hold, raw(sandbox) as http:
        customer = http.post("/v1/customers", data={"name": "Acme"}).json()["id"]
        form = {"customer": customer, "currency": "usd"}
        first = threading.Thread(
            target=lambda: answers.append(
                http.post("/v1/invoices", data=form, headers={"Idempotency-Key": "k3"})
            )
        )
        first.start()
        assert hold.entered.wait(5)
        second = http.post("/v1/invoices", data=form, headers={"Idempotency-Key": "k3"})
        hold.release()
        first.join(5)
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "idempotency_error"
    assert "currently another in-progress request" in second.json()["error"]["message"]
    assert answers[0].status_code == 200 and len(sandbox.objects("invoice")) == 1


def test_a_write_that_timed_out_after_commit_replays_on_retry(sandbox: StripeSandbox) -> None:
    sandbox.inject("timeout_after_commit", path="^/v1/customers$", method="POST", seconds=1.0, count=1)
    with raw(sandbox) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/customers", data={"name": "Acme"}, headers={"Idempotency-Key": "k4"}, timeout=0.3)
        again = http.post("/v1/customers", data={"name": "Acme"}, headers={"Idempotency-Key": "k4"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.objects("customer")) == 1


# -- events and webhooks ------------------------------------------------------------------------------
class Receiver:
    """A webhook endpoint on loopback that records deliveries and answers a scripted status."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((body, self.headers["Stripe-Signature"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_events_are_listed_for_every_change(client: stripe.StripeClient) -> None:
    invoice = client.v1.invoices.finalize_invoice(draft(client).id)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types[0] == "invoice.finalized" and "invoice.created" in types and "customer.created" in types
    only = client.v1.events.list(params={"type": "invoice.finalized"})
    assert [e.data.object.id for e in only.data] == [invoice.id]
    assert client.v1.events.retrieve(only.data[0].id).type == "invoice.finalized"


def test_signed_deliveries_verify_with_the_sdk(
    sandbox: StripeSandbox, client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": receiver.url,
            "enabled_events": ["invoice.created", "invoice.finalized", "customer.created"],
        }
    )
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
    client.v1.invoices.finalize_invoice(draft(client).id)
    assert sandbox.webhooks.idle(5)
    events = [stripe.Webhook.construct_event(body, sig, endpoint.secret) for body, sig in receiver.received]
    types = {e.type for e in events}
    assert "invoice.finalized" in types and "customer.created" in types
    assert "invoiceitem.created" not in types  # not subscribed
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            receiver.received[0][0] + b" ", receiver.received[0][1], endpoint.secret
        )


def test_a_failing_endpoint_is_retried_with_backoff(
    sandbox: StripeSandbox, client: stripe.StripeClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["customer.created"]})
    created = client.v1.customers.create(params={"name": "Acme"})
    assert sandbox.webhooks.wait(lambda a: any(x.ok for x in a), 5)
    attempts = [a for a in sandbox.deliveries() if a.type == "customer.created"]
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert attempts[2].at - attempts[0].at >= 0.02 + 0.04 - 0.01  # 0.02 s, then twice as long
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.data.object.id == created.id and event.pending_webhooks == 0


def test_an_unreachable_endpoint_is_retried_then_given_up(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/down", "enabled_events": ["*"]})
    client.v1.customers.create(params={"name": "Acme"})
    assert sandbox.webhooks.wait(lambda a: len(a) >= 5, 10)
    assert sandbox.webhooks.idle(5)
    attempts = sandbox.deliveries()
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5] and all(a.error for a in attempts)


def test_duplicates_and_reordering_when_configured(tmp_path: Path, receiver: Receiver) -> None:
    sb = StripeSandbox(seed=7, webhook_duplicate_rate=0.5, webhook_reorder_window=0.2)
    sb.start()
    try:
        c = sdk(sb)
        endpoint = c.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["customer.created"]}
        )
        ids = [c.v1.customers.create(params={"name": f"C{i}"}).id for i in range(8)]
        assert sb.webhooks.idle(10)
        events = [stripe.Webhook.construct_event(b, s, endpoint.secret) for b, s in receiver.received]
        delivered = [e.data.object.id for e in events]
        assert set(delivered) == set(ids)
        assert len(delivered) > len(ids)  # some arrived twice
        assert delivered[: len(ids)] != ids  # not in creation order
    finally:
        sb.stop()


# -- responses conform to Stripe's published OpenAPI description -----------------------------------
def _spec() -> dict[str, Any]:
    """Stripe's published object schemas (kept with the tests; ``Q2C_STRIPE_SPEC`` names a full spec)."""
    override = os.environ.get("Q2C_STRIPE_SPEC")
    path = (
        Path(override)
        if override
        else Path(__file__).parent / "vendor_specs" / "stripe-2022-04-12-schemas.json"
    )
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def test_responses_match_the_published_openapi_schemas(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    import jsonschema
    import openapi_schema_validator as validators
    import referencing

    spec = _spec()
    resource = referencing.Resource.from_contents(spec, default_specification=referencing.jsonschema.DRAFT4)
    registry = referencing.Registry().with_resource("urn:stripe-spec", resource)

    def nullable(keyword: Any) -> Any:
        # Stripe's spec (OAS 3.0.0) marks fields that can be null with `nullable: true` beside `anyOf`
        # or `enum`; in 3.0.0 that adds null to what the schema accepts. openapi-schema-validator reads
        # nullable with the 3.0.3 wording (only beside `type`), so null is let through these two here.
        def check(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            if instance is None and schema.get("nullable") is True:
                return
            yield from keyword(validator, value, instance, schema)

        return check

    Validator = jsonschema.validators.extend(
        validators.OAS30Validator,
        {k: nullable(validators.OAS30Validator.VALIDATORS[k]) for k in ("anyOf", "enum")},
    )

    def check(schema: str, body: dict[str, Any]) -> None:
        validator = Validator({"$ref": f"urn:stripe-spec#/components/schemas/{schema}"}, registry=registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{schema}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        # Stricter than the schemas (which allow any extra property): no field Stripe does not have.
        known = set(spec["components"]["schemas"][schema]["properties"])
        assert set(body) <= known, f"{schema} has fields Stripe's does not: {set(body) - known}"

    with raw(sandbox) as http:
        customer = http.post("/v1/customers", data={"name": "Acme", "metadata[k]": "v"}).json()
        product = http.post("/v1/products", data={"name": "Support"}).json()
        price = http.post(
            "/v1/prices",
            data={
                "product": product["id"],
                "currency": "usd",
                "unit_amount": "5000",
                "recurring[interval]": "month",
            },
        ).json()
        invoice = http.post(
            "/v1/invoices",
            data={
                "customer": customer["id"],
                "currency": "usd",
                "collection_method": "send_invoice",
                "days_until_due": "30",
            },
        ).json()
        item = http.post(
            "/v1/invoiceitems",
            data={
                "customer": customer["id"],
                "invoice": invoice["id"],
                "amount": "150000",
                "currency": "usd",
            },
        ).json()
        opened = http.post(f"/v1/invoices/{invoice['id']}/finalize").json()
        paid = http.post(f"/v1/invoices/{invoice['id']}/pay", data={"payment_method": "pm_card_visa"}).json()
        charge = http.get(f"/v1/charges/{paid['charge']}").json()
        note = http.post("/v1/credit_notes", data={"invoice": invoice["id"], "amount": "1000"}).json()
        sub = http.post(
            "/v1/subscriptions",
            data={
                "customer": customer["id"],
                "items[0][price]": price["id"],
                "collection_method": "send_invoice",
                "days_until_due": "7",
            },
        ).json()
        listing = http.get("/v1/customers").json()
        event = http.get("/v1/events", params={"limit": 1}).json()["data"][0]
        endpoint = http.post(
            "/v1/webhook_endpoints", data={"url": "http://127.0.0.1:9/x", "enabled_events[0]": "*"}
        ).json()
        error = http.post("/v1/customers", data={"nope": "1"}).json()
        refund = http.post("/v1/refunds", data={"charge": charge["id"], "amount": "100"}).json()
    for schema, body in [
        ("customer", customer),
        ("product", product),
        ("price", price),
        ("invoice", invoice),
        ("invoiceitem", item),
        ("invoice", opened),
        ("invoice", paid),
        ("charge", charge),
        ("credit_note", note),
        ("subscription", sub),
        ("event", event),
        ("webhook_endpoint", endpoint),
        ("error", error),
        ("refund", refund),
    ]:
        check(schema, body)
    check("line_item", paid["lines"]["data"][0])
    check("credit_note_line_item", note["lines"]["data"][0])
    # A list answer has the shape of every list in the spec (e.g. the invoice's lines).
    list_schema = spec["components"]["schemas"]["invoice"]["properties"]["lines"]
    assert set(listing) == set(list_schema["required"]) and listing["object"] == "list"
    validator = Validator(
        {
            **list_schema,
            "properties": {
                **list_schema["properties"],
                "data": {"type": "array", "items": {"$ref": "urn:stripe-spec#/components/schemas/customer"}},
            },
        },
        registry=registry,
    )
    assert not list(validator.iter_errors(listing))
    # The checker itself catches a broken object.
    with pytest.raises(AssertionError):
        check("invoice", {**paid, "amount_due": "a lot"})
