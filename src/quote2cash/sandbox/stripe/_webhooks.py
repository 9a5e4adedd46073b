"""Webhook delivery as Stripe does it: signed, retried with backoff, unordered, at least once.

Each event is sent to every enabled endpoint whose ``enabled_events`` name
its type (or ``*``) as ``POST`` with a JSON body and a
``Stripe-Signature: t={unix},v1={hex}`` header, where the hex is
HMAC-SHA256 of ``"{t}.{body}"`` under the endpoint's ``whsec_`` secret.
An answer other than 2xx, or no answer, is retried after ``retry_initial``
seconds, then ``retry_backoff`` times longer each time, ``max_attempts``
in all. With ``duplicate_rate`` an event that was delivered is sometimes
delivered again, and with ``reorder_window`` each delivery waits a random
part of that window, so later events can arrive first; both draw from the
sandbox's seed. Delivery runs in a background thread; every attempt is
recorded in :attr:`Deliverer.attempts`. Pending deliveries are kept in
memory only, as they would expire anyway.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from quote2cash.sandbox._base import DocStore


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: which event went where, and what the endpoint answered."""

    event: str
    type: str
    endpoint: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        """Whether the endpoint acknowledged it (2xx)."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event: str = field(compare=False)
    type: str = field(compare=False)
    endpoint: str = field(compare=False)
    payload: bytes = field(compare=False)
    attempt: int = field(compare=False, default=1)
    duplicate: bool = field(compare=False, default=False)


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for a payload."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Deliverer:
    """Sends events to webhook endpoints in a background thread (see the module docstring)."""

    def __init__(
        self,
        store: DocStore,
        *,
        seed: int = 0,
        retry_initial: float = 0.05,
        retry_backoff: float = 2.0,
        max_attempts: int = 5,
        duplicate_rate: float = 0.0,
        reorder_window: float = 0.0,
        timeout: float = 2.0,
    ) -> None:
        self.store = store
        self.retry_initial = retry_initial
        self.retry_backoff = retry_backoff
        self.max_attempts = max_attempts
        self.duplicate_rate = duplicate_rate
        self.reorder_window = reorder_window
        self.timeout = timeout
        self.attempts: list[Attempt] = []
        self._rng = random.Random(seed)
        self._queue: list[_Delivery] = []
        self._seq = 0
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- feeding -------------------------------------------------------------------------------
    def enqueue(self, event: dict[str, Any]) -> None:
        """Schedule an event for every endpoint that listens for its type."""
        endpoints = [
            e
            for e in self.store.all("webhook_endpoint")
            if e.get("status") == "enabled"
            and ("*" in e["enabled_events"] or event["type"] in e["enabled_events"])
        ]
        if not endpoints:
            return
        event["pending_webhooks"] = len(endpoints)
        self.store.put("event", event["id"], event)
        payload = json.dumps(event, indent=2).encode()
        with self._cond:
            for endpoint in endpoints:
                self._push(event, endpoint["id"], payload, 1, self._jitter(), duplicate=False)
            self._cond.notify_all()

    def _jitter(self) -> float:
        return self._rng.uniform(0, self.reorder_window) if self.reorder_window else 0.0

    def _push(
        self,
        event: dict[str, Any],
        endpoint: str,
        payload: bytes,
        attempt: int,
        delay: float,
        *,
        duplicate: bool,
    ) -> None:
        self._seq += 1
        heapq.heappush(
            self._queue,
            _Delivery(
                time.monotonic() + delay,
                self._seq,
                event["id"],
                event["type"],
                endpoint,
                payload,
                attempt,
                duplicate,
            ),
        )

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery thread (once)."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="stripe-webhooks")
        self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; undelivered events stay queued."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def pending(self) -> int:
        """Deliveries queued or in flight."""
        with self._cond:
            return len(self._queue) + self._busy

    def wait(self, until: Callable[[list[Attempt]], bool], timeout: float = 5.0) -> bool:
        """Block until ``until(attempts)`` holds (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not until(list(self.attempts)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or in flight."""
        return self.wait(lambda _: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as http:
            while True:
                with self._cond:
                    while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                        wait = self._queue[0].due - time.monotonic() if self._queue else None
                        self._cond.wait(timeout=None if wait is None else max(wait, 0.001))
                    if self._stopping:
                        return
                    delivery = heapq.heappop(self._queue)
                    self._busy += 1
                try:
                    self._deliver(http, delivery)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()

    def _deliver(self, http: httpx.Client, d: _Delivery) -> None:
        endpoint = self.store.get("webhook_endpoint", d.endpoint)
        if endpoint is None or endpoint.get("status") != "enabled":
            return
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(d.payload, endpoint["secret"], timestamp),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = http.post(endpoint["url"], content=d.payload, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = Attempt(
            d.event, d.type, d.endpoint, endpoint["url"], d.attempt, status, error, time.time(), d.duplicate
        )
        settled = not d.duplicate and (attempt.ok or d.attempt >= self.max_attempts)
        with self._cond:
            self.attempts.append(attempt)
            event = {"id": d.event, "type": d.type}
            if attempt.ok:
                if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
                    self._push(event, d.endpoint, d.payload, 1, self._jitter(), duplicate=True)
            elif d.attempt < self.max_attempts:
                delay = self.retry_initial * self.retry_backoff ** (d.attempt - 1)
                self._push(event, d.endpoint, d.payload, d.attempt + 1, delay, duplicate=d.duplicate)
        # Outside the queue's lock: request threads take the store's lock first, then the queue's.
        if settled:
            self._settled(d.event)

    def _settled(self, event_id: str) -> None:
        with self.store.lock:
            doc = self.store.get("event", event_id)
            if doc is not None and doc["pending_webhooks"] > 0:
                self.store.put("event", event_id, {**doc, "pending_webhooks": doc["pending_webhooks"] - 1})
