"""NetSuite token-based authentication (TBA): OAuth 1.0a with ``HMAC-SHA256``.

:class:`TokenAuth` is an :class:`httpx.Auth`: httpx calls it for every request
it sends, retries included, so each attempt carries a fresh nonce and timestamp
(NetSuite refuses a nonce it has already seen). The signature itself is
computed by :mod:`oauthlib` (RFC 5849 §3.4): it covers the method, the URL
without its query, and the sorted ``oauth_*`` and query parameters. For a
RESTlet, ``script`` and ``deploy`` are therefore signed.

NetSuite REST and RESTlet bodies are JSON, and a JSON body is never signed:
oauthlib is given no body for it, because given one it would add an
``oauth_body_hash`` parameter (or refuse a body that happens to parse as a
form). Only an ``application/x-www-form-urlencoded`` body has its parameters
signed, as RFC 5849 §3.4.1.3.1 requires.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx
from oauthlib import oauth1  # type: ignore[import-untyped]

FORM_URLENCODED = "application/x-www-form-urlencoded"


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


def oauth_realm(account: str) -> str:
    """The OAuth realm of an account: its id upper-cased, with ``_`` (``1234567_SB1``).

    Hostnames use the lower-cased, hyphenated form (``1234567-sb1``); an id
    configured that way still yields the realm NetSuite expects.
    """
    return account.strip().upper().replace("-", "_")


class TokenAuth(httpx.Auth):
    """Signs each request with the integration's and the token's secrets.

    ``nonce`` and ``timestamp`` replace oauthlib's generated values (for tests:
    a fixed pair gives a reproducible signature); each is called once per request.
    """

    # httpx loads the body before ``auth_flow`` (sync or async): a form body is signed.
    requires_request_body = True

    def __init__(
        self,
        credentials: TbaCredentials,
        *,
        nonce: Callable[[], str] | None = None,
        timestamp: Callable[[], int] | None = None,
    ) -> None:
        self.credentials = credentials
        self.realm = oauth_realm(credentials.account)
        self._nonce = nonce
        self._timestamp = timestamp

    def __repr__(self) -> str:
        return f"TokenAuth({self.credentials!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Set the request's ``Authorization: OAuth realm="...", oauth_...`` header."""
        creds = self.credentials
        client = oauth1.Client(
            creds.consumer_key,
            client_secret=creds.consumer_secret,
            resource_owner_key=creds.token_id,
            resource_owner_secret=creds.token_secret,
            signature_method=oauth1.SIGNATURE_HMAC_SHA256,
            signature_type=oauth1.SIGNATURE_TYPE_AUTH_HEADER,
            realm=self.realm,
            nonce=None if self._nonce is None else self._nonce(),
            timestamp=None if self._timestamp is None else str(self._timestamp()),
        )
        body: str | None = None
        headers: dict[str, str] | None = None
        media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type == FORM_URLENCODED:
            body = request.content.decode("utf-8")
            headers = {"Content-Type": FORM_URLENCODED}
        _, signed, _ = client.sign(str(request.url), request.method, body=body, headers=headers)
        request.headers["Authorization"] = signed["Authorization"]


__all__ = ["TbaCredentials", "TokenAuth", "oauth_realm"]
