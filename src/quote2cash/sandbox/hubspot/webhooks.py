"""Webhook deliveries of the HubSpot sandbox, signed as HubSpot signs them (v3).

A change matching a subscription (``deal.creation``, ``deal.propertyChange``
on ``dealstage``, …) becomes an event ``{eventId, subscriptionId, portalId,
appId, occurredAt, subscriptionType, attemptNumber, objectId, propertyName,
propertyValue, changeSource}``; events are POSTed as a JSON array (up to 100)
to the app's target URL with

- ``X-HubSpot-Request-Timestamp``: epoch milliseconds of this attempt;
- ``X-HubSpot-Signature-v3``: ``base64(HMAC-SHA256(client secret,
  method + uri + body + timestamp))``;
- ``X-HubSpot-Signature`` (v1, ``sha256(client secret + body)`` in hex) with
  ``X-HubSpot-Signature-Version: v1``.

A delivery that fails (no connection, a timeout, a 5xx or a 429) is sent
again after ``retry_seconds`` × 2^attempt, at most ``max_attempts`` times in
all, with ``attemptNumber`` counting from 0. Pending deliveries live in the
store, so a restarted sandbox still delivers them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.hubspot.schema import TYPES

_PENDING = "hs_webhook_pending"
_DONE = "hs_webhook_delivery"
BATCH = 100


def sign_v3(client_secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """HubSpot's v3 request signature."""
    message = f"{method}{uri}{body}{timestamp}".encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Subscription:
    """An app's webhook subscription (``propertyName`` for ``*.propertyChange`` only)."""

    id: int
    subscription_type: str
    property_name: str | None = None


DEFAULT_SUBSCRIPTIONS = (
    Subscription(1001, "deal.creation"),
    Subscription(1002, "deal.propertyChange", "dealstage"),
    Subscription(1003, "deal.propertyChange", "amount"),
    Subscription(1004, "company.creation"),
)


class WebhookSender:
    """Turns portal changes into events and delivers them from a background thread."""

    def __init__(
        self,
        store: DocStore,
        clock: Callable[[], int],
        *,
        client_secret: str,
        app_id: int,
        portal_id: int,
        subscriptions: tuple[Subscription, ...] = DEFAULT_SUBSCRIPTIONS,
        retry_seconds: float = 1.0,
        max_attempts: int = 10,
        timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.url: str | None = None
        self.client_secret = client_secret
        self.app_id = app_id
        self.portal_id = portal_id
        self.subscriptions = subscriptions
        self.retry_seconds = retry_seconds
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = 0

    # -- events ----------------------------------------------------------------------
    def on_change(
        self, type_name: str, object_id: str, diff: dict[str, tuple[str | None, str]], created: bool
    ) -> None:
        """Queue the events a change raises (nothing while no target URL is set)."""
        if self.url is None:
            return
        singular = TYPES[type_name].singular
        events = []
        for sub in self.subscriptions:
            kind, _, action = sub.subscription_type.partition(".")
            if kind != singular:
                continue
            if action == "creation" and created:
                events.append(self._event(sub, object_id))
            elif action == "propertyChange" and sub.property_name in diff:
                value = diff[sub.property_name][1]
                events.append(self._event(sub, object_id, sub.property_name, value))
        if events:
            self._queue(events)

    def _event(
        self, sub: Subscription, object_id: str, name: str | None = None, value: Any = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventId": self.store.next_id("hs_webhook_event", start=100_000),
            "subscriptionId": sub.id,
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": self.clock(),
            "subscriptionType": sub.subscription_type,
            "attemptNumber": 0,
            "objectId": int(object_id),
            "changeFlag": "CREATED" if name is None else "PROPERTY_CHANGED",
            "changeSource": "CRM",
        }
        if name is not None:
            event["propertyName"] = name
            event["propertyValue"] = value
        return event

    def _queue(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), BATCH):
            key = str(self.store.next_id(_PENDING))
            self.store.put(
                _PENDING, key, {"events": events[start : start + BATCH], "attempt": 0, "due": time.time()}
            )
        self._wake.set()

    # -- delivery --------------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hubspot-webhooks")
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering (pending deliveries stay in the store)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def pending(self) -> int:
        """Deliveries waiting to be sent or retried (plus one being sent)."""
        return self.store.count(_PENDING) + self._busy

    def delivered(self) -> list[dict[str, Any]]:
        """Every finished delivery: ``{"events", "attempts", "status", "ok"}`` in order."""
        return self.store.all(_DONE)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as http:
            while not self._stop.is_set():
                due = [(k, d) for k, d in self.store.items(_PENDING) if d["due"] <= time.time()]
                if not due or self.url is None:
                    waits = [d["due"] - time.time() for _, d in self.store.items(_PENDING)]
                    self._wake.wait(max(0.01, min(waits)) if waits else 0.5)
                    self._wake.clear()
                    continue
                for key, delivery in due:
                    if self._stop.is_set():
                        return
                    self._busy = 1
                    try:
                        self._send(http, key, delivery)
                    finally:
                        self._busy = 0

    def _send(self, http: httpx.Client, key: str, delivery: dict[str, Any]) -> None:
        attempt = int(delivery["attempt"])
        events = [{**e, "attemptNumber": attempt} for e in delivery["events"]]
        body = json.dumps(events, separators=(",", ":"))
        # The request timestamp is wall-clock time, whatever clock stamps the records.
        stamp = str(int(time.time() * 1000))
        url = str(self.url)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": sign_v3(self.client_secret, "POST", url, body, stamp),
            "X-HubSpot-Signature": hashlib.sha256((self.client_secret + body).encode()).hexdigest(),
            "X-HubSpot-Signature-Version": "v1",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
        }
        try:
            status = http.post(url, content=body.encode(), headers=headers).status_code
        except httpx.HTTPError:
            status = 0
        retry = status == 0 or status == 429 or status >= 500
        if retry and attempt + 1 < self.max_attempts:
            delay = self.retry_seconds * 2**attempt
            self.store.put(_PENDING, key, {**delivery, "attempt": attempt + 1, "due": time.time() + delay})
            return
        self.store.delete(_PENDING, key)
        self.store.put(
            _DONE,
            key,
            {"events": events, "attempts": attempt + 1, "status": status, "ok": 200 <= status < 300},
        )
