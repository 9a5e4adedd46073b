"""Stripe's errors → the hub's errors, in one place.

The SDK raises one exception class per kind of answer; the hub decides on
its error *types*:

==========================================  ===========================================
Stripe                                       hub
==========================================  ===========================================
``RateLimitError`` (429), ``lock_timeout``   ``TransientError`` ``vendor.throttled``
``APIConnectionError`` before sending        ``TransientError`` ``vendor.unreachable``
``APIConnectionError`` (timeout)             ``TransientError`` ``vendor.timeout`` when the call
                                             is idempotent, else ``InDoubtError``
``APIError`` 5xx                             ``TransientError`` ``vendor.server_error``
409 ``idempotency_key_in_use``               ``TransientError``: the first request is still running
``IdempotencyError`` (key reused)            ``BusinessRuleError`` ``vendor.rejected``
``AuthenticationError``, ``PermissionError``  ``AuthError`` ``vendor.auth_failed``
``CardError`` (402)                          ``BusinessRuleError`` ``vendor.rejected``
``InvalidRequestError`` 404 / ``resource_missing``  ``NotFoundError`` ``vendor.record_not_found``
``InvalidRequestError`` (other)              ``BusinessRuleError`` ``vendor.rejected``
==========================================  ===========================================

Stripe's own ``code`` (``card_declined``, ``parameter_unknown``) is kept in
``details["vendor_code"]``, its ``type``, ``param`` and ``decline_code`` beside it.
"""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from quote2cash.connectors._http import error_mapper
from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    HubError,
    InDoubtError,
    TransientError,
    VendorPayloadError,
)

SYSTEM = "stripe"
TRANSIENT = frozenset({"rate_limit", "lock_timeout", "idempotency_key_in_use"})
NOT_FOUND = frozenset({"resource_missing"})

#: The hub error for one of Stripe's error answers (status, code, message, record, details).
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND)


def _retry_after(exc: stripe.StripeError) -> float | None:
    value = (exc.headers or {}).get("retry-after") if exc.headers else None
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def from_stripe(exc: stripe.StripeError, *, what: str, record: str | None, idempotent: bool) -> HubError:
    """The hub error for an exception the Stripe SDK raised during ``what``.

    ``idempotent``: the call can be sent again safely (a read, or a ``POST``
    with an idempotency key), so a lost answer is transient, not in doubt.
    """
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.ConnectError):
            return TransientError(
                f"cannot connect to stripe: {cause}", code="vendor.unreachable", system=SYSTEM, record=record
            )
        cls = TransientError if idempotent else InDoubtError
        return cls(
            f"stripe did not answer {what} in time ({type(cause).__name__ if cause else 'connection error'})",
            code="vendor.timeout" if idempotent else "vendor.write_in_doubt",
            system=SYSTEM,
            record=record,
        )
    status = exc.http_status or 0
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error: dict[str, Any] = body.get("error") if isinstance(body.get("error"), dict) else {}  # type: ignore[assignment]
    vendor_code = str(error.get("code") or error.get("type") or type(exc).__name__)
    message = str(error.get("message") or exc.user_message or exc)
    details = {k: error[k] for k in ("type", "param", "decline_code", "charge") if error.get(k)}
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return AuthError(
            f"stripe rejected the hub's API key (HTTP {status}): {message}; check the secret key "
            "configured for this system",
            system=SYSTEM,
            record=record,
            details={"vendor_code": vendor_code, "status": status},
        )
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return TransientError(
            f"stripe is throttling requests (HTTP 429): {message}",
            code="vendor.throttled",
            retry_after=_retry_after(exc),
            system=SYSTEM,
            record=record,
            details={"vendor_code": vendor_code, "status": status},
        )
    if status >= 500 or (status == 0 and isinstance(exc, stripe.APIError)):
        cls = TransientError if idempotent else InDoubtError
        return cls(
            f"stripe failed with HTTP {status} during {what}: {message}",
            code="vendor.server_error" if idempotent else "vendor.write_in_doubt",
            retry_after=_retry_after(exc),
            system=SYSTEM,
            record=record,
            details={"vendor_code": vendor_code, "status": status},
        )
    if error.get("type") == "idempotency_error" and status != 409:
        return BusinessRuleError(
            f"stripe refused the idempotency key of {what}: it was first used with other parameters. "
            "The record changed between two attempts of the same write; look at the first attempt's "
            f"record in Stripe before resubmitting. ({message})",
            code="vendor.rejected",
            system=SYSTEM,
            record=record,
            details={"vendor_code": "idempotency_error", "status": status, **details},
        )
    if not error:
        return VendorPayloadError(
            f"stripe answered HTTP {status} during {what} with an unreadable error body",
            system=SYSTEM,
            record=record,
            details={"status": status},
        )
    return from_vendor(status, vendor_code, message, record, details)


__all__ = ["NOT_FOUND", "SYSTEM", "TRANSIENT", "from_stripe", "from_vendor"]
