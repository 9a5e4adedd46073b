"""The HubSpot connector against the HubSpot sandbox over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from quote2cash.connectors._http import Limiter, RetryPolicy
from quote2cash.connectors.hubspot import (
    CONNECTOR,
    FIRM_PROPERTIES,
    WRITE_BACK_PROPERTIES,
    HubSpotClient,
    HubSpotCrm,
    HubSpotSettings,
    verify_v3,
)
from quote2cash.connectors.hubspot.adapter import MAPPING
from quote2cash.errors import AuthError, NotFoundError, VendorPayloadError
from quote2cash.mappings import Mapping
from quote2cash.model import BillingModel, Money
from quote2cash.ports import Crm, DealStatus
from quote2cash.registry import connector, register
from quote2cash.sandbox.hubspot import HubSpotSandbox

TOKEN = "pat-na1-q2c-sandbox"
FAST = RetryPolicy(max_attempts=4, initial_interval=0.01, max_interval=0.05)


def portal(**kw: Any) -> HubSpotSandbox:
    box = HubSpotSandbox(**kw)
    for object_type, definitions in FIRM_PROPERTIES.items():
        for definition in definitions:
            box.define_property(object_type, definition)
    return box


def settings(box: HubSpotSandbox, token: str = TOKEN, **kw: Any) -> HubSpotSettings:
    return HubSpotSettings(
        base_url=box.url, access_token_env="Q2C_HUBSPOT_TOKEN", secrets={"access_token": token}, **kw
    )


@pytest.fixture
def box() -> Iterator[HubSpotSandbox]:
    sandbox = portal()
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def crm(box: HubSpotSandbox) -> Iterator[HubSpotCrm]:
    register(CONNECTOR)
    adapter = connector("hubspot").build("crm", settings(box), None, FAST)
    assert isinstance(adapter, HubSpotCrm) and isinstance(adapter, Crm)
    yield adapter
    adapter.close()


def won(box: HubSpotSandbox, name: str, **props: str) -> str:
    return box.create(
        "deals",
        {"dealname": name, "dealstage": "closedwon", "q2c_terms_approved": "true", **props},
    )


def read_feed(crm: HubSpotCrm, cursor: str | None = None) -> tuple[list[str], str | None]:
    ids: list[str] = []
    while True:
        page = crm.won_deals(cursor)
        if not page.events:
            return ids, cursor
        ids += [e.event.subject.partition("/")[2] for e in page.events]
        cursor = page.cursor


def test_window_cursor_reads_a_backlog_beyond_the_search_cap_exactly_once() -> None:
    clock = [1_767_225_600_000]
    box = portal(search_cap=50, clock=lambda: clock[0])
    expected: list[str] = []
    for i in range(180):
        # Deals 40..46, 95..101 and 120..179 share one millisecond each: ties straddle the window
        # edges, and the last block (60 deals) is larger than a whole window.
        if not (40 < i <= 46 or 95 < i <= 101 or 120 < i < 180):
            clock[0] += 1
        expected.append(won(box, f"D{i}"))
        if i % 9 == 0:
            box.create("deals", {"dealname": f"open {i}", "dealstage": "contractsent"})
            box.create("deals", {"dealname": f"unapproved {i}", "dealstage": "closedwon"})
    box.start()
    try:
        crm = HubSpotCrm(
            "crm",
            HubSpotClient(box.url, TOKEN, retry=FAST),
            Mapping.load(MAPPING),
            settings(box, search_result_cap=50, search_page_size=20, max_events_per_poll=70),
        )
        ids, cursor = read_feed(crm)
        assert len(ids) == 180 and sorted(ids, key=int) == expected  # every won deal, none twice
        assert crm.won_deals(cursor).events == []
        clock[0] += 5
        box.update("deals", expected[3], {"amount": "10"})
        again = crm.won_deals(cursor)
        assert [e.source_event_id for e in again.events] == [f"Deal/{expected[3]}:closed_won"]
    finally:
        box.stop()


def deal_with_lines(box: HubSpotSandbox, quantity: str = "80") -> tuple[str, str]:
    company = box.create(
        "companies",
        {
            "name": "Acme LLP",
            "domain": "acme.example",
            "website": "https://www.acme.example",
            "country": "GB",
            "q2c_region": "UK & Ireland",
            "q2c_currency": "GBP",
            "q2c_payment_terms": "Net 30",
            "q2c_tax_region": "GB-STD",
            "q2c_tax_id": "GB123456789",
        },
    )
    deal = won(
        box,
        "Acme — Data & AI 1",
        amount="28800",
        closedate="2026-11-20T00:00:00.000Z",
        deal_currency_code="GBP",
        q2c_billing_model="time_and_materials",
        q2c_practice="Data & AI",
        q2c_start_date="2026-12-01",
        q2c_end_date="2027-03-01",
    )
    box.portal.associate("deals", deal, "companies", company, [341, 5])
    for role, hours, price, day in (
        ("Architect", quantity, "224", "2026-12-01"),
        ("Analyst", "80", "136", "2026-12-15"),
    ):
        box.create(
            "line_items",
            {"name": role, "quantity": hours, "price": price, "q2c_role": role, "q2c_service_date": day},
            deal=deal,
        )
    return deal, company


def test_get_deal_maps_the_deal_company_and_lines_to_the_canonical_model(
    box: HubSpotSandbox, crm: HubSpotCrm
) -> None:
    deal_id, company_id = deal_with_lines(box)
    deal = crm.get_deal(deal_id)
    opp, customer = deal.opportunity, deal.customer
    assert (customer.source_system, customer.source_id, customer.name) == ("hubspot", company_id, "Acme LLP")
    assert (customer.legal_entity, customer.currency, customer.domain) == ("UK01", "GBP", "acme.example")
    assert opp.customer_source_id == company_id and opp.is_won and opp.terms_approved
    assert opp.billing_model is BillingModel.TIME_AND_MATERIALS and opp.practice == "Data & AI"
    assert (opp.close_date, opp.start_date) == (date(2026, 11, 20), date(2026, 12, 1))
    assert opp.amount == Money.of(Decimal("28800"), "GBP")
    assert [(line.role, line.hours, line.rate) for line in opp.lines] == [
        ("Architect", Decimal("80"), Money.of(Decimal("224"), "GBP")),
        ("Analyst", Decimal("80"), Money.of(Decimal("136"), "GBP")),
    ]
    assert deal.erp_customer_id is None
    with pytest.raises(NotFoundError):
        crm.get_deal("99999999")


def test_an_unreadable_deal_is_a_vendor_payload_error(box: HubSpotSandbox, crm: HubSpotCrm) -> None:
    deal_id, _ = deal_with_lines(box, quantity="-8")
    with pytest.raises(VendorPayloadError) as caught:
        crm.get_deal(deal_id)
    assert caught.value.code == "deal.malformed"
    orphan = won(box, "No company", closedate="2026-11-20", q2c_billing_model="fixed_fee")
    with pytest.raises(VendorPayloadError):
        crm.get_deal(orphan)


def test_a_batch_of_deals_is_read_in_five_calls_each_with_its_own_lines_or_error(
    box: HubSpotSandbox, crm: HubSpotCrm
) -> None:
    good, company = deal_with_lines(box)
    other, _ = deal_with_lines(box, quantity="12")
    bad, _ = deal_with_lines(box, quantity="-8")
    orphan = won(box, "No company", closedate="2026-11-20", q2c_billing_model="fixed_fee")
    calls = crm.calls
    deals = crm.get_deals([good, other, bad, orphan, "99999999"])
    assert crm.calls == calls + 5  # deals, two association reads, companies, lines
    first, second = deals[good], deals[other]
    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    assert [line.hours for line in first.opportunity.lines] == [Decimal("80"), Decimal("80")]
    assert [line.hours for line in second.opportunity.lines] == [Decimal("12"), Decimal("80")]
    assert first.customer.source_id == company
    assert isinstance(deals[bad], VendorPayloadError) and deals[bad].code == "deal.malformed"
    assert isinstance(deals[orphan], VendorPayloadError) and "no associated company" in str(deals[orphan])
    assert isinstance(deals["99999999"], NotFoundError)


def test_write_back_creates_the_properties_once_and_sets_them(box: HubSpotSandbox, crm: HubSpotCrm) -> None:
    deal_id, company_id = deal_with_lines(box)
    assert "q2c_erp_project_id" not in box.property_names("deals")
    status = DealStatus(
        "synced",
        "project created",
        customer_id=company_id,
        erp_customer_id="C-77",
        erp_project_id="J-9",
        psa_project_id="W-3",
    )
    crm.write_back_deal(deal_id, status)
    for object_type, definitions in WRITE_BACK_PROPERTIES.items():
        assert {d["name"] for d in definitions} <= set(box.property_names(object_type))
    record = box.get("deals", deal_id)
    assert (record["q2c_erp_project_id"], record["q2c_psa_project_id"], record["q2c_erp_customer_id"]) == (
        "J-9",
        "W-3",
        "C-77",
    )
    assert record["q2c_integration_status"] == "synced"
    assert box.get("companies", company_id)["q2c_erp_customer_id"] == "C-77"
    calls = crm.calls
    crm.write_back_deal(deal_id, DealStatus("failed", None))
    assert crm.calls == calls + 1  # properties are ensured once: one PATCH now
    assert "q2c_integration_message" not in box.get("deals", deal_id)  # cleared
    assert crm.get_deal(deal_id).erp_customer_id == "C-77"


def test_throttling_is_honoured_with_hubspots_interval() -> None:
    # A window long enough that five reads land in one even on a busy machine.
    box = portal(rate_max=3, rate_interval_ms=1500)
    deal_id, _ = deal_with_lines(box)
    box.start()
    try:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        client = HubSpotClient(
            box.url, TOKEN, retry=RetryPolicy(max_attempts=6), sleep=sleep, limiter=Limiter(2)
        )
        crm = HubSpotCrm("crm", client, Mapping.load(MAPPING), settings(box))
        deal = crm.get_deal(deal_id)  # five reads against three a window
        assert len(deal.opportunity.lines) == 2
        assert crm.retries >= 1 and waits and all(w == pytest.approx(1.5) for w in waits)
        assert crm.calls == 5 + crm.retries
    finally:
        box.stop()


def test_a_rejected_token_is_an_auth_error_and_not_retried(box: HubSpotSandbox) -> None:
    crm = CONNECTOR.build("crm", settings(box, token="pat-na1-revoked"), None, FAST)
    assert isinstance(crm, HubSpotCrm)
    with pytest.raises(AuthError):
        crm.won_deals(None)
    assert crm.retries == 0


class _Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.received = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                self.send_response(204)
                self.end_headers()
                outer.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_webhook_signature_is_verified_and_tampered_or_stale_requests_refused() -> None:
    receiver = _Receiver()
    secret = "hubspot-app-secret"
    box = portal(webhook_url=f"{receiver.base}/hooks/hubspot", client_secret=secret)
    box.start()
    try:
        won(box, "Signed")
        assert receiver.received.wait(5)
    finally:
        box.stop()
        receiver.server.shutdown()
    path, headers, body = receiver.requests[0]
    uri = receiver.base + path
    verify_v3("POST", uri, body, headers, secret)
    assert json.loads(body)[0]["subscriptionType"] == "deal.creation"

    tampered = body.replace(b"deal.creation", b"deal.deletion")
    for args, reason in (
        (("POST", uri, tampered, headers, secret), "bad_signature"),
        (("POST", uri, body, headers, "another-secret"), "bad_signature"),
        (
            ("POST", uri, body, {k: v for k, v in headers.items() if "Signature" not in k}, secret),
            "missing_signature",
        ),
    ):
        with pytest.raises(AuthError) as caught:
            verify_v3(*args)
        assert caught.value.details["reason"] == reason
    signed_at = int(headers["X-HubSpot-Request-Timestamp"]) / 1000
    verify_v3("POST", uri, body, headers, secret, now=signed_at + 299)
    with pytest.raises(AuthError) as stale:
        verify_v3("POST", uri, body, headers, secret, now=signed_at + 301)
    assert stale.value.details["reason"] == "stale_timestamp"
