"""The HTTP layer every connector shares: limits, timeouts, retries, error classification.

A connector subclasses :class:`VendorClient`, sets ``system`` and implements
``error_from_response`` to turn the vendor's error body into a hub error. The
retry loop here is the hub's only retry layer (flow steps do not retry), and
it decides on error *types* only (see :mod:`quote2cash.errors`).

Retrying a write is only safe when the write is idempotent (an upsert by
external id, a PUT, a GET). A non-idempotent create that times out or gets a
5xx is *in doubt*: the vendor may have applied it. It is never re-sent from
here; the caller gets an :class:`~quote2cash.errors.InDoubtError` and must look
the record up before trying again (the adapters do). A 429 is always safe to
retry: the vendor did not process the request.

Every request, from any thread, passes the system's :class:`Limiter`, so a
vendor account's concurrency limit holds whatever flow or posting run sends it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx
import orjson
import structlog

from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    HubError,
    InDoubtError,
    NotFoundError,
    TransientError,
    VendorPayloadError,
)

log = structlog.get_logger("quote2cash.http")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        max_attempts: total tries, the first included.
        initial_interval: seconds before the first retry.
        backoff: multiplier applied to the interval after each retry.
        max_interval: cap on one interval, in seconds.
        jitter: fraction of the interval added or removed at random, so that
            many workers do not retry in lock-step.
        max_retry_after: cap on a vendor's ``Retry-After``, in seconds.
    """

    max_attempts: int = 6
    initial_interval: float = 0.1
    backoff: float = 2.0
    max_interval: float = 5.0
    jitter: float = 0.5
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.initial_interval * self.backoff ** (attempt - 1), self.max_interval)
        return max(0.0, base * (1 + self.jitter * (2 * rng.random() - 1)))


class Limiter:
    """Requests in flight at once, and started per second, for one system in this process.

    Attributes:
        concurrency: requests in flight at once.
        rate_per_second: requests started per second (None: unlimited).
        peak: the most requests that were in flight at once (for figures and tests).
    """

    def __init__(self, concurrency: int = 4, rate_per_second: float | None = None) -> None:
        self.concurrency = concurrency
        self.rate_per_second = rate_per_second
        self.peak = 0
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._next_start = 0.0

    def __enter__(self) -> Limiter:
        self._slots.acquire()
        wait = 0.0
        with self._lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            if self.rate_per_second:
                now = time.monotonic()
                start = max(now, self._next_start)
                self._next_start = start + 1.0 / self.rate_per_second
                wait = start - now
        if wait > 0:
            time.sleep(wait)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._in_flight -= 1
        self._slots.release()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class Retrying:
    """The hub's one retry layer, shared by every vendor client (over httpx or a vendor's SDK).

    A transient failure is retried as the client's :class:`RetryPolicy` allows, honouring the
    vendor's ``Retry-After``; a write in doubt is never re-sent (its step looks the record up
    first); anything else is raised at once. The client keeps ``retry``, ``retries`` (calls
    retried so far), ``_rng`` and ``_sleep``.
    """

    system: str = "vendor"
    retry: RetryPolicy
    retries: int
    _rng: random.Random
    _sleep: Callable[[float], None]

    def retried(
        self,
        attempt: Callable[[], T | HubError],
        call: str,
        *,
        exhausted: Callable[[TransientError], HubError] | None = None,
    ) -> T:
        """Run ``attempt`` (one try: its value, or the hub error it failed with) until it
        succeeds or must stop; ``exhausted`` turns the last transient failure into the error
        raised once the attempts run out (default: that failure, with ``attempts`` noted)."""
        tries = 0
        while True:
            tries += 1
            outcome = attempt()
            if not isinstance(outcome, HubError):
                return outcome
            if not isinstance(outcome, TransientError) or isinstance(outcome, InDoubtError):
                raise outcome
            if tries >= self.retry.max_attempts:
                outcome.details["attempts"] = tries
                if exhausted is None:
                    raise outcome
                raise exhausted(outcome) from outcome
            wait = self.retry.delay(tries, outcome.retry_after, self._rng)
            self.retries += 1
            log.info(
                "vendor.retry",
                system=self.system,
                call=call,
                attempt=tries,
                wait_s=round(wait, 3),
                code=outcome.code,
            )
            self._sleep(wait)


class VendorClient(Retrying):
    """Base class of a vendor API client; one instance per configured system."""

    system: str = "vendor"

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or Limiter(concurrency=64)
        self.calls = 0
        self.retries = 0
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            auth=auth,
            headers=headers,
        )

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> VendorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- to override -----------------------------------------------------------------
    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """Turn a 4xx answer into a hub error. Vendors override this."""
        return VendorPayloadError(
            f"{self.system} answered HTTP {response.status_code}: {response.text[:300]}",
            system=self.system,
            record=record,
        )

    # -- the retry loop --------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool | None = None,
        record: str | None = None,
    ) -> httpx.Response:
        """Send a request, retrying transient failures as the policy allows.

        ``idempotent`` defaults to True for every method but POST.
        Returns the 2xx/3xx response; raises a :class:`HubError` otherwise.
        """
        if idempotent is None:
            idempotent = method.upper() != "POST"
        return self.retried(
            lambda: self._attempt(method, url, json, params, headers, content, idempotent, record),
            f"{method} {url}",
        )

    def _attempt(
        self,
        method: str,
        url: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        content: bytes | None,
        idempotent: bool,
        record: str | None,
    ) -> httpx.Response | HubError:
        request = self._http.build_request(
            method, url, json=json, params=params, headers=headers, content=content
        )
        self.calls += 1
        try:
            with self.limiter:
                response = self._http.send(request)
        except httpx.ConnectError as exc:
            # Nothing reached the vendor: always safe to retry.
            return TransientError(
                f"cannot connect to {self.system}: {exc}",
                code="vendor.unreachable",
                system=self.system,
                record=record,
            )
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            cls = TransientError if idempotent else InDoubtError
            return cls(
                f"{self.system} did not answer {method} {request.url.path} in time ({type(exc).__name__})",
                code="vendor.timeout" if idempotent else "vendor.write_in_doubt",
                system=self.system,
                record=record,
            )
        status = response.status_code
        if status < 400:
            return response
        if status == 429:
            return TransientError(
                f"{self.system} is throttling requests (HTTP 429)",
                code="vendor.throttled",
                retry_after=_retry_after(response),
                system=self.system,
                record=record,
            )
        if status >= 500:
            cls = TransientError if idempotent else InDoubtError
            return cls(
                f"{self.system} failed with HTTP {status} on {method} {request.url.path}",
                code="vendor.server_error" if idempotent else "vendor.write_in_doubt",
                retry_after=_retry_after(response),
                system=self.system,
                record=record,
                details={"status": status},
            )
        if status in (401, 403) and self.is_auth_failure(response):
            return AuthError(
                f"{self.system} rejected the hub's credentials (HTTP {status}); "
                "check the token or keys configured for this system",
                code="vendor.auth_failed",
                system=self.system,
                record=record,
            )
        return self.error_from_response(response, record)

    def is_auth_failure(self, response: httpx.Response) -> bool:
        """Whether a 401/403 means bad credentials (vendors may use 403 for limits)."""
        return response.status_code == 401

    def json(self, response: httpx.Response, record: str | None = None) -> Any:
        """Decode a JSON body, or raise :class:`VendorPayloadError` naming the call."""
        try:
            # orjson: month-end pulls decode thousands of pages; it is several times faster than json.
            return orjson.loads(response.content)
        except ValueError as exc:
            raise VendorPayloadError(
                f"{self.system} answered {response.request.method} {response.request.url.path} "
                f"with a body that is not JSON: {response.text[:200]!r}",
                system=self.system,
                record=record,
            ) from exc


def require(payload: Any, key: str, *, system: str, what: str, record: str | None = None) -> Any:
    """Read ``payload[key]`` or raise a :class:`VendorPayloadError` naming the field."""
    if not isinstance(payload, dict) or key not in payload:
        raise VendorPayloadError(
            f"{system} {what} is missing the field '{key}'",
            system=system,
            record=record,
            details={"field": key},
        )
    return payload[key]


def vendor_error(
    system: str,
    status: int,
    vendor_code: str,
    message: str,
    *,
    record: str | None = None,
    details: dict[str, Any] | None = None,
    transient: frozenset[str] = frozenset(),
    not_found: frozenset[str] = frozenset(),
    ambiguous: frozenset[str] = frozenset(),
) -> HubError:
    """A vendor's refusal as a hub error: the vendor's code is kept in ``details["vendor_code"]``.

    Each connector's ``errors.py`` names which of its codes are transient
    (throttling a REST answer does not signal with 429), mean "no such
    record", or mean an external id matched more than one record.
    """
    info = {"vendor_code": vendor_code, "status": status, **(details or {})}
    if vendor_code in transient:
        return TransientError(message, code="vendor.throttled", system=system, record=record, details=info)
    if vendor_code in not_found or status == 404:
        return NotFoundError(
            message, code="vendor.record_not_found", system=system, record=record, details=info
        )
    if vendor_code in ambiguous:
        return BusinessRuleError(
            message, code="vendor.ambiguous_match", system=system, record=record, details=info
        )
    return BusinessRuleError(message, code="vendor.rejected", system=system, record=record, details=info)


class Wire(Protocol):
    """What an adapter's client counts and releases, whatever it speaks (httpx, a vendor SDK, files)."""

    @property
    def calls(self) -> int:
        """Requests (or file operations) made so far."""
        ...

    @property
    def retries(self) -> int:
        """Of those, how many were retries."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


C = TypeVar("C", bound=Wire)


def error_mapper(
    system: str,
    *,
    transient: frozenset[str] = frozenset(),
    not_found: frozenset[str] = frozenset(),
    ambiguous: frozenset[str] = frozenset(),
) -> Callable[..., HubError]:
    """A connector's ``from_vendor(status, code, message, record, details=None)``, over its code sets."""

    def from_vendor(
        status: int, code: str, message: str, record: str | None, details: dict[str, Any] | None = None
    ) -> HubError:
        return vendor_error(
            system,
            status,
            code,
            message,
            record=record,
            details=details,
            transient=transient,
            not_found=not_found,
            ambiguous=ambiguous,
        )

    return from_vendor


class ClientBacked(Generic[C]):
    """What every adapter over one client (a :class:`VendorClient` or any :class:`Wire`) shares:
    call counters and closing."""

    client: C

    @property
    def calls(self) -> int:
        """Requests sent so far."""
        return self.client.calls

    @property
    def retries(self) -> int:
        """Requests retried so far."""
        return self.client.retries

    def close(self) -> None:
        """Release connections."""
        self.client.close()
