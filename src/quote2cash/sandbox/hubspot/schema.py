"""What a HubSpot portal knows before anyone writes: object types, standard
properties, the default deal pipeline and the HubSpot-defined association types.

Property values travel as strings (VENDORS.md §1.3); :func:`normalise` turns
what a client sends into the string HubSpot stores, or the refusal HubSpot
answers (``INVALID_OPTION``, ``READ_ONLY_VALUE``, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox.hubspot.errors import HubSpotError, not_found


@dataclass(frozen=True)
class ObjectType:
    """A CRM object type: its path name, its id (``0-3``), singular and upper-case labels."""

    name: str
    type_id: str
    singular: str
    label: str
    group: str
    defaults: tuple[str, ...]


_ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType("companies", "0-2", "company", "COMPANY", "companyinformation", ("domain", "name")),
        ObjectType(
            "deals",
            "0-3",
            "deal",
            "DEAL",
            "dealinformation",
            ("amount", "closedate", "dealname", "dealstage", "pipeline"),
        ),
        ObjectType(
            "line_items",
            "0-8",
            "line_item",
            "LINE_ITEM",
            "lineiteminformation",
            ("name", "price", "quantity"),
        ),
        ObjectType("products", "0-7", "product", "PRODUCT", "productinformation", ("name", "price")),
    )
}
_ALIASES = {alias: t for t in TYPES.values() for alias in (t.name, t.type_id, t.singular)}


def object_type(name: str) -> ObjectType:
    """The object type a path segment names (``deals``, ``deal`` or ``0-3``), else HubSpot's 400."""
    found = _ALIASES.get(name.lower())
    if found is None:
        raise HubSpotError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return found


@dataclass(frozen=True)
class PropertyDef:
    """A property definition (standard or custom)."""

    name: str
    type: str
    field_type: str
    group: str
    label: str = ""
    options: tuple[str, ...] = ()
    read_only: bool = False
    unique: bool = False
    hubspot_defined: bool = True
    description: str = ""
    created_at: int = 1_546_300_800_000  # when the portal's standard properties were defined
    extra: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """The property as ``/crm/v3/properties`` answers it."""
        stamp = iso(self.created_at)
        return {
            "name": self.name,
            "label": self.label or self.name.replace("_", " ").title(),
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group,
            "options": [
                {"label": v, "value": v, "displayOrder": i, "hidden": False}
                for i, v in enumerate(self.options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.unique,
            "hidden": False,
            "hubspotDefined": self.hubspot_defined,
            "formField": False,
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        }


def _p(name: str, type_: str = "string", field_type: str = "text", **kw: Any) -> PropertyDef:
    return PropertyDef(name, type_, field_type, kw.pop("group", ""), **kw)


_COMMON = (
    _p("hs_object_id", "number", "number", read_only=True, unique=True, label="Record ID"),
    _p("createdate", "datetime", "date", read_only=True, label="Create Date"),
    _p("hs_lastmodifieddate", "datetime", "date", read_only=True, label="Last Modified Date"),
    _p("hubspot_owner_id", label="Owner"),
)
_STANDARD: dict[str, tuple[PropertyDef, ...]] = {
    "companies": (
        _p("name"),
        _p("domain"),
        _p("website"),
        _p("country"),
        _p("city"),
        _p("industry"),
        _p("phone"),
        _p("description", field_type="textarea"),
        _p("annualrevenue", "number", "number"),
        _p("numberofemployees", "number", "number"),
    ),
    "deals": (
        _p("dealname"),
        _p("dealstage", "enumeration", "radio"),
        _p("pipeline", "enumeration", "select"),
        _p("amount", "number", "number"),
        _p("closedate", "datetime", "date"),
        _p("deal_currency_code", "enumeration", "select", options=("USD", "GBP", "EUR", "SGD", "CAD", "CHF")),
        _p("dealtype", "enumeration", "radio", options=("newbusiness", "existingbusiness")),
        _p("description", field_type="textarea"),
        _p("hs_is_closed_won", "bool", "booleancheckbox", read_only=True),
        _p("hs_is_closed", "bool", "booleancheckbox", read_only=True),
    ),
    "line_items": (
        _p("name"),
        _p("quantity", "number", "number"),
        _p("price", "number", "number"),
        _p("amount", "number", "number", read_only=True),
        _p("hs_product_id"),
        _p("hs_sku"),
        _p("description", field_type="textarea"),
    ),
    "products": (
        _p("name"),
        _p("price", "number", "number"),
        _p("hs_sku"),
        _p("description", field_type="textarea"),
    ),
}


def standard_properties(type_name: str) -> dict[str, PropertyDef]:
    """The HubSpot-defined properties of an object type."""
    group = TYPES[type_name].group
    return {p.name: PropertyDef(**{**p.__dict__, "group": group}) for p in (*_COMMON, *_STANDARD[type_name])}


PROPERTY_TYPES = {
    "string": {"text", "textarea", "select", "radio", "file"},
    "number": {"number", "select", "radio", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox", "radio", "select"},
}

#: The stages of the default deal pipeline, with HubSpot's metadata.
DEFAULT_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    ("contractsent", "Contract Sent", "0.9", False),
    ("closedwon", "Closed Won", "1.0", True),
    ("closedlost", "Closed Lost", "0.0", True),
)

#: (from type, to type) -> HubSpot-defined association types (type id, label), the default first.
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[tuple[int, str | None], ...]] = {
    ("deals", "companies"): ((341, None), (5, "Primary")),
    ("companies", "deals"): ((342, None), (6, "Primary")),
    ("deals", "line_items"): ((19, None),),
    ("line_items", "deals"): ((20, None),),
}
INVERSE = {341: 342, 342: 341, 5: 6, 6: 5, 19: 20, 20: 19}


def association_types(from_type: str, to_type: str) -> tuple[tuple[int, str | None], ...]:
    """The association types between two object types; HubSpot's 400 when there are none."""
    types = ASSOCIATION_TYPES.get((from_type, to_type))
    if not types:
        raise HubSpotError(
            400,
            "VALIDATION_ERROR",
            f"{TYPES[from_type].label} to {TYPES[to_type].label} is not a valid association",
        )
    return types


# -- time -----------------------------------------------------------------------------
def iso(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes them: ``2025-01-01T00:00:00.000Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(value: Any) -> int | None:
    """A datetime given as epoch milliseconds or ISO 8601, as epoch milliseconds (None if neither)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


# -- values ---------------------------------------------------------------------------
def _problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {"name": name, "error": error, "message": message}


def normalise(prop: PropertyDef, value: Any, options: tuple[str, ...] | None = None) -> str | dict[str, Any]:
    """The stored string of a value, or a problem ``{"name", "error", "message"}``.

    ``options`` replaces the property's own options (the stages of a pipeline).
    An empty value clears the property.
    """
    name = prop.name
    if prop.read_only:
        return _problem(
            name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
        )
    if value is None or value == "":
        return ""
    if isinstance(value, dict | list):
        return _problem(name, "INVALID_PROPERTY_VALUE", f"{value!r} is not a valid value for {name}")
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    if prop.type == "number":
        try:
            Decimal(text)
        except InvalidOperation:
            return _problem(name, "INVALID_DECIMAL", f"{text} is not a valid decimal")
        return text
    if prop.type == "bool":
        if text.lower() not in ("true", "false"):
            return _problem(name, "INVALID_BOOLEAN", f"{text} is not a valid boolean; use true or false")
        return text.lower()
    if prop.type == "enumeration":
        allowed = options if options is not None else prop.options
        chosen = text.split(";") if prop.field_type == "checkbox" else [text]
        bad = [c for c in chosen if c not in allowed]
        if bad:
            return _problem(
                name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{', '.join(allowed)}]"
            )
        return text
    if prop.type == "date":
        ms = to_ms(text) if text.isdigit() else None
        if ms is not None:
            if ms % 86_400_000:
                return _problem(name, "INVALID_DATE", f"{text} is not at midnight UTC, as a date must be")
            return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
        try:
            return date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            return _problem(name, "INVALID_DATE", f"{text} is not a valid date")
    if prop.type == "datetime":
        ms = to_ms(text)
        if ms is None:
            return _problem(name, "INVALID_DATETIME", f"{text} is not a valid datetime")
        return iso(ms)
    return text


def comparable(prop: PropertyDef | None, value: Any) -> Any:
    """A stored or filter value in the form it is compared and sorted by."""
    if value is None or value == "":
        return None
    kind = prop.type if prop is not None else "string"
    text = str(value)
    try:
        if kind == "number":
            return Decimal(text)
        if kind == "datetime":
            return to_ms(text)
        if kind == "date":
            ms = to_ms(text) if text.isdigit() else None
            return ms if ms is not None else to_ms(text[:10])
    except (InvalidOperation, ValueError):
        return None
    if kind == "bool":
        return text.lower() == "true"
    return text.lower()


def missing_record(type_: ObjectType, id_: str) -> HubSpotError:
    """HubSpot's 404 for an id that names no live record."""
    return not_found(id_, "Object not found.  objectId are usually numeric.")
