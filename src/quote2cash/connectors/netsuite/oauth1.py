"""OAuth 1.0a request signing for NetSuite token-based authentication (TBA).

NetSuite's TBA is OAuth 1.0a with ``HMAC-SHA256``: every request carries an
``Authorization: OAuth realm=..., oauth_...`` header whose signature covers the
method, the URL without its query and the sorted ``oauth_*`` and query
parameters (RFC 5849 §3.4). Pure functions on the standard library, so the
signature can be checked without a network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

SIGNATURE_METHOD = "HMAC-SHA256"


@dataclass(frozen=True)
class TbaCredentials:
    """The five values of a NetSuite integration record plus access token.

    ``account`` is the account id as NetSuite shows it (``1234567_SB1``); it is
    the OAuth ``realm``.
    """

    account: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str

    def __repr__(self) -> str:
        # Credentials end up in logs and tracebacks; the secrets must not.
        return (
            f"TbaCredentials(account={self.account!r}, consumer_key={self.consumer_key!r}, "
            f"consumer_secret='***', token_id={self.token_id!r}, token_secret='***')"
        )


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding: everything but unreserved characters."""
    return quote(value, safe="~")


def signature_base_string(method: str, url: str, oauth_params: Mapping[str, str]) -> str:
    """``METHOD&pct(url_without_query)&pct(sorted params)`` (RFC 5849 §3.4.1).

    ``url`` is the URL as sent, query included; ``oauth_params`` excludes
    ``realm`` and ``oauth_signature``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
    base_uri = f"{scheme}://{netloc}{parts.path or '/'}"
    params = [*oauth_params.items(), *parse_qsl(parts.query, keep_blank_values=True)]
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join((method.upper(), percent_encode(base_uri), percent_encode(normalized)))


def sign(base_string: str, consumer_secret: str, token_secret: str) -> str:
    """Base64 HMAC-SHA256 of the base string, keyed ``pct(cs)&pct(ts)``."""
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}".encode()
    digest = hmac.new(key, base_string.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization_header(
    method: str, url: str, credentials: TbaCredentials, *, nonce: str, timestamp: int
) -> str:
    """The ``Authorization`` header value for one request."""
    oauth = {
        "oauth_consumer_key": credentials.consumer_key,
        "oauth_token": credentials.token_id,
        "oauth_signature_method": SIGNATURE_METHOD,
        "oauth_timestamp": str(timestamp),
        "oauth_nonce": nonce,
        "oauth_version": "1.0",
    }
    signature = sign(
        signature_base_string(method, url, oauth), credentials.consumer_secret, credentials.token_secret
    )
    fields = [("realm", credentials.account), *oauth.items(), ("oauth_signature", signature)]
    return "OAuth " + ", ".join(f'{k}="{percent_encode(v)}"' for k, v in fields)


__all__ = [
    "SIGNATURE_METHOD",
    "TbaCredentials",
    "authorization_header",
    "percent_encode",
    "sign",
    "signature_base_string",
]
