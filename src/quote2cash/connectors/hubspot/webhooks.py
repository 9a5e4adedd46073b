"""Verification of HubSpot webhook requests (signature v3).

HubSpot signs each delivery with ``X-HubSpot-Signature-v3`` =
``base64(HMAC-SHA256(client secret, method + uri + body + timestamp))`` and
sends the timestamp (epoch milliseconds) in ``X-HubSpot-Request-Timestamp``.
A request older than ``max_age`` seconds is refused, so a captured request
cannot be replayed later. The SDK's own helper compares the millisecond
header against seconds in one published version, so the window is computed
here (VENDORS.md §1.3).

``uri`` is the full URL the request was sent to (scheme, host, path, query);
HubSpot signs it with these escapes decoded: ``%3A %2F %3F %40 %21 %24 %27
%28 %29 %2A %2C %3B``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from quote2cash.connectors.hubspot.errors import SYSTEM
from quote2cash.errors import AuthError

SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it (the listed escapes decoded, either case)."""
    for escape, char in _DECODE.items():
        uri = uri.replace(escape, char).replace(escape.lower(), char)
    return uri


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _refuse(message: str, reason: str) -> AuthError:
    return AuthError(message, system=SYSTEM, details={"reason": reason})


def verify_v3(
    method: str,
    uri: str,
    body: bytes | str,
    headers: Mapping[str, str],
    client_secret: str,
    *,
    max_age: float = 300,
    now: float | None = None,
) -> None:
    """Accept a webhook request signed by HubSpot, or raise :class:`~quote2cash.errors.AuthError`.

    Args:
        method: the HTTP method (``POST``).
        uri: the full URL the request was sent to.
        body: the raw request body, exactly as received.
        headers: the request headers (any case).
        client_secret: the HubSpot app's client secret.
        max_age: seconds a request stays acceptable after its timestamp.
        now: the current time in epoch seconds (default: the clock).

    Raises:
        AuthError: ``details["reason"]`` is ``missing_signature``,
            ``bad_timestamp``, ``stale_timestamp`` or ``bad_signature``.
    """
    signature, stamp = _header(headers, SIGNATURE), _header(headers, TIMESTAMP)
    if not signature or not stamp:
        raise _refuse(f"the webhook request has no {SIGNATURE} or {TIMESTAMP} header", "missing_signature")
    if not stamp.isdigit():
        raise _refuse(
            f"the webhook request's {TIMESTAMP} {stamp!r} is not epoch milliseconds", "bad_timestamp"
        )
    age = (time.time() if now is None else now) - int(stamp) / 1000
    if age > max_age:
        raise _refuse(
            f"the webhook request was signed {age:.0f} s ago, more than the {max_age:.0f} s allowed; "
            "it is refused as a possible replay",
            "stale_timestamp",
        )
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    message = f"{method.upper()}{signed_uri(uri)}{raw}{stamp}".encode()
    expected = base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise _refuse(
            "the webhook request's signature does not match; check the app's client secret", "bad_signature"
        )
