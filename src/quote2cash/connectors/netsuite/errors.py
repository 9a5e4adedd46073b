"""NetSuite error answers → the hub's errors.

REST answers ``{"o:errorDetails": [{"o:errorCode", "detail", "o:errorPath"}]}``,
RESTlets ``{"error": {"code", "message"}}``; the code is kept in
``details["vendor_code"]``.
"""

from __future__ import annotations

from typing import Any

from quote2cash.connectors._http import vendor_error
from quote2cash.errors import HubError

SYSTEM = "netsuite"
#: A RESTlet over the account's concurrency limit answers 400 with this, where REST answers 429.
TRANSIENT = frozenset({"SSS_REQUEST_LIMIT_EXCEEDED", "CONCURRENCY_LIMIT_EXCEEDED"})
NOT_FOUND = frozenset({"NONEXISTENT_ID", "RCRD_DSNT_EXIST"})
AMBIGUOUS = frozenset({"DUP_ENTITY_EXTERNAL_ID"})


def from_vendor(
    status: int, code: str, message: str, record: str | None, details: dict[str, Any] | None = None
) -> HubError:
    """The hub error for one NetSuite error."""
    return vendor_error(
        SYSTEM,
        status,
        code,
        message,
        record=record,
        details=details,
        transient=TRANSIENT,
        not_found=NOT_FOUND,
        ambiguous=AMBIGUOUS,
    )
