"""The hub's own webhook signature, for senders with none of their own
(a NetSuite script, a Kantata subscribed-events relay, a Salesforce callout).

The sender signs ``"{t}.{raw body}"`` with HMAC-SHA256 under the source's
shared secret and sends ``X-Q2C-Signature: t=<unix seconds>,v1=<hex>``
(several ``v1`` while a secret is being rotated). The hub refuses a
signature that does not match and a timestamp outside the replay window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from quote2cash.errors import HubError

HEADER = "X-Q2C-Signature"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Q2C-Signature`` value for a body."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(body: bytes, header: str | None, secret: str, *, tolerance: int, source: str) -> None:
    """Accept a signed body, or raise ``webhook.signature_invalid`` / ``webhook.stale``."""
    if not header:
        raise HubError(f"the {source} delivery has no {HEADER} header", code="webhook.signature_invalid")
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v.strip() for k, v in parts if k.strip() == "t"]
    signatures = [v.strip() for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        raise HubError(
            f"the {source} delivery's {HEADER} header cannot be read (want t=…,v1=…)",
            code="webhook.signature_invalid",
        )
    t = int(stamps[0])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise HubError(
            f"the {source} delivery's signature does not match its body under the shared secret",
            code="webhook.signature_invalid",
            system=source,
        )
    age = time.time() - t
    if abs(age) > tolerance:
        raise HubError(
            f"the {source} delivery was signed {int(age)} s ago, outside the {tolerance} s replay window",
            code="webhook.stale",
            system=source,
        )
