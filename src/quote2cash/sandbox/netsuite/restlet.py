"""The hub's batch-upsert RESTlet, as deployed in a NetSuite account.

SuiteTalk REST has no batch write, so real integrations deploy a RESTlet (a
SuiteScript endpoint) for volume. This one is reached at
``POST /app/site/hosting/restlet.nl?script={script}&deploy={deploy}``, is signed
like the REST routes (the query parameters are part of the OAuth base string)
and shares the account's concurrency limit. Its body::

    {"records": [{"type": "journalentry", "externalId": "...", "fields": {...}}, ...]}

Each record is an upsert by external id through the same code as
``PUT /record/v1/{type}/eid:{externalId}``; the answer lists per-item results
in request order. Errors of the whole call use the RESTlet shape
``{"error": {"code", "message"}}``, not the REST ``o:errorDetails`` one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.responses import JSONResponse

from quote2cash.sandbox.netsuite.errors import NsError

RESTLET_PATH = "/app/site/hosting/restlet.nl"
MAX_BATCH = 200
# What the script upserts; anything else is refused per item.
BATCH_TYPES = ("journalentry", "timebill", "expensereport")

Upsert = Callable[[Sequence[tuple[str, str, dict[str, Any]]]], list[tuple[str, bool] | NsError]]


def restlet_error(status: int, code: str, message: str) -> JSONResponse:
    """A RESTlet error answer: ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status)


def invalid_login() -> JSONResponse:
    """401 for a RESTlet request whose token-based auth does not verify."""
    return restlet_error(401, "INVALID_LOGIN_ATTEMPT", "Invalid login attempt.")


def request_limit_exceeded(limit: int) -> JSONResponse:
    """What a RESTlet answers over the account concurrency limit: 400, not 429."""
    return restlet_error(
        400,
        "SSS_REQUEST_LIMIT_EXCEEDED",
        f"Request limit exceeded: the account allows {limit} concurrent requests "
        "(REST, SOAP and RESTlets combined). Retry when a request has finished.",
    )


def invalid_script() -> JSONResponse:
    """400 for a script/deploy pair that names no deployed RESTlet."""
    return restlet_error(
        400, "SSS_INVALID_SCRIPTLET_ID", "That Suitelet is invalid, disabled, or no longer exists."
    )


def _item_error(external_id: Any, code: str, message: str, path: str | None = None) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "success": False,
        "error": {"code": code, "message": message, "path": path},
    }


def run_batch(raw: bytes, upsert_many: Upsert) -> JSONResponse:
    """Parse a batch, upsert its records and answer the per-item results."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return restlet_error(400, "SYNTAX_ERROR", f"SyntaxError: the request body is not valid JSON ({exc}).")
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return restlet_error(400, "INVALID_REQUEST", "The request body needs a 'records' array.")
    if len(records) > MAX_BATCH:
        return restlet_error(
            400,
            "INVALID_BATCH_SIZE",
            f"A batch holds at most {MAX_BATCH} records; this one has {len(records)}.",
        )
    # Items that cannot even be read are answered in place; the rest go to the record book.
    results: list[dict[str, Any] | None] = [None] * len(records)
    accepted: list[tuple[int, tuple[str, str, dict[str, Any]]]] = []
    for index, item in enumerate(records):
        where = f"records[{index}]"
        if not isinstance(item, dict):
            results[index] = _item_error(None, "USER_ERROR", f"{where} must be an object.", where)
            continue
        external_id, type_, fields = item.get("externalId"), item.get("type"), item.get("fields", {})
        if not isinstance(external_id, str) or not external_id:
            results[index] = _item_error(
                external_id, "USER_ERROR", f"{where} needs an 'externalId' string.", "externalId"
            )
        elif type_ not in BATCH_TYPES:
            message = f"Record type {type_!r} cannot be batch-upserted; use one of {', '.join(BATCH_TYPES)}."
            results[index] = _item_error(external_id, "INVALID_RCRD_TYPE", message, "type")
        elif not isinstance(fields, dict):
            results[index] = _item_error(
                external_id, "USER_ERROR", f"{where}.fields must be an object.", "fields"
            )
        else:
            accepted.append((index, (type_, external_id, fields)))
    outcomes = upsert_many([request for _, request in accepted])
    for (index, (_, external_id, _)), outcome in zip(accepted, outcomes, strict=True):
        if isinstance(outcome, NsError):
            results[index] = _item_error(external_id, outcome.code, outcome.detail, outcome.path)
        else:
            id_, created = outcome
            results[index] = {"externalId": external_id, "id": id_, "success": True, "created": created}
    return JSONResponse({"results": results})


__all__ = [
    "BATCH_TYPES",
    "MAX_BATCH",
    "RESTLET_PATH",
    "invalid_login",
    "invalid_script",
    "request_limit_exceeded",
    "restlet_error",
    "run_batch",
]
