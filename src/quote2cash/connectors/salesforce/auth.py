"""Salesforce session auth: the org's bearer token on every API call, as an ``httpx.Auth`` flow.

The token comes from the OAuth 2.0 client-credentials flow
(:meth:`SalesforceClient.authenticate`); the token request itself carries no
bearer token.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

TOKEN_PATH = "/services/oauth2/token"


class SessionAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` once a session token is held."""

    def __init__(self) -> None:
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign one request (httpx calls this for every send, retries included)."""
        if self.token and not request.url.path.endswith(TOKEN_PATH):
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request

    def __repr__(self) -> str:
        # The token must not end up in logs or tracebacks.
        return f"SessionAuth(token={'***' if self.token else None})"
