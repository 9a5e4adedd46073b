"""Salesforce error answers → the hub's errors.

Salesforce answers an error array ``[{"message", "errorCode", "fields"}]``;
the ``errorCode`` is kept in ``details["vendor_code"]``.
"""

from __future__ import annotations

from quote2cash.connectors._http import error_mapper

SYSTEM = "salesforce"
#: The org's API request limit: retried, like a 429.
TRANSIENT = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
NOT_FOUND = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
#: An upsert whose external id matched several records (HTTP 300).
AMBIGUOUS = frozenset({"MULTIPLE_MATCHES", "DUPLICATE_EXTERNAL_ID"})


#: The hub error for one of this vendor's error answers.
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND, ambiguous=AMBIGUOUS)
