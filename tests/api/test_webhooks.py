"""Webhook intake: each source verified by its own scheme, de-duplicated by event id,
stored before it is acknowledged; bad signatures, stale timestamps, oversized and
malformed bodies are refused with a clear 4xx and nothing stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa

from quote2cash.api._signing import sign
from quote2cash.flows.intake import poll_closed_won
from quote2cash.sandbox.salesforce.app import ORG_ID
from quote2cash.sandbox.stripe._webhooks import sign as stripe_sign
from quote2cash.store.tables import flow_run, inbox
from tests.api.conftest import SECRETS, Api
from tests.flows.conftest import add_deal, wait_for_flows

OLD = int(time.time()) - 3600


def _inbox(api: Api) -> list[tuple[str, str, int]]:
    return api.hub.read(
        lambda c: [
            (str(s), str(e), int(d))
            for s, e, d in c.execute(sa.select(inbox.c.source, inbox.c.source_event_id, inbox.c.duplicates))
        ]
    )


def salesforce_body(opp_id: str = "006000000000001AAA", org: str = ORG_ID) -> bytes:
    record = {
        "type": "Opportunity", "Id": opp_id, "AccountId": "001000000000001AAA", "Name": "Deal",
        "StageName": "Closed Won", "IsWon": True, "Terms_Approved__c": True,
        "SystemModstamp": "2026-11-20T10:00:00.000+0000",
    }  # fmt: skip
    return json.dumps({"organizationId": org, "notifications": [{"id": "04l1", "sObject": record}]}).encode()


def own_body(source: str, event_id: str = "evt-1") -> bytes:
    event = {"id": event_id, "type": "record.changed", "subject": f"{source}/42", "payload": {"id": "42"}}
    return json.dumps({"events": [event]}).encode()


def stripe_body(event_id: str = "evt_1") -> bytes:
    event = {
        "id": event_id, "object": "event", "type": "invoice.paid", "created": int(time.time()),
        "data": {"object": {
            "id": "in_123", "object": "invoice", "status": "paid", "currency": "usd",
            "subtotal": 36000, "total": 36000, "amount_paid": 36000, "attempt_count": 1,
        }},
    }  # fmt: skip
    return json.dumps(event).encode()


def hubspot_body(event_id: int = 1) -> bytes:
    return json.dumps(
        [
            {
                "eventId": event_id,
                "subscriptionType": "deal.propertyChange",
                "objectId": 77,
                "occurredAt": 1764000000000,
            }
        ]
    ).encode()


def hubspot_headers(url: str, body: bytes, secret: str, stamp_ms: int) -> dict[str, str]:
    message = b"POST" + url.encode() + body + str(stamp_ms).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(stamp_ms)}


Signer = Callable[[Api, bytes, str, int], dict[str, str]]


def _own(api: Api, body: bytes, secret: str, t: int) -> dict[str, str]:
    return {"X-Q2C-Signature": sign(body, secret, t)}


def _stripe(api: Api, body: bytes, secret: str, t: int) -> dict[str, str]:
    return {"Stripe-Signature": stripe_sign(body, secret, t)}


def _hubspot(api: Api, body: bytes, secret: str, t: int) -> dict[str, str]:
    return hubspot_headers(f"{api.url}/webhooks/hubspot", body, secret, t * 1000)


SOURCES: dict[str, tuple[Callable[[], bytes], Signer]] = {
    "salesforce": (salesforce_body, _own),
    "stripe": (stripe_body, _stripe),
    "hubspot": (hubspot_body, _hubspot),
    "netsuite": (lambda: own_body("netsuite"), _own),
    "kantata": (lambda: own_body("kantata"), _own),
}


def test_each_source_verified_stored_once_and_acknowledged(api: Api) -> None:
    for source in SOURCES:
        _verified_once(api, source)
    assert sorted(s for s, _, _ in _inbox(api)) == sorted(SOURCES)


def _verified_once(api: Api, source: str) -> None:
    make, signer = SOURCES[source]
    body = make()
    with api.client(None) as sender:
        now = int(time.time())

        def post(payload: bytes, headers: dict[str, str]) -> httpx.Response:
            return sender.post(
                f"/webhooks/{source}",
                content=payload,
                headers={"Content-Type": "application/json", **headers},
            )

        before = len(_inbox(api))
        bad = post(body, signer(api, body, "not-the-secret", now))
        assert bad.status_code == 401 and bad.json()["code"] == "webhook.signature_invalid", bad.text
        stale = post(body, signer(api, body, SECRETS[source], OLD))
        assert stale.status_code == 401 and stale.json()["code"] == "webhook.stale", stale.text
        tampered = post(body + b" ", signer(api, body, SECRETS[source], now))
        assert tampered.status_code == 401
        unsigned = post(body, {})
        assert unsigned.status_code == 401
        assert len(_inbox(api)) == before

        first = post(body, signer(api, body, SECRETS[source], now))
        assert first.status_code == 200, first.text
        assert first.json() == {"ack": True, "accepted": 1, "duplicates": 0, "ignored": 0}
        again = post(body, signer(api, body, SECRETS[source], int(time.time())))
        assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1
    [(_, _, duplicates)] = [row for row in _inbox(api) if row[0] == source]
    assert duplicates == 1


def test_oversized_and_malformed_bodies_are_refused_and_nothing_is_stored(api: Api) -> None:
    for source in SOURCES:
        _refused(api, source)
    assert _inbox(api) == []


def _refused(api: Api, source: str) -> None:
    _, signer = SOURCES[source]
    secret = SECRETS[source]
    now = int(time.time())
    with api.client(None) as sender:
        huge = b'{"events": [' + b" " * 70000 + b"]}"
        r = sender.post(f"/webhooks/{source}", content=huge, headers=signer(api, huge, secret, now))
        assert r.status_code == 413 and r.json()["code"] == "api.too_large", r.text

        def chunks() -> Any:
            for _ in range(20):
                yield b" " * 5000

        r = sender.post(f"/webhooks/{source}", content=chunks(), headers=signer(api, b"", secret, now))
        assert r.status_code in (401, 413), r.text  # no length given: refused once past the limit
        for junk in (b"{not json", b"[1, 2", b'{"notifications": "x", "events": 3}', b"\xff\xfe"):
            r = sender.post(f"/webhooks/{source}", content=junk, headers=signer(api, junk, secret, now))
            assert r.status_code == 400, (junk, r.status_code, r.text)
            assert r.json()["code"] == "webhook.malformed"
            assert r.headers["content-type"].startswith("application/problem+json")


def test_a_stripe_event_the_billing_flows_do_not_act_on_is_acknowledged_as_ignored(api: Api) -> None:
    now = int(time.time())
    other = {"id": "evt_c", "object": "event", "type": "customer.created", "created": now,
             "data": {"object": {"id": "cus_1", "object": "customer"}}}  # fmt: skip
    unreadable = {"id": "evt_u", "object": "event", "type": "invoice.paid", "created": now,
                  "data": {"object": {"id": "in_9", "object": "invoice", "total": 5}}}  # no currency  # fmt: skip
    with api.client(None) as sender:
        answers = []
        for event in (other, unreadable):
            body = json.dumps(event).encode()
            answers.append(
                sender.post(
                    "/webhooks/stripe", content=body, headers=_stripe(api, body, SECRETS["stripe"], now)
                )
            )
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json() == {"ack": True, "accepted": 0, "duplicates": 0, "ignored": 1}
    assert answers[1].status_code == 400 and answers[1].json()["code"] == "webhook.malformed"
    assert "evt_u" in answers[1].json()["detail"]
    assert _inbox(api) == []


def test_salesforce_names_its_organisation(api: Api) -> None:
    body = salesforce_body(org="00DOTHER000000XAAA")
    with api.client(None) as sender:
        r = sender.post(
            "/webhooks/salesforce",
            content=body,
            headers={"X-Q2C-Signature": sign(body, SECRETS["salesforce"])},
        )
    assert r.status_code == 401 and r.json()["code"] == "webhook.org_mismatch"
    assert _inbox(api) == []


def test_a_source_can_require_a_token_besides_its_signature(api: Api) -> None:
    api.hub.config.api.webhooks["kantata"].token_required = True  # type: ignore[index]
    body = own_body("kantata")
    headers = {"X-Q2C-Signature": sign(body, SECRETS["kantata"])}
    with api.client(None) as anonymous, api.client("webhook:kantata") as sender, api.client("read") as reader:
        assert anonymous.post("/webhooks/kantata", content=body, headers=headers).status_code == 401
        assert reader.post("/webhooks/kantata", content=body, headers=headers).status_code == 403
        assert sender.post("/webhooks/kantata", content=body, headers=headers).json()["accepted"] == 1


def test_sandbox_webhooks_and_polling_feed_one_inbox_and_each_deal_runs_once(api: Api) -> None:
    messenger = api.boxes.salesforce.register_webhook(f"{api.url}/webhooks/salesforce", SECRETS["salesforce"])
    deals = [add_deal(api.boxes)[1] for _ in range(3)]
    statuses = wait_for_flows(api.hub, 3, timeout=60)
    assert set(statuses.values()) == {"completed"}, statuses
    poll = poll_closed_won(api.hub)  # the same changes seen by polling: all duplicates
    assert poll.seen == 3 and poll.accepted == 0
    assert sorted(e for _, e, _ in _inbox(api)) == sorted(f"Opportunity/{d}:closed_won" for d in deals)
    assert all(a.ok for a in messenger.attempts)
    runs = api.hub.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(flow_run)).scalar_one())
    assert runs == 3


def test_a_burst_of_deliveries_never_drops_one(api: Api) -> None:
    n = 60
    bodies = [own_body("netsuite", f"evt-{i}") for i in range(n)]
    answers: list[int] = []

    def send(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=api.url, timeout=60) as c:
            for b in chunk:
                for _ in range(5):  # a sender retries until it gets a 2xx
                    r = c.post(
                        "/webhooks/netsuite",
                        content=b,
                        headers={"X-Q2C-Signature": sign(b, SECRETS["netsuite"])},
                    )
                    if r.status_code == 200:
                        break
                answers.append(r.status_code)

    threads = [threading.Thread(target=send, args=(bodies[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * n
    assert sorted(e for s, e, _ in _inbox(api) if s == "netsuite") == sorted(f"evt-{i}" for i in range(n))
