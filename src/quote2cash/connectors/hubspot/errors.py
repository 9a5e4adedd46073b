"""HubSpot error answers → the hub's errors.

HubSpot answers ``{"status": "error", "message", "correlationId", "category",
"subCategory"?, "errors": [{"message", "code"}]}``; the ``category``
(``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``, ``RATE_LIMITS``, …) is kept in
``details["vendor_code"]``, the codes of ``errors`` (``PROPERTY_DOESNT_EXIST``,
``INVALID_OPTION``) in ``details["codes"]``.

The SDK raises one ``ApiException`` class per API package; :data:`API_EXCEPTIONS`
holds those this connector calls, and transport failures (urllib3) come
through as they are: :func:`from_transport` classifies them.
"""

from __future__ import annotations

import importlib
from typing import Any

import orjson
import urllib3

from quote2cash.connectors._http import error_mapper
from quote2cash.errors import AuthError, HubError, InDoubtError, TransientError, VendorPayloadError

SYSTEM = "hubspot"
#: Categories that are retried: a spent rate limit is HubSpot's way to say "later".
TRANSIENT = frozenset({"RATE_LIMITS", "RATE_LIMIT"})
NOT_FOUND = frozenset({"OBJECT_NOT_FOUND"})
#: The SDK packages the connector calls; each has its own ApiException.
PACKAGES = ("crm.deals", "crm.companies", "crm.line_items", "crm.associations.v4", "crm.properties")
API_EXCEPTIONS: tuple[type[Exception], ...] = tuple(
    importlib.import_module(f"hubspot.{p}.exceptions").ApiException for p in PACKAGES
)

#: The hub error for one of this vendor's error answers.
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND)


def retry_after(headers: Any) -> float | None:
    """Seconds to wait after a 429: ``Retry-After`` if sent, else the rate-limit interval.

    HubSpot's limit is a rolling window (``X-HubSpot-RateLimit-Interval-Milliseconds``);
    once ``-Remaining`` is 0, waiting one interval is what frees a slot for certain.
    """
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is not None:
        try:
            return float(value)
        except ValueError:
            pass
    interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval is not None and str(interval).isdigit():
        return int(interval) / 1000
    return None


def from_api_exception(exc: Any, *, method: str, idempotent: bool, record: str | None) -> HubError:
    """The hub error for an SDK ``ApiException`` (an HTTP answer that is not 2xx)."""
    status = int(getattr(exc, "status", 0) or 0)
    raw = getattr(exc, "body", None) or b""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    headers = getattr(exc, "headers", None)
    if status == 429:
        return TransientError(
            f"hubspot is throttling requests (HTTP 429, {_text(body, 'message') or 'rate limit'})",
            code="vendor.throttled",
            retry_after=retry_after(headers),
            system=SYSTEM,
            record=record,
            details={
                "status": 429,
                "vendor_code": _text(body, "category") or "RATE_LIMITS",
                "policy": _text(body, "policyName"),
            },
        )
    if status >= 500 or status == 0:
        cls = TransientError if idempotent else InDoubtError
        return cls(
            f"hubspot failed with HTTP {status} on {method}",
            code="vendor.server_error" if idempotent else "vendor.write_in_doubt",
            system=SYSTEM,
            record=record,
            details={"status": status},
        )
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return VendorPayloadError(
            f"hubspot answered HTTP {status} with a body that is not a HubSpot error: {raw[:200]!r}",
            system=SYSTEM,
            record=record,
            details={"status": status},
        )
    category = str(body.get("category") or "UNKNOWN")
    if status == 401 or (status == 403 and category == "MISSING_SCOPES"):
        return AuthError(
            f"hubspot rejected the hub's access token (HTTP {status}: {body['message']}); check the "
            "private app's token and its scopes",
            code="vendor.auth_failed",
            system=SYSTEM,
            record=record,
            details={"status": status, "vendor_code": category},
        )
    codes = [str(e.get("code")) for e in body.get("errors") or [] if isinstance(e, dict) and e.get("code")]
    details: dict[str, Any] = {"correlation_id": body.get("correlationId"), "codes": codes}
    if body.get("subCategory"):
        details["sub_category"] = body["subCategory"]
    return from_vendor(status, category, f"hubspot refused the request: {body['message']}", record, details)


def from_transport(exc: Exception, *, method: str, idempotent: bool, record: str | None) -> HubError:
    """The hub error for a urllib3 failure (the SDK's own retries are off, so it is the first)."""
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    if isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        # Nothing reached HubSpot: always safe to send again.
        return TransientError(
            f"cannot connect to hubspot: {reason}", code="vendor.unreachable", system=SYSTEM, record=record
        )
    cls = TransientError if idempotent else InDoubtError
    return cls(
        f"hubspot did not answer {method} in time ({type(reason).__name__})",
        code="vendor.timeout" if idempotent else "vendor.write_in_doubt",
        system=SYSTEM,
        record=record,
    )


def _text(body: Any, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return str(value) if value is not None else None
