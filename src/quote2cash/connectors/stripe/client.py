"""The wire to Stripe: the official SDK over the hub's HTTP transport, limiter and retry policy.

The SDK (``stripe.StripeClient``) builds requests and parses answers; it is
given an HTTP client of ours (:class:`LimitedHttpClient`, a
``stripe.HTTPClient``) built on httpx, so every request passes the system's
:class:`~quote2cash.connectors._http.Limiter`, is counted, and can run over
an injected transport. The SDK's own retries are switched off
(``max_network_retries=0``): the hub's retry policy is the only retry layer
(:meth:`StripeApi.call`), deciding on the hub error's type.

Every ``POST`` the connector sends carries an idempotency key derived from
the hub's external id, so resending it after a timeout is safe: Stripe
replays the first answer. A timeout is therefore retried like any transient
failure; when the retries run out it is raised as ``InDoubtError`` and the
step that made the call looks the record up (by its ``metadata``) first.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import stripe

from quote2cash.connectors._http import Limiter, Retrying, RetryPolicy
from quote2cash.connectors.stripe.errors import SYSTEM, from_stripe
from quote2cash.errors import HubError, InDoubtError, TransientError

T = TypeVar("T")
#: Stripe accepts idempotency keys of up to 255 characters.
MAX_KEY = 255


def idempotency_key(*parts: str) -> str:
    """A deterministic idempotency key from the hub's ids (hashed when too long for Stripe)."""
    key = "q2c-" + "-".join(parts)
    if len(key) <= MAX_KEY:
        return key
    return "q2c-" + hashlib.sha256(key.encode()).hexdigest()


class LimitedHttpClient(stripe.HTTPClient):
    """The SDK's HTTP client on httpx: every request passes the limiter and is counted.

    Args:
        limiter: the system's limiter.
        timeout: seconds for one request.
        transport: replaces the network (tests pass a transport or nothing).
    """

    name = "quote2cash-httpx"

    def __init__(
        self, limiter: Limiter, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__()
        self.limiter = limiter
        self.calls = 0
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def request(  # type: ignore[override]  # the SDK's own clients answer bytes too
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """Send one request; an httpx failure becomes the SDK's ``APIConnectionError`` (cause kept)."""
        self.calls += 1
        try:
            with self.limiter:
                response = self._http.request(
                    method.upper(), url, headers=dict(headers or {}), content=post_data
                )
        except httpx.HTTPError as exc:
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                f"no answer from {httpx.URL(url).host} ({type(exc).__name__}: {exc})", should_retry=True
            ) from exc
        return response.content, response.status_code, response.headers

    def request_stream(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> tuple[Any, int, Mapping[str, str]]:
        """Streamed answers are not used by billing; served whole."""
        content, status, response_headers = self.request(method, url, headers, post_data)
        return iter([content]), status, response_headers

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class StripeApi(Retrying):
    """One Stripe account: the SDK client, the hub's retry loop, call and retry counters.

    Attributes:
        sdk: the official ``stripe.StripeClient``; use its ``v1`` services inside :meth:`call`.
        http: the HTTP client under it (``calls`` counts every request sent).
        retries: calls that were retried.
    """

    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        api_version: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or Limiter(concurrency=4)
        self.http = LimitedHttpClient(self.limiter, timeout=timeout, transport=transport)
        self.sdk = stripe.StripeClient(
            api_key,
            base_addresses={"api": base, "files": base, "connect": base, "meter_events": base},
            http_client=self.http,
            max_network_retries=0,
            stripe_version=api_version,
        )
        self.retries = 0
        self._sleep = sleep
        self._rng = random.Random(seed)

    @property
    def calls(self) -> int:
        """Requests sent so far."""
        return self.http.calls

    def call(
        self, fn: Callable[[], T], *, what: str, record: str | None = None, idempotent: bool = True
    ) -> T:
        """Run one SDK call under the hub's retry policy; Stripe's exceptions become hub errors.

        ``idempotent``: a read, or a write with an idempotency key (every write here has one).
        """

        def once() -> T | HubError:
            try:
                return fn()
            except stripe.StripeError as exc:
                return from_stripe(exc, what=what, record=record, idempotent=idempotent)

        def exhausted(error: TransientError) -> HubError:
            if error.code == "vendor.timeout" and what.startswith("create"):
                return InDoubtError(
                    f"{error.message}; the create may have been applied and is looked up before it is sent again",
                    system=SYSTEM,
                    record=record,
                    details=error.details,
                )
            return error

        return self.retried(once, what, exhausted=exhausted)

    def close(self) -> None:
        """Release connections."""
        self.http.close()


__all__ = ["MAX_KEY", "LimitedHttpClient", "StripeApi", "idempotency_key"]
