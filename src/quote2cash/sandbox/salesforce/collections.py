"""Upserts by external id and the sObject Collections resources (≤200 records a call).

Collections always answer HTTP 200 with one result per record once the request
is well-formed. With ``allOrNone`` an invalid record rolls the whole call back:
the failed record reports its own error and every other one
``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from quote2cash.sandbox.salesforce.errors import SalesforceError
from quote2cash.sandbox.salesforce.org import Org, Write
from quote2cash.sandbox.salesforce.schema import is_custom, normalize_id

MAX_RECORDS = 200
_ROLLED_BACK = SalesforceError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


class MultipleMatches(SalesforceError):
    """An external id value matches more than one record (a REST upsert answers 300)."""

    def __init__(self, field: str, ids: list[str]) -> None:
        super().__init__(
            "DUPLICATE_EXTERNAL_ID",
            f"{field}: more than one record found for external id field: [{', '.join(ids)}]",
            status=300,
            fields=[field],
        )
        self.ids = ids


def external_field(org: Org, sobject: str, name: str) -> str:
    """The canonical name of a field usable as an upsert key (``Id`` or a custom field)."""
    if name.lower() == "id":
        return "Id"
    field = org.spec(sobject).field(name)
    if not is_custom(name) or field is None:
        raise SalesforceError(
            "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}", status=404
        )
    return field.name


def plan_upsert(
    org: Org, sobject: str, field: str, value: str, fields: dict[str, Any], *, update_only: bool = False
) -> Write:
    """Plan an upsert of ``fields`` on the record whose ``field`` equals ``value``."""
    fields = dict(fields)
    given = fields.pop(field, None)
    if given is not None and str(given) != value:
        raise SalesforceError(
            "INVALID_FIELD",
            f"The external ID field {field} in the body ({given}) does not match the URL ({value})",
            fields=[field],
        )
    if field == "Id":
        return org.plan_update(sobject, value, fields)
    ids = org.find_ids(sobject, field, value)
    if len(ids) > 1:
        raise MultipleMatches(field, ids)
    if ids:
        return org.plan_update(sobject, ids[0], fields)
    if update_only:
        raise SalesforceError("NOT_FOUND", "The requested resource does not exist", status=404)
    return org.plan_insert(sobject, {**fields, field: value})


def _envelope(body: Any) -> tuple[bool, list[Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(
            "JSON_PARSER_ERROR", 'The request body must be {"allOrNone": ..., "records": [...]}'
        )
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceError(
            "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from {all_or_none!r}"
        )
    records: list[Any] = body["records"]
    if len(records) > MAX_RECORDS:
        raise SalesforceError(
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
        )
    return all_or_none, records


def _record_type(org: Org, record: Any, default: str | None = None) -> str:
    attributes = record.get("attributes") if isinstance(record, dict) else None
    sobject = attributes.get("type") if isinstance(attributes, dict) else None
    if sobject is None and default is None:
        raise SalesforceError("INVALID_TYPE", "Must send a concrete entity type.")
    spec = org.spec(str(sobject or default))
    if default is not None and spec.name != org.spec(default).name:
        raise SalesforceError("INVALID_TYPE", f"Record type {sobject} does not match the URL's {default}")
    if not spec.api_writable:
        raise SalesforceError(
            "INVALID_TYPE_FOR_OPERATION", f"entity type {spec.name} does not support this operation"
        )
    return spec.name


def _finish(
    org: Org,
    all_or_none: bool,
    planned: list[Write | SalesforceError],
    known_ids: list[str | None],
    *,
    upsert: bool,
) -> list[dict[str, Any]]:
    """Commit what validated (nothing at all if allOrNone and one failed) and shape the results."""
    failed = any(isinstance(p, SalesforceError) for p in planned)
    rollback = all_or_none and failed
    if not rollback:
        org.commit([p for p in planned if isinstance(p, Write)])
    results: list[dict[str, Any]] = []
    for plan, known in zip(planned, known_ids, strict=True):
        if isinstance(plan, Write) and not rollback:
            result: dict[str, Any] = {"id": plan.id, "success": True, "errors": []}
            if upsert:
                result["created"] = plan.created
        else:
            error = plan if isinstance(plan, SalesforceError) else _ROLLED_BACK
            result = {"success": False, "errors": [error.item()]}
            if known is not None:
                result = {"id": known, **result}
        results.append(result)
    return results


def create(org: Org, body: Any) -> list[dict[str, Any]]:
    """``POST /composite/sobjects``: insert up to 200 records of one or more types."""
    all_or_none, records = _envelope(body)
    with org.store.lock:
        typed = [(t := _record_type(org, r), org.clean(t, r)) for r in records]
        planned: list[Write | SalesforceError] = []
        for sobject, fields in typed:
            try:
                planned.append(org.plan_insert(sobject, fields))
            except SalesforceError as exc:
                planned.append(exc)
        return _finish(org, all_or_none, planned, [None] * len(planned), upsert=False)


def update(org: Org, body: Any) -> list[dict[str, Any]]:
    """``PATCH /composite/sobjects``: update up to 200 records by ``id``."""
    all_or_none, records = _envelope(body)
    with org.store.lock:
        typed = [(t := _record_type(org, r), org.clean(t, r)) for r in records]
        ids = [normalize_id(str(f.get("Id"))) if f.get("Id") else None for _, f in typed]
        repeated = {i for i, n in Counter(ids).items() if i is not None and n > 1}
        planned: list[Write | SalesforceError] = []
        for (sobject, fields), id_ in zip(typed, ids, strict=True):
            try:
                if fields.get("Id") is None:
                    raise SalesforceError(
                        "MISSING_ARGUMENT", "Id not specified in an update call", fields=["Id"]
                    )
                if id_ is None:
                    raise SalesforceError("MALFORMED_ID", f"bad id {fields['Id']}", fields=["Id"])
                if id_ in repeated:
                    raise SalesforceError(
                        "DUPLICATE_VALUE",
                        "Maximum number of duplicate updates in one batch (1 allowed). Attempt to update Id "
                        f"more than once in this API call: {id_}",
                    )
                current = org.fetch(sobject, id_)
                if current is None:
                    raise SalesforceError(
                        "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", fields=["Id"]
                    )
                if current.get("IsDeleted"):
                    raise SalesforceError("ENTITY_IS_DELETED", "entity is deleted", fields=[])
                planned.append(org.plan_update(sobject, id_, fields))
            except SalesforceError as exc:
                planned.append(exc)
        return _finish(org, all_or_none, planned, ids, upsert=False)


def upsert(org: Org, sobject: str, field_name: str, body: Any) -> list[dict[str, Any]]:
    """``PATCH /composite/sobjects/{T}/{ExtField}``: upsert up to 200 records of one type."""
    all_or_none, records = _envelope(body)
    spec_name = org.spec(sobject).name
    field = external_field(org, spec_name, field_name)
    with org.store.lock:
        typed = [org.clean(_record_type(org, r, spec_name), r) for r in records]
        values = [None if f.get(field) is None else str(f[field]) for f in typed]
        repeated = {v for v, n in Counter(values).items() if v is not None and n > 1}
        planned: list[Write | SalesforceError] = []
        for fields, value in zip(typed, values, strict=True):
            try:
                if value is None:
                    raise SalesforceError(
                        "MISSING_ARGUMENT",
                        f"{field} not specified: an upsert needs the external id value",
                        fields=[field],
                    )
                if value in repeated:
                    raise SalesforceError(
                        "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", fields=[field]
                    )
                planned.append(plan_upsert(org, spec_name, field, value, fields))
            except SalesforceError as exc:
                planned.append(exc)
        return _finish(org, all_or_none, planned, [None] * len(planned), upsert=True)
