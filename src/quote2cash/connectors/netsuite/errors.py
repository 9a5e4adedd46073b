"""NetSuite error answers → the hub's errors.

REST answers ``{"o:errorDetails": [{"o:errorCode", "detail", "o:errorPath"}]}``,
RESTlets ``{"error": {"code", "message"}}``; the code is kept in
``details["vendor_code"]``.
"""

from __future__ import annotations

from quote2cash.connectors._http import error_mapper

SYSTEM = "netsuite"
#: A RESTlet over the account's concurrency limit answers 400 with this, where REST answers 429.
TRANSIENT = frozenset({"SSS_REQUEST_LIMIT_EXCEEDED", "CONCURRENCY_LIMIT_EXCEEDED"})
NOT_FOUND = frozenset({"NONEXISTENT_ID", "RCRD_DSNT_EXIST"})
AMBIGUOUS = frozenset({"DUP_ENTITY_EXTERNAL_ID"})


#: The hub error for one of this vendor's error answers.
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND, ambiguous=AMBIGUOUS)
