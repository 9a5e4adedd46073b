"""Field values: JSON type checks on input, and the org's derived money and dates."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox.salesforce.errors import SalesforceError
from quote2cash.sandbox.salesforce.schema import NUMBER_TYPES, STRING_TYPES, FieldSpec, is_date

CENT = Decimal("0.01")


def bad_picklist(label: str, field: str, value: Any) -> SalesforceError:
    """The error for a value outside a restricted picklist."""
    return SalesforceError(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{label}: bad value for restricted picklist field: {value}",
        fields=[field],
    )


def typed(field: FieldSpec, value: Any) -> Any:
    """A body value checked against the field's type (JSON_PARSER_ERROR otherwise)."""
    if value is None:
        return None
    kind = field.type
    if kind in STRING_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # Salesforce coerces JSON numbers into text fields
        if not isinstance(value, str):
            raise _parse_error(field, "string", value)
        if field.length is not None and len(value) > field.length:
            raise SalesforceError(
                "STRING_TOO_LONG",
                f"{field.name}: data value too large: {value[:40]}... (max length={field.length})",
                fields=[field.name],
            )
        return value
    if kind in NUMBER_TYPES:
        number = value
        if isinstance(value, str | Decimal):  # Decimal: seeding from Python with exact money
            try:
                parsed = Decimal(value)
            except InvalidOperation:
                raise _parse_error(field, kind, value) from None
            number = int(parsed) if parsed == parsed.to_integral_value() else float(parsed)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _parse_error(field, kind, value)
        if kind == "int" and number != int(number):
            raise _parse_error(field, "int", value)
        return int(number) if kind == "int" else number
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _parse_error(field, "boolean", value)
        return value
    if kind == "date":
        if not isinstance(value, str) or not is_date(value):
            raise SalesforceError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of date from VALUE_STRING value {value} or value might be "
                "out of range. Try another value or use the format YYYY-MM-DD.",
            )
        return value
    return value


def _parse_error(field: FieldSpec, expected: str, value: Any) -> SalesforceError:
    return SalesforceError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {expected} from value {value!r} for field {field.name}",
    )


def decimal_of(doc: dict[str, Any] | None, field: str) -> Decimal:
    """A numeric field as an exact Decimal (0 when empty)."""
    value = (doc or {}).get(field)
    return Decimal(0) if value is None else Decimal(str(value))


def price_line(doc: dict[str, Any], fields: dict[str, Any], *, insert: bool) -> None:
    """Keep Quantity × UnitPrice = TotalPrice, whichever of the prices was written."""
    quantity = decimal_of(doc, "Quantity")
    if "TotalPrice" in fields and doc.get("TotalPrice") is not None and not (insert and doc.get("UnitPrice")):
        total = decimal_of(doc, "TotalPrice")
        unit = (total / quantity) if quantity else Decimal(0)
        doc["UnitPrice"] = float(unit.quantize(CENT, ROUND_HALF_UP))
        doc["TotalPrice"] = float(total.quantize(CENT, ROUND_HALF_UP))
    elif doc.get("UnitPrice") is not None:
        total = quantity * decimal_of(doc, "UnitPrice")
        doc["TotalPrice"] = float(total.quantize(CENT, ROUND_HALF_UP))


def contract_end(start: Any, term: Any) -> str | None:
    """StartDate + ContractTerm months − 1 day (what the org computes as EndDate)."""
    if not isinstance(start, str) or not isinstance(term, int) or not is_date(start):
        return None
    first = date.fromisoformat(start)
    months = first.month - 1 + term
    year, month = first.year + months // 12, months % 12 + 1
    day = min(first.day, _days_in(year, month))
    end = date(year, month, day).toordinal() - 1
    return date.fromordinal(end).isoformat()


def _days_in(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - date(year, month, 1)).days
