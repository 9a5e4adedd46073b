"""Who is calling: an API token in ``Authorization: Bearer``, or the console's
session cookie (which holds the token the person logged in with).

:func:`require` makes a dependency that answers 401 ``api.unauthorized``
without a live token and 403 ``api.forbidden`` when the token lacks the scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from quote2cash.errors import HubError
from quote2cash.ops import tokens
from quote2cash.ops.tokens import Token
from quote2cash.runtime.hub import Hub

SESSION_COOKIE = "q2c_session"


class Unauthorized(HubError):
    """No token, or one the hub does not know (or revoked, or expired)."""

    code = "api.unauthorized"


class Forbidden(HubError):
    """The token lacks the scope the call needs."""

    code = "api.forbidden"


def hub_of(request: Request) -> Hub:
    """The hub the app serves."""
    hub: Hub = request.app.state.hub
    return hub


def presented(request: Request) -> str | None:
    """The token text the request carries, if any."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE) or None


def caller(request: Request) -> Token | None:
    """The live token of the request, or None."""
    cached = getattr(request.state, "token", None)
    if isinstance(cached, Token):
        return cached
    text = presented(request)
    if text is None:
        return None
    token = tokens.authenticate(hub_of(request), text)
    request.state.token = token
    return token


def check(request: Request, scope: str) -> Token:
    """The request's token, if it grants ``scope``; else 401 or 403."""
    if presented(request) is None:
        raise Unauthorized("this call needs an API token: send 'Authorization: Bearer q2c_…'")
    token = caller(request)
    if token is None:
        raise Unauthorized("the API token is not known to the hub, or it was revoked or has expired")
    if not token.allows(scope):
        raise Forbidden(
            f"the token of {token.owner} has scopes {', '.join(token.scopes)}; this call needs '{scope}'"
        )
    return token


def require(scope: str) -> Callable[[Request], Any]:
    """A dependency: the caller's token, which must grant ``scope``."""

    def dependency(request: Request) -> Token:
        return check(request, scope)

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
