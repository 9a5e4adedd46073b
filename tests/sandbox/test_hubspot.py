"""The HubSpot sandbox speaks HubSpot's wire: the official SDK, unmodified, works against it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hubspot  # type: ignore[import-untyped]
import pytest
from hubspot.crm.companies import (  # type: ignore[import-untyped]
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals import PublicObjectSearchRequest  # type: ignore[import-untyped]
from hubspot.crm.deals.exceptions import ApiException  # type: ignore[import-untyped]

from quote2cash.sandbox.hubspot import HubSpotSandbox, sign_v3

TOKEN = "pat-na1-q2c-sandbox"


@pytest.fixture
def box() -> Iterator[HubSpotSandbox]:
    sandbox = HubSpotSandbox()
    sandbox.define_property(
        "companies",
        {
            "name": "hub_external_id",
            "label": "Hub external id",
            "type": "string",
            "fieldType": "text",
            "groupName": "companyinformation",
            "hasUniqueValue": True,
        },
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


def sdk(box: HubSpotSandbox, token: str = TOKEN) -> Any:
    return hubspot.HubSpot(access_token=token, host=box.url)


def error_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_sdk_creates_associates_and_searches(box: HubSpotSandbox) -> None:
    client = sdk(box)
    company = client.crm.companies.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"name": "Acme LLP", "domain": "acme.example"})
    )
    deals = [
        client.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={"dealname": f"D{i}", "dealstage": stage, "amount": str(i)}
            )
        )
        for i, stage in enumerate(["closedwon", "appointmentscheduled", "closedwon"])
    ]
    assert deals[0].properties["hs_object_id"] == deals[0].id
    assert deals[0].properties["createdate"].endswith("Z")
    client.crm.associations.v4.basic_api.create_default("deals", deals[0].id, "companies", company.id)
    read = client.crm.associations.v4.batch_api.get_page(
        "deals", "companies", {"inputs": [{"id": deals[0].id}, {"id": deals[1].id}]}
    )
    assert [(r._from.id, [t.to_object_id for t in r.to]) for r in read.results] == [
        (deals[0].id, [company.id])
    ]
    assert read.num_errors == 1  # the deal without a company is a 207 error
    back = client.crm.associations.v4.batch_api.get_page(
        "companies", "deals", {"inputs": [{"id": company.id}]}
    )
    assert back.results[0].to[0].association_types[0].type_id == 342

    found = client.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"},
                        {"propertyName": "amount", "operator": "GTE", "value": "1"},
                    ]
                },
                {"filters": [{"propertyName": "dealname", "operator": "IN", "values": ["d1"]}]},
            ],
            sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
            properties=["dealname"],
            limit=2,
        )
    )
    assert found.total == 2 and [d.properties["dealname"] for d in found.results] == ["D2", "D1"]
    assert found.paging is None


def test_batch_upsert_answers_207_for_the_inputs_that_fail(box: HubSpotSandbox) -> None:
    client = sdk(box)
    box.create("companies", {"name": "Old name", "hub_external_id": "HUB-1"})
    answer = client.crm.companies.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"idProperty": "hub_external_id", "id": "HUB-1", "properties": {"name": "Acme LLP"}},
                {"idProperty": "hub_external_id", "id": "HUB-2", "properties": {"name": "Beta GmbH"}},
                {"idProperty": "hub_external_id", "id": "HUB-3", "properties": {"numberofemployees": "many"}},
            ]
        )
    )
    assert type(answer).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert sorted((r.properties["name"], r.new) for r in answer.results) == [
        ("Acme LLP", False),
        ("Beta GmbH", True),
    ]
    assert answer.num_errors == 1 and answer.errors[0].errors[0].code == "INVALID_DECIMAL"
    assert sorted(c["name"] for c in box.records("companies")) == ["Acme LLP", "Beta GmbH"]


def test_unknown_property_is_refused_with_property_doesnt_exist(box: HubSpotSandbox) -> None:
    with pytest.raises(ApiException) as caught:
        sdk(box).crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"dealname": "X", "q2c_not_defined": "1"})
        )
    body = error_body(caught.value)
    assert caught.value.status == 400 and body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST" and body["correlationId"]
    assert box.records("deals") == []


def test_requests_without_a_valid_private_app_token_get_401(box: HubSpotSandbox) -> None:
    for token in ("pat-na1-wrong", None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = httpx.get(f"{box.url}/crm/v3/objects/deals", headers=headers)
        assert answer.status_code == 401 and answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_spent_interval_limit_answers_429_with_hubspot_headers() -> None:
    box = HubSpotSandbox(rate_max=3, rate_interval_ms=60_000)
    box.start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        seen = [httpx.get(f"{box.url}/crm/v3/objects/deals", headers=headers) for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in seen[:3]] == ["2", "1", "0"]
        limited = seen[3]
        assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "60000"
        assert limited.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert int(limited.headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0
        assert limited.json()["errorType"] == "RATE_LIMIT"
    finally:
        box.stop()


def test_search_cannot_page_beyond_its_result_cap() -> None:
    box = HubSpotSandbox(search_cap=30)
    for i in range(45):
        box.create("deals", {"dealname": f"D{i}", "dealstage": "closedwon"})
    box.start()
    try:
        api = sdk(box).crm.deals.search_api
        after, names = None, []
        with pytest.raises(ApiException) as caught:
            while True:
                page = api.do_search(
                    PublicObjectSearchRequest(limit=10, after=after, properties=["dealname"])
                )
                assert page.total == 45
                names += [d.properties["dealname"] for d in page.results]
                after = page.paging.next.after
        assert caught.value.status == 400 and error_body(caught.value)["category"] == "VALIDATION_ERROR"
        assert len(names) == 30  # only the first 30 are reachable by one query
        with pytest.raises(ApiException):
            api.do_search(PublicObjectSearchRequest(limit=201))
    finally:
        box.stop()


def test_records_survive_a_restart_on_the_same_file(tmp_path: Path) -> None:
    first = HubSpotSandbox(tmp_path / "hubspot.sqlite")
    deal = first.create("deals", {"dealname": "Kept", "dealstage": "closedwon"})
    first.store.close()
    second = HubSpotSandbox(tmp_path / "hubspot.sqlite")
    assert second.get("deals", deal)["dealname"] == "Kept"
    assert second.create("deals", {"dealname": "Next"}) != deal


class _Receiver:
    """A webhook target on loopback that fails its first ``failures`` deliveries."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = threading.Event()
        self.received = received
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                failing = len(outer.requests) <= outer.failures
                self.send_response(500 if failing else 204)
                self.end_headers()
                if not failing:
                    received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/hubspot?portal=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_deal_stage_change_is_delivered_signed_and_retried() -> None:
    receiver = _Receiver(failures=1)
    box = HubSpotSandbox(webhook_url=receiver.url, webhook_retry_seconds=0.05)
    box.start()
    try:
        deal = box.create("deals", {"dealname": "D", "dealstage": "appointmentscheduled"})
        receiver.received.wait(5)
        receiver.received.clear()
        box.update("deals", deal, {"dealstage": "closedwon"})
        assert receiver.received.wait(5)
    finally:
        box.stop()
        receiver.close()
    attempts = [json.loads(body) for _, _, body in receiver.requests]
    assert [e[0]["attemptNumber"] for e in attempts[:2]] == [0, 1]  # the failed delivery came again
    change = attempts[-1][0]
    assert change["subscriptionType"] == "deal.propertyChange" and change["objectId"] == int(deal)
    assert (change["propertyName"], change["propertyValue"]) == ("dealstage", "closedwon")
    _, headers, body = receiver.requests[-1]
    stamp = headers["X-HubSpot-Request-Timestamp"]
    expected = sign_v3("hubspot-sandbox-client-secret", "POST", receiver.url, body.decode(), stamp)
    assert headers["X-HubSpot-Signature-v3"] == expected
