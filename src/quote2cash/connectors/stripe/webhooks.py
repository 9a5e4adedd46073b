"""Verifying Stripe's webhook deliveries: signature and replay window.

Stripe signs ``"{t}.{raw body}"`` with HMAC-SHA256 under the endpoint's
``whsec_`` secret and sends ``Stripe-Signature: t=…,v1=…[,v1=…]``. The
signature is checked by the SDK (``stripe.WebhookSignature``); the timestamp
is checked here against ``now`` so that a replayed delivery older than
``tolerance`` seconds is refused even with a valid signature. Stripe delivers
at least once and in no particular order: consumers de-duplicate on the
event ``id``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import stripe

from quote2cash.errors import AuthError, VendorPayloadError

DEFAULT_TOLERANCE = 300


def verify(
    payload: bytes, header: str, secret: str, *, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> dict[str, Any]:
    """The event of a signed delivery, or a hub error.

    Raises:
        AuthError: the signature does not match (tampered body, wrong secret) or the
            timestamp is more than ``tolerance`` seconds old (a replay).
        VendorPayloadError: the header or the body cannot be read.
    """
    text = payload.decode("utf-8")
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)  # type: ignore[no-untyped-call]
    except stripe.SignatureVerificationError as exc:
        unreadable = "Unable to extract" in str(exc) or "No signatures found with expected scheme" in str(exc)
        if unreadable:
            raise VendorPayloadError(
                f"the Stripe-Signature header cannot be read: {exc}",
                system="stripe",
                details={"header": header},
            ) from exc
        raise AuthError(
            "a webhook delivery's signature does not match its body under the endpoint's secret; "
            "it was altered or did not come from Stripe",
            system="stripe",
            details={"reason": "signature_mismatch"},
        ) from exc
    timestamp = int(dict(p.split("=", 1) for p in header.split(",") if "=" in p)["t"])
    age = (time.time() if now is None else now) - timestamp
    if tolerance and age > tolerance:
        raise AuthError(
            f"a webhook delivery is {int(age)} s old, beyond the {tolerance} s replay window; it is refused "
            "as a possible replay",
            system="stripe",
            details={"reason": "stale_timestamp", "age_seconds": int(age), "tolerance": tolerance},
        )
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise VendorPayloadError("a webhook delivery's body is not JSON", system="stripe") from exc
    if not isinstance(event, dict) or event.get("object") != "event" or "id" not in event:
        raise VendorPayloadError("a webhook delivery's body is not a Stripe event", system="stripe")
    return event


__all__ = ["DEFAULT_TOLERANCE", "verify"]
