"""Webhooks from the Salesforce sandbox: an outbound message for every deal that
becomes closed-won with approved terms, POSTed to a registered URL.

Salesforce outbound messages carry no signature, so the org's callout (an
Apex trigger or a flow's HTTP action) signs the JSON body with a shared
secret: ``X-Q2C-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "t.body"))``,
and the body names the organisation::

    {"organizationId": "00D…", "actionId": "04k…",
     "notifications": [{"id": "04l…", "sObject": {"type": "Opportunity", "Id": "006…", …}}]}

Delivery is at least once, as Salesforce does it: an answer other than 2xx,
or none, is retried with backoff (``retry_initial`` × ``retry_backoff``ⁿ),
``max_attempts`` in all, in a background thread. Every attempt is recorded in
:attr:`OutboundMessenger.attempts`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx

from quote2cash.sandbox.salesforce.org import Write

FIELDS = ("Id", "AccountId", "Name", "StageName", "IsWon", "Terms_Approved__c", "SystemModstamp")


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Q2C-Signature`` value of a body."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt and the answer."""

    notification: str
    opportunity: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged it."""
        return self.status is not None and 200 <= self.status < 300


def won(doc: dict[str, Any] | None) -> bool:
    """Whether an opportunity is closed-won with approved terms."""
    return bool(doc and doc.get("IsWon") and doc.get("Terms_Approved__c") and not doc.get("IsDeleted"))


class OutboundMessenger:
    """Sends a notification for each opportunity that becomes closed-won with approved terms."""

    def __init__(
        self,
        url: str,
        secret: str,
        org_id: str,
        *,
        retry_initial: float = 0.2,
        retry_backoff: float = 2.0,
        max_attempts: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.org_id = org_id
        self.retry_initial = retry_initial
        self.retry_backoff = retry_backoff
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.attempts: list[Attempt] = []
        self.sent_at: dict[str, float] = {}  # opportunity id -> when its first attempt was made
        self._ids = itertools.count(1)
        self._queue: deque[tuple[float, int, str, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"sf-outbound-{i}") for i in range(4)
        ]
        for t in self._threads:
            t.start()

    def observe(self, writes: list[Write]) -> None:
        """Queue a notification for every write that makes a deal closed-won with approved terms."""
        fresh = [w for w in writes if w.sobject == "Opportunity" and won(w.doc) and not won(w.old)]
        if not fresh:
            return
        with self._cond:
            for w in fresh:
                record = {"type": "Opportunity", **{k: w.doc.get(k) for k in FIELDS}}
                self._queue.append((time.monotonic(), 1, f"04l{next(self._ids):015d}", record))
            self._cond.notify_all()

    def pending(self) -> int:
        """Notifications queued and not yet acknowledged."""
        with self._cond:
            return len(self._queue)

    def stop(self) -> None:
        """Stop sending; what is queued is dropped, as the sandbox goes away."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as http:
            while True:
                with self._cond:
                    while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                        wait = self._queue[0][0] - time.monotonic() if self._queue else None
                        self._cond.wait(None if wait is None else max(wait, 0.005))
                    if self._stopping:
                        return
                    _, attempt, notification, record = self._queue.popleft()
                self._send(http, attempt, notification, record)

    def _send(self, http: httpx.Client, attempt: int, notification: str, record: dict[str, Any]) -> None:
        body = json.dumps(
            {
                "organizationId": self.org_id,
                "actionId": "04k000000000001AAA",
                "notifications": [{"id": notification, "sObject": record}],
            }
        ).encode()
        self.sent_at.setdefault(str(record["Id"]), time.time())
        status: int | None = None
        error: str | None = None
        try:
            status = http.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/json", "X-Q2C-Signature": sign(body, self.secret)},
            ).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        result = Attempt(notification, str(record["Id"]), attempt, status, error, time.time())
        with self._cond:
            self.attempts.append(result)
            if not result.ok and attempt < self.max_attempts:
                due = time.monotonic() + self.retry_initial * self.retry_backoff ** (attempt - 1)
                self._queue.append((due, attempt + 1, notification, record))
                self._queue = deque(sorted(self._queue, key=lambda item: item[0]))
            self._cond.notify_all()
