"""Server-side check of NetSuite token-based authentication (OAuth 1.0a, HMAC-SHA256).

The sandbox recomputes the signature the way NetSuite does and rejects a wrong
consumer key, token, realm or signature, a timestamp more than the window off
the server clock, and a nonce seen again within the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote, urlsplit


def _pct(value: str) -> str:
    return quote(value, safe="~")


def _base_string(method: str, url: str, oauth_params: dict[str, str]) -> str:
    # Deliberately independent of the connector's signer: the sandbox must not
    # import the hub, and two implementations checking each other catch more.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    netloc = host if parts.port in (None, {"http": 80, "https": 443}.get(scheme)) else f"{host}:{parts.port}"
    params = [*oauth_params.items(), *parse_qsl(parts.query, keep_blank_values=True)]
    pairs = sorted((_pct(k), _pct(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base_uri = f"{scheme}://{netloc}{parts.path or '/'}"
    return f"{method.upper()}&{_pct(base_uri)}&{_pct(normalized)}"


def parse_authorization(header: str) -> dict[str, str] | None:
    """The decoded parameters of an ``OAuth k="v", ...`` header, or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        return None
    params: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
            return None
        params[key.strip()] = unquote(value[1:-1])
    return params


class TbaVerifier:
    """Checks ``Authorization`` headers against one integration and token."""

    def __init__(
        self,
        *,
        realm: str,
        consumer_key: str,
        consumer_secret: str,
        token_id: str,
        token_secret: str,
        window: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.realm = realm
        self.consumer_key = consumer_key
        self.token_id = token_id
        self._key = f"{_pct(consumer_secret)}&{_pct(token_secret)}".encode()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        # Nonces seen within the window, oldest first, so expiry is amortised O(1).
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    def verify(self, method: str, url: str, header: str | None) -> str | None:
        """None when the request is authentic, else why it is not (for the log)."""
        params = parse_authorization(header) if header else None
        if params is None:
            return "missing or malformed OAuth Authorization header"
        if params.get("realm", "").upper() != self.realm.upper():
            return "wrong realm"
        if params.get("oauth_consumer_key") != self.consumer_key:
            return "unknown consumer key"
        if params.get("oauth_token") != self.token_id:
            return "unknown token"
        if params.get("oauth_signature_method") != "HMAC-SHA256":
            return "unsupported signature method"
        if params.get("oauth_version", "1.0") != "1.0":
            return "unsupported OAuth version"
        signature = params.pop("oauth_signature", "")
        oauth = {k: v for k, v in params.items() if k.startswith("oauth_")}
        digest = hmac.new(self._key, _base_string(method, url, oauth).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode("ascii"), signature):
            return "signature mismatch"
        try:
            timestamp = int(params.get("oauth_timestamp", ""))
        except ValueError:
            return "bad timestamp"
        now = self._clock()
        if abs(now - timestamp) > self.window:
            return "timestamp outside the allowed window"
        return self._remember(f"{self.token_id}:{params.get('oauth_nonce', '')}", now)

    def _remember(self, nonce: str, now: float) -> str | None:
        with self._lock:
            while self._order and self._order[0][0] < now - 2 * self.window:
                self._seen.discard(self._order.popleft()[1])
            if nonce in self._seen:
                return "nonce already used"
            self._seen.add(nonce)
            self._order.append((now, nonce))
            return None


__all__ = ["TbaVerifier", "parse_authorization"]
