"""Approvals in the Kantata sandbox: timesheet and expense report submissions.

As in Kantata, a person submits time entries (or expenses) of one workspace
for approval, and an approver resolves the submission:

- ``POST /api/v1/timesheet_submissions.json`` with ``{"timesheet_submission":
  {"workspace_id", "line_item_ids", "title", "user_id"?}}``: a ``pending`` submission.
- ``PUT /api/v1/timesheet_submissions/<id>/approve.json``: the entries become approved.
- ``PUT …/reject.json``: a pending submission is turned down; the entries stay unapproved.
- ``PUT …/cancel.json``: a pending or approved submission is withdrawn; approved
  entries become unapproved again (un-approve), and can then be edited
  (``PUT /api/v1/time_entries/<id>.json``) and submitted again.
- ``POST /api/v1/timesheet_approvals.json`` (``…_rejections``, ``…_cancellations``)
  with ``{"resolution": {"submission_ids": [...], "description"?}}``: many at once.
- ``GET /api/v1/timesheet_submissions.json`` and ``…/<id>.json`` list and read them.

``expense_report_submissions`` work the same way over expenses. The ``.json``
suffix is optional on every route. A resolution's ``description`` is kept on
the submission under ``resolutions``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from quote2cash.sandbox.kantata._catalog import RESOURCES
from quote2cash.sandbox.kantata._state import KantataState
from quote2cash.sandbox.kantata._wire import Doc, KantataError, Paging, envelope


@dataclass(frozen=True)
class SubmissionKind:
    """A kind of submission and the records it carries."""

    name: str
    singular: str
    items: str  # the resource of its line items
    ids_field: str  # where the submission lists them
    bulk_prefix: str | None  # ``timesheet`` → /timesheet_approvals.json …


KINDS = {
    k.name: k
    for k in (
        SubmissionKind(
            "timesheet_submissions", "timesheet_submission", "time_entries", "time_entry_ids", "timesheet"
        ),
        SubmissionKind(
            "expense_report_submissions", "expense_report_submission", "expenses", "expense_ids", None
        ),
    )
}
ACTIONS = {"approve": "approved", "reject": "rejected", "cancel": "canceled"}
BULK = {"approvals": "approve", "rejections": "reject", "cancellations": "cancel"}
RESOLUTION_TYPE = {"approve": "approval", "reject": "rejection", "cancel": "cancellation"}


class Host(Protocol):
    """What the routes need from the sandbox."""

    token: str
    state: KantataState


def install_approvals(app: FastAPI, host: Host) -> None:
    """Add the submission routes to ``app`` (before the generic resource routes)."""
    for kind in KINDS.values():
        _install_kind(app, host, kind)


def _install_kind(app: FastAPI, host: Host, kind: SubmissionKind) -> None:
    base = f"/api/v1/{kind.name}"

    async def collection(request: Request) -> Response:
        if request.method == "GET":
            return await _answer(host, request, lambda _body: _list(host.state, kind, request.query_params))
        return await _answer(host, request, lambda body: (200, submit(host.state, kind, body)), body=True)

    async def member(id_: str, request: Request) -> Response:
        return await _answer(
            host, request, lambda _body: (200, _one(host.state, kind, [_require(host.state, kind, id_)]))
        )

    async def action(id_: str, verb: str, request: Request) -> Response:
        if verb not in ACTIONS:
            return _error(KantataError.system(404, f"there is no action {verb!r} on {kind.name}"))
        return await _answer(
            host,
            request,
            lambda body: (
                200,
                _one(host.state, kind, [resolve(host.state, kind, id_, verb, _description(body))]),
            ),
            body=True,
        )

    for suffix in (".json", ""):
        app.add_api_route(f"{base}{suffix}", collection, methods=["GET", "POST"])
        app.add_api_route(f"{base}/{{id_}}{suffix}", member, methods=["GET"])
        app.add_api_route(f"{base}/{{id_}}/{{verb}}{suffix}", action, methods=["PUT"])
    if kind.bulk_prefix is None:
        return
    for plural, verb in BULK.items():

        async def bulk(request: Request, verb: str = verb) -> Response:
            return await _answer(
                host, request, lambda body: (200, resolve_many(host.state, kind, verb, body)), body=True
            )

        for suffix in (".json", ""):
            app.add_api_route(f"/api/v1/{kind.bulk_prefix}_{plural}{suffix}", bulk, methods=["POST"])


# -- the writes ----------------------------------------------------------------------------
def submit(state: KantataState, kind: SubmissionKind, body: Any) -> dict[str, Any]:
    """Create a pending submission of line items of one workspace; answers its envelope."""
    raw = body.get(kind.singular) if isinstance(body, Mapping) else None
    if not isinstance(raw, Mapping):
        raise KantataError.validation(f"send one '{kind.singular}' object", kind.singular)
    workspace_id = str(raw.get("workspace_id") or "")
    ids = raw.get("line_item_ids")
    if not workspace_id:
        raise KantataError.validation("workspace_id can't be blank", "workspace_id")
    if not isinstance(ids, list) or not ids:
        raise KantataError.validation("line_item_ids must be a non-empty list of ids", "line_item_ids")
    with state.store.lock:
        state.require("workspaces", workspace_id)
        items = [state.require(kind.items, str(i)) for i in ids]
        taken = _active_items(state, kind)
        errors = []
        for item in items:
            label = f"{RESOURCES[kind.items].singular.replace('_', ' ')} {item['id']}"
            if str(item["workspace_id"]) != workspace_id:
                errors.append(f"{label} is not in workspace {workspace_id}")
            elif item["approved"]:
                errors.append(f"{label} is already approved")
            elif item["id"] in taken:
                errors.append(f"{label} is already on submission {taken[item['id']]}")
        if errors:
            raise KantataError(
                422, [{"type": "validation", "message": m, "field": "line_item_ids"} for m in errors]
            )
        now = state.clock.tick()
        doc: Doc = {
            "id": str(state.store.next_id(kind.name)),
            "title": str(
                raw.get("title") or f"{kind.singular.replace('_', ' ')} for workspace {workspace_id}"
            ),
            "workspace_id": workspace_id,
            "user_id": str(raw.get("user_id") or items[0].get("user_id") or ""),
            "status": "pending",
            kind.ids_field: sorted({str(i["id"]) for i in items}, key=int),
            "resolutions": [],
            "submitted_at": now,
            "created_at": now,
            "updated_at": now,
        }
        state.store.put(kind.name, doc["id"], doc)
        return _one(state, kind, [doc])


def resolve(state: KantataState, kind: SubmissionKind, id_: str, verb: str, description: str = "") -> Doc:
    """Approve, reject or cancel one submission; its line items follow. Returns the submission."""
    with state.store.lock:
        doc = _require(state, kind, id_)
        allowed = ("pending", "approved") if verb == "cancel" else ("pending",)
        if doc["status"] not in allowed:
            raise KantataError.validation(
                f"{kind.singular.replace('_', ' ')} {id_} is {doc['status']} and cannot be {ACTIONS[verb]}",
                "status",
            )
        if verb == "approve":
            state.set_approved(kind.items, doc[kind.ids_field], True)
        elif verb == "cancel" and doc["status"] == "approved":
            live = [i for i in doc[kind.ids_field] if state.find(kind.items, i) is not None]
            state.set_approved(kind.items, live, False)
        now = state.clock.tick()
        resolution = {"type": RESOLUTION_TYPE[verb], "description": description, "created_at": now}
        new = {
            **doc,
            "status": ACTIONS[verb],
            "resolutions": [*doc["resolutions"], resolution],
            "updated_at": now,
        }
        state.store.put(kind.name, id_, new)
        return new


def resolve_many(state: KantataState, kind: SubmissionKind, verb: str, body: Any) -> dict[str, Any]:
    """Resolve many submissions in one request, all or none; answers the resolutions."""
    raw = body.get("resolution") if isinstance(body, Mapping) else None
    ids = raw.get("submission_ids") if isinstance(raw, Mapping) else None
    if not isinstance(ids, list) or not ids:
        raise KantataError.validation("resolution.submission_ids must be a non-empty list", "submission_ids")
    description = _description(body)
    with state.store.lock:
        for id_ in ids:  # check them all before changing any
            doc = _require(state, kind, str(id_))
            allowed = ("pending", "approved") if verb == "cancel" else ("pending",)
            if doc["status"] not in allowed:
                raise KantataError.validation(
                    f"submission {id_} is {doc['status']} and cannot be {ACTIONS[verb]}", "submission_ids"
                )
        done = [resolve(state, kind, str(id_), verb, description) for id_ in ids]
    resolutions = [
        {**d["resolutions"][-1], "id": f"{d['id']}-{len(d['resolutions'])}", "target_type": kind.singular,
         "target_id": d["id"], "current": True}
        for d in done
    ]  # fmt: skip
    return envelope("resolutions", resolutions, total=len(resolutions))


# -- reading ---------------------------------------------------------------------------------
def _require(state: KantataState, kind: SubmissionKind, id_: str) -> Doc:
    doc = state.store.get(kind.name, str(id_))
    if doc is None:
        raise KantataError.not_found(kind.singular, str(id_))
    return doc


def _active_items(state: KantataState, kind: SubmissionKind) -> dict[str, str]:
    """Line items on a pending or approved submission, with its id."""
    return {
        item: doc["id"]
        for doc in state.store.all(kind.name)
        if doc["status"] in ("pending", "approved")
        for item in doc[kind.ids_field]
    }


def _list(state: KantataState, kind: SubmissionKind, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    paging = Paging.from_params(params)
    docs = sorted(state.store.all(kind.name), key=lambda d: int(d["id"]))
    for param, field in (("workspace_id", "workspace_id"), ("user_id", "user_id"), ("status", "status")):
        if params.get(param):
            wanted = set(params[param].split(","))
            docs = [d for d in docs if str(d[field]) in wanted]
    page = docs[paging.offset : paging.offset + paging.limit]
    return 200, envelope(
        kind.name, page, total=len(docs), paging=paging, included=_included(state, kind, page, params)
    )


def _one(state: KantataState, kind: SubmissionKind, docs: list[Doc]) -> dict[str, Any]:
    return envelope(
        kind.name, docs, total=len(docs), included=_included(state, kind, docs, {"include": kind.items})
    )


def _included(
    state: KantataState, kind: SubmissionKind, docs: list[Doc], params: Mapping[str, str]
) -> dict[str, dict[str, Doc]]:
    wanted = set((params.get("include") or "").split(","))
    if kind.items not in wanted:
        return {}
    items = {}
    for doc in docs:
        for id_ in doc[kind.ids_field]:
            item = state.store.get(kind.items, id_)
            if item is not None:
                items[id_] = dict(item)
    return {kind.items: items}


# -- plumbing ---------------------------------------------------------------------------------
def _description(body: Any) -> str:
    raw = body.get("resolution") if isinstance(body, Mapping) else None
    return str(raw.get("description") or "") if isinstance(raw, Mapping) else ""


def _error(error: KantataError) -> JSONResponse:
    return JSONResponse(error.body(), error.status)


async def _answer(host: Host, request: Request, work: Any, *, body: bool = False) -> Response:
    if request.headers.get("authorization") != f"Bearer {host.token}":
        return _error(
            KantataError(
                401, [{"type": "authentication", "message": "invalid or missing OAuth bearer token"}]
            )
        )
    payload: Any = None
    if body:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            return _error(KantataError.system(400, f"the request body is not valid JSON: {exc}"))
    try:
        status, answer = await run_in_threadpool(work, payload)
    except KantataError as exc:
        return _error(exc)
    return JSONResponse(answer, status)
