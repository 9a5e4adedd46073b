"""Certinia PSA error answers → the hub's errors.

Certinia answers as Salesforce does (the error array, or one entry per record
of a Collections call); its validation rules and triggers answer
``FIELD_CUSTOM_VALIDATION_EXCEPTION`` and an approved record is
``ENTITY_IS_LOCKED``, both refusals for a person. The vendor code is kept in
``details["vendor_code"]``.
"""

from __future__ import annotations

from quote2cash.connectors._http import error_mapper
from quote2cash.connectors.salesforce.client import ItemResult
from quote2cash.connectors.salesforce.errors import AMBIGUOUS, NOT_FOUND, TRANSIENT
from quote2cash.errors import HubError

SYSTEM = "certinia"

#: The hub error for one Certinia error answer.
from_vendor = error_mapper(SYSTEM, transient=TRANSIENT, not_found=NOT_FOUND, ambiguous=AMBIGUOUS)


def item_error(result: ItemResult, record: str) -> HubError:
    """The hub error of one failed record of a Collections call."""
    first = (result.errors or [{}])[0]
    return from_vendor(
        400,
        str(first.get("statusCode") or "UNKNOWN_EXCEPTION"),
        str(first.get("message") or "the PSA refused the record"),
        record,
        {"fields": list(first.get("fields") or [])},
    )
