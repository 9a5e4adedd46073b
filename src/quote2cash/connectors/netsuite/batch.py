"""The batch-upsert RESTlet's wire format: request encoding and per-item results.

The RESTlet (``customscript_q2c_batch_upsert``, deployed by the hub's SuiteApp)
takes ``{"records": [{"type", "externalId", "fields"}, ...]}``, at most
:data:`MAX_BATCH` per call, and answers ``{"results": [...]}`` in request order:
``{"externalId", "id", "success": true, "created"}`` or
``{"externalId", "success": false, "error": {"code", "message", "path"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from quote2cash.errors import BusinessRuleError, VendorPayloadError

RESTLET_PATH = "/app/site/hosting/restlet.nl"
BATCH_SCRIPT = "customscript_q2c_batch_upsert"
BATCH_DEPLOY = "1"
MAX_BATCH = 200
_SYSTEM = "netsuite"


@dataclass(frozen=True)
class BatchResult:
    """What the RESTlet did with one record of a batch.

    ``code``/``message``/``path`` are NetSuite's ``o:errorCode``, detail and
    ``o:errorPath`` when ``success`` is False. ``created`` says whether this
    call created the record; after a retried call it is False even for a
    record the first, lost, attempt created.
    """

    external_id: str
    id: str | None
    success: bool
    created: bool | None
    code: str | None
    message: str | None
    path: str | None

    def error(self, record_type: str | None = None) -> BusinessRuleError | None:
        """The refusal as the hub's :class:`BusinessRuleError` (``netsuite.{code}``), or None."""
        if self.success:
            return None
        where = f"eid:{self.external_id}"
        return BusinessRuleError(
            self.message or self.code or "the record was refused",
            code="erp.posting_rejected",
            system=_SYSTEM,
            record=f"{record_type}/{where}" if record_type else where,
            details={"path": self.path, "vendor_code": self.code or "UNKNOWN"},
        )


def _plain(value: Any) -> Any:
    # Money and quantities stay exact: Decimal goes on the wire as text, never as a float.
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to the NetSuite RESTlet")


def encode_batch(records: Sequence[Mapping[str, Any]]) -> bytes:
    """The JSON request body for one chunk of records."""
    return json.dumps({"records": list(records)}, default=_plain, separators=(",", ":")).encode()


def _fail(message: str, record: str) -> VendorPayloadError:
    return VendorPayloadError(f"netsuite batch RESTlet {message}", system=_SYSTEM, record=record)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_results(body: Any, sent: Sequence[Mapping[str, Any]], record: str) -> list[BatchResult]:
    """Per-item results of one call, checked against the records sent."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise _fail("answered without a 'results' list", record)
    if len(results) != len(sent):
        raise _fail(f"answered {len(results)} results for {len(sent)} records", record)
    out: list[BatchResult] = []
    for index, (item, request) in enumerate(zip(results, sent, strict=True)):
        if not isinstance(item, dict) or not isinstance(item.get("success"), bool):
            raise _fail(f"answered an unreadable result at position {index}: {item!r}", record)
        external_id = str(item.get("externalId") or request.get("externalId") or "")
        if item["success"]:
            if item.get("id") is None:
                raise _fail(f"answered success without an id at position {index}", record)
            out.append(
                BatchResult(external_id, str(item["id"]), True, bool(item.get("created")), None, None, None)
            )
            continue
        error = item.get("error")
        if not isinstance(error, dict):
            raise _fail(f"answered a failure without an error at position {index}", record)
        out.append(
            BatchResult(
                external_id,
                None,
                False,
                None,
                _optional_text(error.get("code")),
                _optional_text(error.get("message")),
                _optional_text(error.get("path")),
            )
        )
    return out


__all__ = [
    "BATCH_DEPLOY",
    "BATCH_SCRIPT",
    "MAX_BATCH",
    "RESTLET_PATH",
    "BatchResult",
    "encode_batch",
    "parse_results",
]
