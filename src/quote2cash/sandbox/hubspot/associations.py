"""Associations v4: ``/crm/v4/objects/{from}/{id}/associations/...`` and
``/crm/v4/associations/{from}/{to}/batch/*``, plus the labels endpoint.

Association types are HubSpot-defined (341 deal→company, 5 its primary
label, 19 deal→line item, …; see :data:`~quote2cash.sandbox.hubspot.schema.ASSOCIATION_TYPES`);
an association is always stored in both directions.
"""

from __future__ import annotations

from typing import Any

from quote2cash.sandbox.hubspot.errors import HubSpotError, validation
from quote2cash.sandbox.hubspot.objects import _inputs, _keys, batch_answer
from quote2cash.sandbox.hubspot.portal import Portal
from quote2cash.sandbox.hubspot.schema import TYPES, ObjectType, association_types, iso

CATEGORY = "HUBSPOT_DEFINED"


def _spec(type_id: int) -> dict[str, Any]:
    return {"associationCategory": CATEGORY, "associationTypeId": type_id}


def labels(from_type: ObjectType, to_type: ObjectType) -> dict[str, Any]:
    """``GET /crm/v4/associations/{from}/{to}/labels``."""
    return {
        "results": [
            {"category": CATEGORY, "typeId": tid, "label": label}
            for tid, label in association_types(from_type.name, to_type.name)
        ]
    }


def _type_ids(specs: Any) -> list[int]:
    if not isinstance(specs, list) or not specs:
        raise validation("association types must be a non-empty list", code="INVALID_ASSOCIATION")
    ids = []
    for spec in specs:
        spec = _keys(spec, {"associationCategory", "associationTypeId"}, "an association type")
        if spec.get("associationCategory") not in (CATEGORY, "USER_DEFINED", "INTEGRATOR_DEFINED"):
            raise validation(
                f"associationCategory {spec.get('associationCategory')!r} is not valid",
                code="INVALID_ASSOCIATION_CATEGORY",
            )
        if not isinstance(spec.get("associationTypeId"), int):
            raise validation("associationTypeId must be an integer", code="INVALID_ASSOCIATION_TYPE")
        ids.append(int(spec["associationTypeId"]))
    return ids


def pair(
    portal: Portal, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str, ids: list[int]
) -> dict[str, Any]:
    """Associate two records with the given types; the ``LabelsBetweenObjectPair`` answer."""
    portal.associate(from_type.name, from_id, to_type.name, to_id, ids)
    names = dict(association_types(from_type.name, to_type.name))
    return {
        "fromObjectTypeId": from_type.type_id,
        "fromObjectId": int(from_id),
        "toObjectTypeId": to_type.type_id,
        "toObjectId": int(to_id),
        "labels": [names[i] for i in ids if names.get(i)],
    }


def create(
    portal: Portal, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str, body: Any
) -> dict[str, Any]:
    """``PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`` with a list of types."""
    return pair(portal, from_type, from_id, to_type, to_id, _type_ids(body))


def create_default(
    portal: Portal, from_type: ObjectType, from_id: str, to_type: ObjectType, to_id: str
) -> dict[str, Any]:
    """``PUT .../associations/default/{to}/{toId}``: the unlabeled type, both directions in the answer."""
    default = association_types(from_type.name, to_type.name)[0][0]
    portal.associate(from_type.name, from_id, to_type.name, to_id, [default])
    inverse = association_types(to_type.name, from_type.name)[0][0]
    results = [
        {"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": _spec(default)},
        {"from": {"id": to_id}, "to": {"id": from_id}, "associationSpec": _spec(inverse)},
    ]
    now = portal.clock()
    return {"status": "COMPLETE", "results": results, "startedAt": iso(now), "completedAt": iso(now)}


def _targets(
    portal: Portal, from_type: ObjectType, from_id: str, to_type: ObjectType
) -> list[dict[str, Any]]:
    names = dict(association_types(from_type.name, to_type.name))
    return [
        {
            "toObjectId": int(to_id),
            "associationTypes": [{"category": CATEGORY, "typeId": t, "label": names.get(t)} for t in ids],
        }
        for to_id, ids in portal.associations(from_type.name, from_id, to_type.name)
    ]


def list_page(
    portal: Portal, from_type: ObjectType, from_id: str, to_type: ObjectType, limit: int, after: str | None
) -> dict[str, Any]:
    """``GET /crm/v4/objects/{from}/{id}/associations/{to}`` (up to 500 a page)."""
    if not 0 < limit <= 500:
        raise validation("limit must be between 1 and 500", code="INVALID_LIMIT")
    portal.live(from_type.name, from_id)
    rows = _targets(portal, from_type, from_id, to_type)
    start = int(after) if after and after.isdigit() else 0
    body: dict[str, Any] = {"results": rows[start : start + limit]}
    if start + limit < len(rows):
        body["paging"] = {"next": {"after": str(start + limit)}}
    return body


def batch_create(
    portal: Portal, from_type: ObjectType, to_type: ObjectType, body: Any
) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v4/associations/{from}/{to}/batch/create``: 201, or 207 for the pairs that fail."""
    results, errors = [], []
    for item in _inputs(body, {"inputs"}, {"from", "to", "types"}):
        from_id = str((item.get("from") or {}).get("id") or "")
        to_id = str((item.get("to") or {}).get("id") or "")
        try:
            results.append(pair(portal, from_type, from_id, to_type, to_id, _type_ids(item.get("types"))))
        except HubSpotError as exc:
            if exc.status == 400 and exc.category == "VALIDATION_ERROR" and not exc.context:
                raise
            errors.append(exc)
    status, answer = batch_answer(portal, results, errors)
    return (201 if status == 200 else status), answer


def batch_default(
    portal: Portal, from_type: ObjectType, to_type: ObjectType, body: Any
) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v4/associations/{from}/{to}/batch/associate/default``."""
    results, errors = [], []
    for item in _inputs(body, {"inputs"}, {"from", "to"}):
        from_id = str((item.get("from") or {}).get("id") or "")
        to_id = str((item.get("to") or {}).get("id") or "")
        try:
            results.extend(create_default(portal, from_type, from_id, to_type, to_id)["results"])
        except HubSpotError as exc:
            errors.append(exc)
    return batch_answer(portal, results, errors)


def batch_read(
    portal: Portal, from_type: ObjectType, to_type: ObjectType, body: Any
) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v4/associations/{from}/{to}/batch/read``: objects with none are 207 errors."""
    association_types(from_type.name, to_type.name)
    results, errors = [], []
    for item in _inputs(body, {"inputs"}, {"id", "after"}):
        from_id = str(item.get("id") or "")
        targets = []
        if portal.store.get(f"hs_{from_type.name}", from_id) is not None:
            targets = _targets(portal, from_type, from_id, to_type)
        if not targets:
            errors.append(
                HubSpotError(
                    404,
                    "OBJECT_NOT_FOUND",
                    f"No {TYPES[to_type.name].singular} is associated with {from_type.singular} {from_id}.",
                    sub_category="crm.associations.NO_ASSOCIATIONS_FOUND",
                    context={"fromObjectId": [from_id]},
                )
            )
            continue
        results.append({"from": {"id": from_id}, "to": targets})
    return batch_answer(portal, results, errors)
