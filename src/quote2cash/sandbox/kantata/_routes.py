"""The ``/api/v1`` HTTP routes of the Kantata sandbox.

Two route shapes serve every resource: ``/api/v1/<resource>.json`` (GET list,
POST create) and ``/api/v1/<resource>/<id>.json`` (GET, PUT, DELETE);
submissions and their approvals have routes of their own
(:mod:`quote2cash.sandbox.kantata._approvals`). Work
runs in a thread so that a slow list does not stall injected latencies of
other requests on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from quote2cash.sandbox.kantata._approvals import install_approvals
from quote2cash.sandbox.kantata._catalog import RESOURCES, Resource
from quote2cash.sandbox.kantata._query import list_envelope, one_envelope
from quote2cash.sandbox.kantata._schema import require_object
from quote2cash.sandbox.kantata._state import KantataState
from quote2cash.sandbox.kantata._wire import MAX_BULK, KantataError

_OPERATIONS = {
    ("GET", False): "list",
    ("POST", False): "create",
    ("GET", True): "get",
    ("PUT", True): "update",
    ("PATCH", True): "update",
    ("DELETE", True): "delete",
}


class Host(Protocol):
    """What the routes need from the sandbox."""

    token: str
    state: KantataState


def install_api(app: FastAPI, host: Host) -> None:
    """Add the Kantata API v1 routes to ``app``: submissions and approvals first, then every resource."""
    install_approvals(app, host)

    @app.api_route("/api/v1/{resource}.json", methods=["GET", "POST"])
    async def collection(resource: str, request: Request) -> Response:
        return await _dispatch(host, request, resource, None)

    @app.api_route("/api/v1/{resource}/{id_}.json", methods=["GET", "PUT", "PATCH", "DELETE"])
    async def member(resource: str, id_: str, request: Request) -> Response:
        return await _dispatch(host, request, resource, id_)


def error_response(error: KantataError) -> JSONResponse:
    """A Kantata error as an HTTP response."""
    return JSONResponse(error.body(), error.status)


async def _dispatch(host: Host, request: Request, name: str, id_: str | None) -> Response:
    if request.headers.get("authorization") != f"Bearer {host.token}":
        return error_response(
            KantataError(
                401, [{"type": "authentication", "message": "invalid or missing OAuth bearer token"}]
            )
        )
    resource = RESOURCES.get(name)
    if resource is None:
        return error_response(KantataError.system(404, f"there is no resource named {name!r}"))
    operation = _OPERATIONS[(request.method, id_ is not None)]
    if operation not in resource.methods:
        return error_response(
            KantataError.system(405, f"{request.method} {request.url.path} is not supported")
        )
    body: Any = None
    if operation in ("create", "update"):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            return error_response(KantataError.system(400, f"the request body is not valid JSON: {exc}"))
    params = dict(request.query_params)
    try:
        status, payload = await run_in_threadpool(_run, host.state, resource, operation, id_, params, body)
    except KantataError as exc:
        return error_response(exc)
    if payload is None:
        return Response(status_code=status)
    return JSONResponse(payload, status)


def _run(
    state: KantataState,
    resource: Resource,
    operation: str,
    id_: str | None,
    params: Mapping[str, str],
    body: Any,
) -> tuple[int, dict[str, Any] | None]:
    if operation == "list":
        return 200, list_envelope(state, resource, params)
    if operation == "create":
        created = state.create(resource.name, _objects(resource, body))
        return 200, one_envelope(state, resource, created, params)
    assert id_ is not None
    if operation == "get":
        return 200, one_envelope(state, resource, [state.require(resource.name, id_)], params)
    if operation == "update":
        updated = state.update(resource.name, id_, require_object(body, resource.singular))
        return 200, one_envelope(state, resource, [updated], params)
    state.delete(resource.name, id_)
    return 204, None


def _objects(resource: Resource, body: Any) -> list[Mapping[str, Any]]:
    """The objects of a POST: one under the singular key, or up to 100 under the plural."""
    if isinstance(body, Mapping) and resource.name in body:
        if not resource.bulk:
            raise KantataError.validation(
                f"{resource.name} are created one at a time: send one '{resource.singular}' object",
                resource.name,
            )
        items = body[resource.name]
        if not isinstance(items, list) or not items or not all(isinstance(i, Mapping) for i in items):
            raise KantataError.validation(
                f"'{resource.name}' must be a non-empty list of objects", resource.name
            )
        if len(items) > MAX_BULK:
            raise KantataError.validation(
                f"at most {MAX_BULK} {resource.name} can be created in one request ({len(items)} sent)",
                resource.name,
            )
        return items
    return [require_object(body, resource.singular)]
