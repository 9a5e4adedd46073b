"""Entra ID client credentials for Business Central, obtained with ``msal``, as an :class:`httpx.Auth`.

:class:`MsalAuth` asks :class:`msal.ConfidentialClientApplication` for a token
(``acquire_token_for_client``), keeps it until shortly before it expires and
puts it on every request as ``Authorization: Bearer``. When the API answers
401 anyway (the token was revoked, or expired early), the token is dropped
from both caches, a new one is obtained and the request is sent once more;
a second 401 is the answer (the hub reports it as ``vendor.auth_failed``).

The token call runs inside the API request that needed it, so it holds that
request's :class:`~quote2cash.connectors._http.Limiter` slot.

``ca_bundle`` (private deployments, the sandbox) is given to msal through its
own ``requests`` session with the bundle on every request: a session's
``verify`` alone is overridden by ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
when those are set (psf/requests#3829), which msal's ``verify=`` relies on.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Generator
from typing import Any

import httpx
import msal  # type: ignore[import-untyped]
import requests

from quote2cash.errors import AuthError

#: Seconds before a token's stated expiry at which it is no longer used.
EXPIRY_MARGIN = 60.0


def requests_session(ca_bundle: str | None, timeout: float) -> requests.Session:
    """The HTTP session msal uses: a timeout, and ``ca_bundle`` trusted on every request."""
    session = requests.Session()
    defaults: dict[str, Any] = {"timeout": timeout}
    if ca_bundle is not None:
        session.verify = ca_bundle
        defaults["verify"] = ca_bundle
    session.request = functools.partial(session.request, **defaults)  # type: ignore[method-assign]
    return session


class MsalAuth(httpx.Auth):
    """Bearer tokens for one app registration, from msal, cached until they expire.

    Attributes:
        acquired: tokens obtained from the identity endpoint so far.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        authority: str,
        scope: str,
        *,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.scope = scope
        self.acquired = 0
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=authority,
            # A sovereign, private or test authority is not one Microsoft's discovery knows.
            instance_discovery=False,
            validate_authority=False,
            http_client=requests_session(ca_bundle, timeout),
        )

    def __repr__(self) -> str:
        return f"MsalAuth(scope={self.scope!r})"

    def token(self) -> str:
        """A valid access token: the cached one, or a new one from the identity endpoint."""
        with self._lock:
            if self._token is not None and time.time() < self._expires_at:
                return self._token
            try:
                result = self._app.acquire_token_for_client([self.scope])
            except Exception as exc:  # requests' connection and TLS errors, msal's discovery errors
                raise AuthError(
                    f"business_central: the identity endpoint could not be used ({type(exc).__name__}: {exc})",
                    code="vendor.auth_failed",
                    system="business_central",
                ) from exc
            if "access_token" not in result:
                raise AuthError(
                    "business_central: Entra ID refused the hub's client credentials: "
                    f"{result.get('error')}: {result.get('error_description')}",
                    code="vendor.auth_failed",
                    system="business_central",
                    details={"vendor_code": str(result.get("error"))},
                )
            if result.get("token_source") != "cache":
                self.acquired += 1
            lifetime = float(result.get("expires_in", 0))
            self._token = str(result["access_token"])
            self._expires_at = time.time() + max(0.0, lifetime - min(EXPIRY_MARGIN, lifetime / 10))
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget a token the API refused, here and in msal's cache."""
        with self._lock:
            if self._token == token:
                self._token = None
            cache = self._app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if entry.get("secret") == token:
                    cache.remove_at(entry)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request


__all__ = ["EXPIRY_MARGIN", "MsalAuth", "requests_session"]
