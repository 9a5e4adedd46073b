"""Errors as RFC 9457 problem details, carrying the hub's stable codes.

Every error answer of the API is ``application/problem+json``::

    {"type": "https://quote2cash.dev/errors/case.not_found", "title": "There is no such exception case.",
     "status": 404, "detail": "there is no exception case 42", "instance": "/api/v1/cases/42",
     "code": "case.not_found", "owner": "integration", "retryable": false}

``type`` names the code's entry in the catalogue (``docs/errors.md``),
``title`` is the catalogue's sentence and ``detail`` the message of this
occurrence; ``code``, ``owner``, ``retryable``, ``system``, ``record`` and
``errors`` (for invalid arguments) are extension members.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from quote2cash.errors import HubError, lookup

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://quote2cash.dev/errors/"
log = structlog.get_logger("quote2cash.api")


class Problem(BaseModel):
    """An RFC 9457 problem detail with the hub's extension members."""

    type: str = Field(description="URI of the error code's entry in the catalogue")
    title: str = Field(description="what the code means, the same for every occurrence")
    status: int
    detail: str = Field(description="what went wrong this time")
    instance: str = Field(description="the path of the request")
    code: str = Field(description="the hub's stable error code")
    owner: str = Field(description="the team that acts on it")
    retryable: bool
    system: str | None = None
    record: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="each invalid argument, for 400")


def problem(request: Request, code: str, detail: str, *, status: int | None = None, **extra: Any) -> Response:
    """A problem-details answer for ``code``; the status is the catalogue's unless given."""
    entry = lookup(code)
    body = {
        "type": TYPE_BASE + code,
        "title": entry.meaning,
        "status": status or entry.http_status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        "owner": str(entry.owner),
        "retryable": entry.retryable,
        **{k: v for k, v in extra.items() if v is not None},
    }
    headers = {"WWW-Authenticate": 'Bearer realm="quote2cash"'} if body["status"] == 401 else None
    if code == "api.busy":
        headers = {"Retry-After": "1"}
    return JSONResponse(body, status_code=int(body["status"]), media_type=MEDIA_TYPE, headers=headers)


def from_error(request: Request, exc: HubError) -> Response:
    """A hub error as problem details."""
    return problem(request, exc.code, exc.message, system=exc.system, record=exc.record)


def install(app: FastAPI) -> None:
    """Answer every error of the app as problem details."""

    async def hub_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HubError)
        return from_error(request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "request", "message": "invalid"}
        return problem(
            request, "usage.invalid_argument", f"{first['where']}: {first['message']}", errors=errors
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return problem(request, "api.method_not_allowed", f"{request.method} is not allowed here")
        if exc.status_code == 404:
            return problem(request, "api.not_found", f"there is nothing at {request.url.path}")
        return problem(request, "hub.error", str(exc.detail), status=exc.status_code)

    async def database_busy(request: Request, exc: Exception) -> Response:
        log.warning("api.database_error", error=str(exc).splitlines()[0][:200])
        return problem(request, "api.busy", "the hub database did not answer in time; send the request again")

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("api.unexpected_error", error=type(exc).__name__, detail=str(exc)[:300])
        return problem(request, "hub.error", "the hub failed on an unexpected error; it is in the hub's log")

    app.add_exception_handler(HubError, hub_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa.exc.OperationalError, database_busy)
    app.add_exception_handler(Exception, unexpected)


#: The problem responses every operation may answer, for the OpenAPI document.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem answers with these statuses."""
    return {
        s: {"model": Problem, "description": "problem details", "content": {MEDIA_TYPE: {}}} for s in statuses
    }
