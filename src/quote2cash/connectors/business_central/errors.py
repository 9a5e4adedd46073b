"""Business Central error answers → the hub's errors.

Business Central answers OData JSON ``{"error": {"code", "message"}}``, also
inside each answer of a ``$batch``; the code is kept in ``details["vendor_code"]``.
"""

from __future__ import annotations

from typing import Any

from quote2cash.connectors._http import error_mapper
from quote2cash.errors import HubError, VendorPayloadError

SYSTEM = "business_central"
#: Throttling, also where it arrives inside a ``$batch`` answer rather than as an HTTP 429.
TRANSIENT = frozenset({"Application_TooManyRequests", "Internal_ServiceUnavailable"})
NOT_FOUND = frozenset({"BadRequest_NotFound"})
#: A create whose key (``number``, ``code``) is taken: the record exists already.
EXISTS = "Internal_EntityWithSameKeyExists"
#: A ``PATCH``/``DELETE`` whose ``If-Match`` ETag is no longer the record's.
CHANGED = "Request_EntityChanged"

#: The hub error for one of this vendor's error answers.
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND)


def from_body(status: int, body: Any, record: str | None) -> HubError:
    """The hub error for an error answer's status and decoded body."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(code, str):
        return VendorPayloadError(
            f"business_central answered HTTP {status} with an unreadable error body: {str(body)[:300]!r}",
            system=SYSTEM,
            record=record,
            details={"status": status},
        )
    # The message ends with "CorrelationId: <guid>."; it stays, it is what Microsoft support asks for.
    return from_vendor(status, code, str(error.get("message") or code), record)


__all__ = ["CHANGED", "EXISTS", "NOT_FOUND", "SYSTEM", "TRANSIENT", "from_body", "from_vendor"]
