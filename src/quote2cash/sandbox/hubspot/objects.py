"""The object endpoints: ``/crm/v3/objects/{objectType}`` (list, read, create,
update, archive) and their ``/batch/*`` forms of up to 100 inputs.

A batch create is all or nothing (one bad input refuses the request); batch
read, update and upsert apply what they can and answer **207** with
``numErrors`` and one ``errors`` entry per failed input. A property the
portal does not define refuses the whole request (``PROPERTY_DOESNT_EXIST``).
"""

from __future__ import annotations

from typing import Any

from quote2cash.sandbox.hubspot.errors import HubSpotError, validation
from quote2cash.sandbox.hubspot.portal import Portal
from quote2cash.sandbox.hubspot.schema import ASSOCIATION_TYPES, ObjectType, iso, object_type

BATCH_LIMIT = 100
LIST_LIMIT = 100


def _keys(body: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation(f"Invalid input JSON: {where} must be an object")
    unknown = set(body) - allowed
    if unknown:
        raise validation(f'Invalid input JSON: Unrecognized field "{sorted(unknown)[0]}" in {where}')
    return body


def _inputs(body: Any, allowed: set[str], item_keys: set[str]) -> list[dict[str, Any]]:
    body = _keys(body, allowed, "the batch input")
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise validation("Invalid input JSON: 'inputs' must be a list", code="REQUIRED_FIELD")
    if len(inputs) > BATCH_LIMIT:
        raise validation(
            f"Batch input is limited to {BATCH_LIMIT} inputs; got {len(inputs)}", code="TOO_MANY_INPUTS"
        )
    return [_keys(i, item_keys, "an input") for i in inputs]


def _stamps(portal: Portal) -> dict[str, str]:
    now = iso(portal.clock())
    return {"startedAt": now, "completedAt": now}


def batch_answer(
    portal: Portal, results: list[Any], errors: list[HubSpotError]
) -> tuple[int, dict[str, Any]]:
    """(status, body) of a batch: 200 when every input succeeded, 207 with the errors otherwise."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, **_stamps(portal)}
    if not errors:
        return 200, body
    return 207, {**body, "numErrors": len(errors), "errors": [e.item() for e in errors]}


def associations_of(portal: Portal, type_: ObjectType, id_: str, wanted: list[str]) -> dict[str, Any]:
    """The v3 ``associations`` member of a record for the requested target types."""
    out: dict[str, Any] = {}
    for name in wanted:
        try:
            target = object_type(name)
        except HubSpotError:
            continue  # HubSpot ignores association types it cannot resolve
        pairs = portal.associations(type_.name, id_, target.name)
        if pairs:
            out[target.name] = {
                "results": [
                    {"id": to_id, "type": f"{type_.singular}_to_{target.singular}"} for to_id, _ in pairs
                ]
            }
    return out


def _create_associations(portal: Portal, type_: ObjectType, spec: Any) -> list[tuple[str, str, list[int]]]:
    """Validated (to type, to id, type ids) of a create input's ``associations``."""
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise validation("Invalid input JSON: 'associations' must be a list")
    out = []
    for a in spec:
        a = _keys(a, {"to", "types"}, "an association")
        to_id = str((a.get("to") or {}).get("id") or "")
        types = a.get("types") or []
        if not to_id or not isinstance(types, list) or not types:
            raise validation("an association needs 'to.id' and 'types'", code="INVALID_ASSOCIATION")
        ids = [int(t.get("associationTypeId", 0)) for t in types if isinstance(t, dict)]
        target = next(
            (t for (f, t), known in _pairs() if f == type_.name and any(i in known for i in ids)), None
        )
        if target is None:
            raise validation(
                f"associationTypeId {ids[0] if ids else '?'} is not valid for a {type_.singular}",
                code="INVALID_ASSOCIATION_TYPE",
            )
        portal.live(target, to_id)
        out.append((target, to_id, ids))
    return out


def _pairs() -> list[tuple[tuple[str, str], set[int]]]:
    return [(pair, {i for i, _ in types}) for pair, types in ASSOCIATION_TYPES.items()]


# -- single records -------------------------------------------------------------------
def create(portal: Portal, type_: ObjectType, body: Any) -> dict[str, Any]:
    """``POST /crm/v3/objects/{type}``."""
    body = _keys(body, {"properties", "associations", "objectWriteTraceId"}, "the object input")
    with portal.store.lock:
        values = portal.clean(type_.name, body.get("properties") or {}, None, None)
        links = _create_associations(portal, type_, body.get("associations"))
        doc = portal.create(type_.name, values)
        for target, to_id, ids in links:
            portal.associate(type_.name, doc["id"], target, to_id, ids)
    return portal.wire(type_, doc, list(values))


def resolve(portal: Portal, type_: ObjectType, id_: str, id_property: str | None) -> dict[str, Any]:
    """The live record an id (or a unique property value) names; 404 otherwise."""
    if not id_property or id_property == "hs_object_id":
        return portal.live(type_.name, id_)
    prop = portal.properties(type_.name).get(id_property)
    if prop is None or not prop.unique:
        raise validation(
            f"{id_property} is not a unique property of {type_.name}", code="INVALID_ID_PROPERTY"
        )
    found = portal.find(type_.name, id_property, id_)
    if not found:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", "Object not found.", context={"id": [id_]})
    return found[0]


def update(portal: Portal, type_: ObjectType, id_: str, body: Any, id_property: str | None) -> dict[str, Any]:
    """``PATCH /crm/v3/objects/{type}/{id}``."""
    body = _keys(body, {"properties", "objectWriteTraceId"}, "the object input")
    with portal.store.lock:
        doc = resolve(portal, type_, id_, id_property)
        values = portal.clean(type_.name, body.get("properties") or {}, doc["properties"], doc["id"])
        doc = portal.update(type_.name, doc["id"], values)
    return portal.wire(type_, doc, list(values))


def page(
    portal: Portal, type_: ObjectType, limit: int, after: str | None, wanted: list[str], assoc: list[str]
) -> dict[str, Any]:
    """``GET /crm/v3/objects/{type}``: records in id order after the cursor."""
    if not 0 < limit <= LIST_LIMIT:
        raise validation(f"limit must be between 1 and {LIST_LIMIT}", code="INVALID_LIMIT")
    start = int(after) if after and after.isdigit() else 0
    rows = sorted((d for d in portal.rows(type_.name) if int(d["id"]) > start), key=lambda d: int(d["id"]))
    chunk = rows[:limit]
    results = []
    for doc in chunk:
        item = portal.wire(type_, doc, wanted)
        links = associations_of(portal, type_, doc["id"], assoc)
        if links:
            item["associations"] = links
        results.append(item)
    body: dict[str, Any] = {"results": results}
    if len(rows) > limit:
        nxt = chunk[-1]["id"]
        body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return body


# -- batches --------------------------------------------------------------------------
def batch_read(portal: Portal, type_: ObjectType, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v3/objects/{type}/batch/read``."""
    inputs = _inputs(body, {"inputs", "properties", "propertiesWithHistory", "idProperty"}, {"id"})
    wanted = body.get("properties") or []
    results, missing = [], []
    for item in inputs:
        try:
            doc = resolve(portal, type_, str(item.get("id", "")), body.get("idProperty"))
        except HubSpotError as exc:
            if exc.status != 404:
                raise
            missing.append(str(item.get("id", "")))
            continue
        results.append(portal.wire(type_, doc, wanted))
    errors = []
    if missing:
        errors.append(
            HubSpotError(
                404,
                "OBJECT_NOT_FOUND",
                f"Could not get some {type_.label} objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                context={"ids": missing},
            )
        )
    return batch_answer(portal, results, errors)


def batch_create(portal: Portal, type_: ObjectType, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v3/objects/{type}/batch/create`` (all or nothing)."""
    inputs = _inputs(body, {"inputs"}, {"properties", "associations", "objectWriteTraceId"})
    with portal.store.lock:
        planned = []
        for item in inputs:
            values = portal.clean(type_.name, item.get("properties") or {}, None, None)
            planned.append((values, _create_associations(portal, type_, item.get("associations"))))
        results = []
        for values, links in planned:
            doc = portal.create(type_.name, values)
            for target, to_id, ids in links:
                portal.associate(type_.name, doc["id"], target, to_id, ids)
            results.append(portal.wire(type_, doc, list(values)))
    return 201, {"status": "COMPLETE", "results": results, **_stamps(portal)}


def batch_update(portal: Portal, type_: ObjectType, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v3/objects/{type}/batch/update``: 207 for the inputs that fail."""
    inputs = _inputs(body, {"inputs"}, {"id", "idProperty", "properties", "objectWriteTraceId"})
    for item in inputs:
        portal.check_names(type_.name, item.get("properties") or {})
    results, errors = [], []
    with portal.store.lock:
        for item in inputs:
            try:
                doc = resolve(portal, type_, str(item.get("id", "")), item.get("idProperty"))
                values = portal.clean(type_.name, item.get("properties") or {}, doc["properties"], doc["id"])
                doc = portal.update(type_.name, doc["id"], values)
            except HubSpotError as exc:
                errors.append(exc)
                continue
            results.append(portal.wire(type_, doc, list(values)))
    return batch_answer(portal, results, errors)


def batch_upsert(portal: Portal, type_: ObjectType, body: Any) -> tuple[int, dict[str, Any]]:
    """``POST /crm/v3/objects/{type}/batch/upsert`` keyed by each input's unique ``idProperty``."""
    inputs = _inputs(body, {"inputs"}, {"id", "idProperty", "properties", "objectWriteTraceId"})
    known = portal.properties(type_.name)
    for item in inputs:
        portal.check_names(type_.name, item.get("properties") or {})
        name = item.get("idProperty")
        if not isinstance(name, str) or name not in known or not known[name].unique or name == "hs_object_id":
            raise validation(
                f"idProperty {name!r} is not a unique property of {type_.name}; upsert needs a property "
                "with hasUniqueValue",
                code="INVALID_ID_PROPERTY",
            )
    results, errors = [], []
    with portal.store.lock:
        for item in inputs:
            name, value = item["idProperty"], str(item.get("id") or "")
            props = dict(item.get("properties") or {})
            try:
                if not value:
                    raise validation(f"an upsert input needs the {name} value in 'id'", code="REQUIRED_FIELD")
                found = portal.find(type_.name, name, value)
                if found:
                    values = portal.clean(type_.name, props, found[0]["properties"], found[0]["id"])
                    doc, new = portal.update(type_.name, found[0]["id"], values), False
                else:
                    values = portal.clean(type_.name, {**props, name: value}, None, None)
                    doc, new = portal.create(type_.name, values), True
            except HubSpotError as exc:
                exc.context = {**(exc.context or {}), "id": [value]}
                errors.append(exc)
                continue
            results.append({**portal.wire(type_, doc, list(values)), "new": new})
    return batch_answer(portal, results, errors)


def batch_archive(portal: Portal, type_: ObjectType, body: Any) -> None:
    """``POST /crm/v3/objects/{type}/batch/archive``: unknown ids are ignored, as HubSpot does."""
    for item in _inputs(body, {"inputs"}, {"id"}):
        try:
            portal.archive(type_.name, str(item.get("id", "")))
        except HubSpotError:
            continue
