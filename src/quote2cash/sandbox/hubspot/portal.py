"""The state of one HubSpot portal: records, property definitions, pipelines and
associations, kept in the sandbox's :class:`~quote2cash.sandbox._base.DocStore`.

Records are stored as ``{"id", "properties", "createdAt", "updatedAt",
"archived"}`` with property values as HubSpot holds them (strings); the
portal maintains ``hs_object_id``, ``createdate`` and ``hs_lastmodifieddate``
(epoch milliseconds from the sandbox clock), so a client can never set them.
Every change is reported to ``on_change`` (the webhook feed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.hubspot.errors import HubSpotError, invalid_properties, validation
from quote2cash.sandbox.hubspot.schema import (
    DEFAULT_STAGES,
    INVERSE,
    PROPERTY_TYPES,
    TYPES,
    ObjectType,
    PropertyDef,
    association_types,
    iso,
    missing_record,
    normalise,
    standard_properties,
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_PROPERTY_KIND = "hs_property"
_PIPELINE_KIND = "hs_pipeline"
_ASSOC_KIND = "hs_assoc"
#: Called with (object type, record id, {property: (old, new)}, created).
ChangeHook = Callable[[str, str, dict[str, tuple[str | None, str]], bool], None]


def _kind(type_name: str) -> str:
    return f"hs_{type_name}"


class Portal:
    """Records and metadata of one portal, with HubSpot's validation."""

    def __init__(self, store: DocStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self.on_change: ChangeHook | None = None
        self._standard = {name: standard_properties(name) for name in TYPES}
        if self.store.get(_PIPELINE_KIND, "deals:default") is None:
            self.add_pipeline("deals", "default", "Sales Pipeline", DEFAULT_STAGES)

    # -- properties ------------------------------------------------------------------
    def properties(self, type_name: str) -> dict[str, PropertyDef]:
        """Every property of a type: HubSpot-defined, then custom ones in creation order."""
        custom = {
            doc["name"]: PropertyDef(
                doc["name"],
                doc["type"],
                doc["fieldType"],
                doc["groupName"],
                label=doc["label"],
                options=tuple(doc.get("options", ())),
                unique=bool(doc.get("hasUniqueValue")),
                hubspot_defined=False,
                description=doc.get("description", ""),
                created_at=doc["createdAt"],
            )
            for id_, doc in self.store.items(_PROPERTY_KIND)
            if id_.startswith(f"{type_name}:")
        }
        return {**self._standard[type_name], **custom}

    def create_property(self, type_name: str, body: Any) -> PropertyDef:
        """Define a custom property (``POST /crm/v3/properties/{objectType}``)."""
        if not isinstance(body, dict):
            raise validation("Invalid input JSON: the body must be a property definition object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise validation(f"Missing required fields: {', '.join(missing)}", code="REQUIRED_FIELD")
        name, type_, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not _NAME.fullmatch(name):
            raise validation(
                f"Property name '{name}' is invalid: use lower-case letters, digits and underscores",
                code="INVALID_PROPERTY_NAME",
            )
        if field_type not in PROPERTY_TYPES.get(type_, set()):
            raise validation(
                f"fieldType {field_type} is not valid for type {type_}", code="INVALID_FIELD_TYPE"
            )
        group = str(body["groupName"])
        if group != TYPES[type_name].group:
            raise validation(f"Property group {group} does not exist", code="INVALID_GROUP")
        options = [str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict)]
        if type_ == "enumeration" and field_type != "booleancheckbox" and not options:
            raise validation("Enumeration properties need options", code="REQUIRED_FIELD")
        with self.store.lock:
            if name in self.properties(type_name):
                raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
            doc = {
                "name": name,
                "label": str(body["label"]),
                "type": type_,
                "fieldType": field_type,
                "groupName": group,
                "description": str(body.get("description") or ""),
                "options": options or (["true", "false"] if type_ == "bool" else []),
                "hasUniqueValue": bool(body.get("hasUniqueValue")),
                "createdAt": self.clock(),
            }
            self.store.put(_PROPERTY_KIND, f"{type_name}:{name}", doc)
        return self.properties(type_name)[name]

    # -- pipelines -------------------------------------------------------------------
    def add_pipeline(
        self, type_name: str, pipeline_id: str, label: str, stages: Iterable[tuple[str, str, str, bool]]
    ) -> None:
        """Define a pipeline: stages as (id, label, probability, closed)."""
        now = self.clock()
        self.store.put(
            _PIPELINE_KIND,
            f"{type_name}:{pipeline_id}",
            {
                "id": pipeline_id,
                "label": label,
                "displayOrder": self.store.count(_PIPELINE_KIND),
                "archived": False,
                "createdAt": iso(now),
                "updatedAt": iso(now),
                "stages": [
                    {
                        "id": sid,
                        "label": slabel,
                        "displayOrder": i,
                        "archived": False,
                        "createdAt": iso(now),
                        "updatedAt": iso(now),
                        "metadata": {"probability": prob, "isClosed": str(closed).lower()},
                    }
                    for i, (sid, slabel, prob, closed) in enumerate(stages)
                ],
            },
        )

    def pipelines(self, type_name: str) -> list[dict[str, Any]]:
        """The pipelines of an object type, as ``/crm/v3/pipelines`` answers them."""
        return [doc for id_, doc in self.store.items(_PIPELINE_KIND) if id_.startswith(f"{type_name}:")]

    def _stage(self, pipeline: str, stage: str) -> dict[str, Any] | None:
        doc = self.store.get(_PIPELINE_KIND, f"deals:{pipeline}")
        return next((s for s in doc["stages"] if s["id"] == stage), None) if doc else None

    # -- records ---------------------------------------------------------------------
    def live(self, type_name: str, id_: str) -> dict[str, Any]:
        """A live record, or HubSpot's 404."""
        doc = self.store.get(_kind(type_name), id_)
        if doc is None or doc.get("archived"):
            raise missing_record(TYPES[type_name], id_)
        return doc

    def rows(self, type_name: str) -> list[dict[str, Any]]:
        """Every live record of a type, in creation order."""
        return [d for d in self.store.all(_kind(type_name)) if not d.get("archived")]

    def find(self, type_name: str, prop: str, value: str) -> list[dict[str, Any]]:
        """Live records whose ``prop`` holds ``value`` (an ``idProperty`` look-up)."""
        if prop == "hs_object_id":
            doc = self.store.get(_kind(type_name), value)
            return [doc] if doc is not None and not doc.get("archived") else []
        return [d for d in self.rows(type_name) if d["properties"].get(prop) == value]

    def check_names(self, type_name: str, props: Any) -> None:
        """Refuse a write naming a property the portal does not define (``PROPERTY_DOESNT_EXIST``)."""
        if not isinstance(props, dict):
            raise validation("Invalid input JSON: 'properties' must be an object of property values")
        known = self.properties(type_name)
        unknown = [k for k in props if k not in known]
        if unknown:
            raise invalid_properties(
                [
                    {"name": k, "error": "PROPERTY_DOESNT_EXIST", "message": f'Property "{k}" does not exist'}
                    for k in unknown
                ]
            )

    def clean(
        self, type_name: str, props: dict[str, Any], current: dict[str, Any] | None, own_id: str | None
    ) -> dict[str, str]:
        """Validated, normalised values of a write; HubSpot's 400 (or 409 on a unique clash) otherwise."""
        self.check_names(type_name, props)
        known = self.properties(type_name)
        out: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        pipeline = str(props.get("pipeline") or (current or {}).get("pipeline") or "default")
        for name, value in props.items():
            options = None
            if type_name == "deals" and name == "pipeline":
                options = tuple(p["id"] for p in self.pipelines("deals"))
            elif type_name == "deals" and name == "dealstage":
                doc = self.store.get(_PIPELINE_KIND, f"deals:{pipeline}")
                options = tuple(s["id"] for s in doc["stages"]) if doc else ()
            result = normalise(known[name], value, options)
            if isinstance(result, dict):
                problems.append(result)
            else:
                out[name] = result
        if problems:
            raise invalid_properties(problems)
        for name, value in out.items():
            if known[name].unique and value:
                clash = [d for d in self.find(type_name, name, value) if d["id"] != own_id]
                if clash:
                    raise HubSpotError(
                        409,
                        "CONFLICT",
                        f"A {TYPES[type_name].singular} with the {name} value '{value}' already exists "
                        f"(id {clash[0]['id']}); {name} must be unique",
                        context={"id": [clash[0]["id"]]},
                    )
        return out

    def _derive(self, type_name: str, props: dict[str, str]) -> None:
        if type_name == "deals":
            props.setdefault("pipeline", "default")
            stage = self._stage(props["pipeline"], props.get("dealstage", ""))
            meta = stage["metadata"] if stage else {"isClosed": "false", "probability": "0"}
            closed = meta["isClosed"] == "true"
            props["hs_is_closed"] = str(closed).lower()
            props["hs_is_closed_won"] = str(closed and meta["probability"] == "1.0").lower()
        elif type_name == "line_items":
            try:
                amount = Decimal(props.get("quantity") or "0") * Decimal(props.get("price") or "0")
            except InvalidOperation:
                amount = Decimal(0)
            props["amount"] = format(amount.normalize(), "f")

    def create(self, type_name: str, values: dict[str, str]) -> dict[str, Any]:
        """Insert a record from cleaned values; returns the stored document."""
        with self.store.lock:
            now = self.clock()
            id_ = str(self.store.next_id(_kind(type_name), start=10_000 * (list(TYPES).index(type_name) + 1)))
            props = {k: v for k, v in values.items() if v != ""}
            props.update(hs_object_id=id_, createdate=iso(now), hs_lastmodifieddate=iso(now))
            self._derive(type_name, props)
            doc = {"id": id_, "properties": props, "createdAt": now, "updatedAt": now, "archived": False}
            self.store.put(_kind(type_name), id_, doc)
        self._changed(type_name, id_, {}, props, created=True)
        return doc

    def update(self, type_name: str, id_: str, values: dict[str, str]) -> dict[str, Any]:
        """Apply cleaned values to a live record; ``hs_lastmodifieddate`` moves when a value changes."""
        with self.store.lock:
            doc = self.live(type_name, id_)
            before = dict(doc["properties"])
            props = dict(before)
            for name, value in values.items():
                if value == "":
                    props.pop(name, None)
                else:
                    props[name] = value
            self._derive(type_name, props)
            if props != before:
                now = self.clock()
                props["hs_lastmodifieddate"] = iso(now)
                doc = {**doc, "properties": props, "updatedAt": now}
                self.store.put(_kind(type_name), id_, doc)
        self._changed(type_name, id_, before, doc["properties"], created=False)
        return doc

    def archive(self, type_name: str, id_: str) -> None:
        """Archive (soft-delete) a live record."""
        with self.store.lock:
            doc = self.live(type_name, id_)
            now = self.clock()
            self.store.put(_kind(type_name), id_, {**doc, "archived": True, "archivedAt": now})

    def _changed(
        self, type_name: str, id_: str, before: dict[str, Any], after: dict[str, Any], *, created: bool
    ) -> None:
        if self.on_change is None:
            return
        diff = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
        if diff or created:
            self.on_change(type_name, id_, diff, created)

    # -- associations ----------------------------------------------------------------
    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int] | None = None
    ) -> list[int]:
        """Associate two live records (both directions); ``type_ids`` default to the unlabeled type."""
        allowed = association_types(from_type, to_type)
        ids = list(type_ids) if type_ids is not None else [allowed[0][0]]
        bad = [t for t in ids if t not in {a for a, _ in allowed}]
        if bad:
            raise validation(
                f"associationTypeId {bad[0]} is not valid from {TYPES[from_type].label} "
                f"to {TYPES[to_type].label}",
                code="INVALID_ASSOCIATION_TYPE",
            )
        with self.store.lock:
            self.live(from_type, from_id)
            self.live(to_type, to_id)
            self._link(from_type, from_id, to_type, to_id, ids)
            self._link(to_type, to_id, from_type, from_id, [INVERSE[t] for t in ids])
        return ids

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str, ids: list[int]) -> None:
        key = f"{from_type}:{from_id}"
        doc = dict(self.store.get(_ASSOC_KIND, key) or {})
        targets = dict(doc.get(to_type) or {})
        targets[to_id] = sorted(set(targets.get(to_id, [])) | set(ids))
        doc[to_type] = targets
        self.store.put(_ASSOC_KIND, key, doc)

    def associations(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, list[int]]]:
        """(to id, type ids) of a record's associations to a type, live targets only."""
        doc = self.store.get(_ASSOC_KIND, f"{from_type}:{from_id}") or {}
        out = []
        for to_id, ids in (doc.get(to_type) or {}).items():
            target = self.store.get(_kind(to_type), to_id)
            if target is not None and not target.get("archived"):
                out.append((to_id, list(ids)))
        return sorted(out, key=lambda pair: int(pair[0]))

    # -- the wire --------------------------------------------------------------------
    def wire(self, type_: ObjectType, doc: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        """A record as the API answers it, with the requested properties (or the type's defaults)."""
        known = self.properties(type_.name)
        names = list(wanted) if wanted else list(type_.defaults)
        names = [
            n
            for n in dict.fromkeys([*names, "createdate", "hs_lastmodifieddate", "hs_object_id"])
            if n in known
        ]
        props = doc["properties"]
        body: dict[str, Any] = {
            "id": doc["id"],
            "properties": {n: props.get(n) for n in names},
            "createdAt": iso(doc["createdAt"]),
            "updatedAt": iso(doc["updatedAt"]),
            "archived": bool(doc.get("archived")),
        }
        if doc.get("archived"):
            body["archivedAt"] = iso(int(doc.get("archivedAt") or doc["updatedAt"]))
        return body
