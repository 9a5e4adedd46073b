"""Running SOQL: check a parsed query against the schema, then filter, sort and project.

A field is ``Name``, a custom ``Foo__c`` or one parent level through a standard
lookup (``Account.Name`` via ``AccountId``). Comparisons follow SOQL: text is
compared case-insensitively, a null is "not equal" to every value, and a
literal must suit the field's type (a quoted date is ``MALFORMED_QUERY``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from quote2cash.sandbox.salesforce.schema import (
    NUMBER_TYPES,
    STRING_TYPES,
    FieldSpec,
    ObjectSpec,
    format_ms,
    normalize_id,
    object_spec,
    parse_datetime_ms,
)
from quote2cash.sandbox.salesforce.soql import (
    BoolOp,
    Condition,
    Literal,
    OrderItem,
    Query,
    SoqlError,
    error_prefix,
    parse,
)


class OrgView(Protocol):
    """What a compiled query needs to read from the org."""

    def fetch(self, sobject: str, id_: str) -> dict[str, Any] | None:
        """A record by id (deleted ones included), or None."""


@dataclass(frozen=True)
class _Ref:
    """A resolved field: ``via`` is the lookup on the queried object for a parent field."""

    spec: FieldSpec
    via: FieldSpec | None = None
    parent: ObjectSpec | None = None


Getter = Callable[[dict[str, Any]], Any]


class CompiledQuery:
    """A query checked against the schema, ready to filter, sort and project records."""

    def __init__(self, query: Query, org: OrgView) -> None:
        spec = object_spec(query.sobject)
        if spec is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"{_where(query, query.sobject_pos)}sObject type '{query.sobject}' is not supported. "
                "If you are attempting to use a custom object, be sure to append the '__c' after the "
                "entity name. Please reference your WSDL or the describe call for the appropriate names.",
            )
        self.query = query
        self.spec = spec
        self.org = org
        self.is_count = query.fields is None
        self.select: list[_Ref] = []
        for name, pos in query.fields or ():
            ref = self._resolve(name, pos)
            if ref not in self.select:
                self.select.append(ref)
        self.predicate = None if query.where is None else self._compile(query.where)
        self.order = [(self._resolve(o.field, o.pos), o) for o in query.order]
        self.ids = _id_lookup(query.where)

    # -- resolution ----------------------------------------------------------------
    def _resolve(self, name: str, pos: int) -> _Ref:
        head, _, tail = name.partition(".")
        if not tail:
            field = self.spec.field(name)
            if field is None:
                raise self._no_column(name, pos, self.spec.name)
            return _Ref(field)
        via = self.spec.relationships.get(head.lower())
        parent = object_spec(via.refers_to) if via is not None and via.refers_to else None
        if via is None or parent is None or "." in tail:
            raise SoqlError(
                "INVALID_FIELD",
                f"{_where(self.query, pos)}Didn't understand relationship '{head}' in field path. If you "
                "are attempting to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
            )
        field = parent.field(tail)
        if field is None:
            raise self._no_column(tail, pos, parent.name)
        return _Ref(field, via, parent)

    def _no_column(self, name: str, pos: int, sobject: str) -> SoqlError:
        return SoqlError(
            "INVALID_FIELD",
            f"{_where(self.query, pos)}No such column '{name}' on entity '{sobject}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
            "Please reference your WSDL or the describe call for the appropriate names.",
        )

    def _getter(self, ref: _Ref) -> Getter:
        name = ref.spec.name
        if ref.via is None:
            return lambda record: record.get(name)
        via, parent_type, fetch = ref.via.name, (ref.parent.name if ref.parent else ""), self.org.fetch

        def parent_value(record: dict[str, Any]) -> Any:
            parent_id = record.get(via)
            parent = fetch(parent_type, parent_id) if parent_id else None
            return None if parent is None else parent.get(name)

        return parent_value

    # -- WHERE ---------------------------------------------------------------------
    def _compile(self, node: Condition | BoolOp) -> Callable[[dict[str, Any]], bool]:
        if isinstance(node, BoolOp):
            parts = [self._compile(p) for p in node.parts]
            if node.op == "NOT":
                return lambda r: not parts[0](r)
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        ref = self._resolve(node.field, node.pos)
        getter = self._getter(ref)
        for value in node.values:
            self._check_literal(ref.spec, value, node.op)
        conv = _converter(ref.spec.type)
        literals = [None if v.kind == "null" else conv(v.value, literal=True) for v in node.values]
        op = node.op
        if op in ("IN", "NOT_IN"):
            wanted = {lit for lit in literals if lit is not None}
            with_null = any(v.kind == "null" for v in node.values)

            def member(record: dict[str, Any]) -> bool:
                raw = getter(record)
                if raw is None:
                    return with_null
                return conv(raw, literal=False) in wanted

            return member if op == "IN" else (lambda r: not member(r))
        if op == "LIKE":
            pattern = _like(str(node.values[0].value))
            return lambda r: (v := getter(r)) is not None and pattern.fullmatch(str(v)) is not None
        literal = literals[0]
        if literal is None:
            if op == "=":
                return lambda r: getter(r) is None
            if op == "!=":
                return lambda r: getter(r) is not None
            return lambda r: False
        compare = _COMPARE[op]

        def test(record: dict[str, Any]) -> bool:
            raw = getter(record)
            if raw is None:
                # SOQL: a null never equals a value, so it is "not equal" to it.
                return op == "!="
            value = conv(raw, literal=False)
            return compare(value, literal) if value is not None else op == "!="

        return test

    def _check_literal(self, field: FieldSpec, value: Literal, op: str) -> None:
        expected = _EXPECTED.get(field.type)
        if op == "LIKE" and field.type not in STRING_TYPES:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"{_where(self.query, value.pos)}invalid operator on field: {field.name}",
            )
        if expected is None or value.kind in (expected, "null"):
            return
        quoted = (
            "and should be enclosed in quotes"
            if expected == "string"
            else "and should not be enclosed in quotes"
        )
        raise SoqlError(
            "MALFORMED_QUERY",
            f"{_where(self.query, value.pos)}value of filter criterion for field '{field.name}' "
            f"must be of type {_TYPE_LABEL.get(field.type, field.type)} {quoted}",
        )

    # -- running -------------------------------------------------------------------
    def run(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The matching records, sorted, offset and limited."""
        rows = [r for r in records if self.predicate(r)] if self.predicate else list(records)
        for ref, item in reversed(self.order):
            rows.sort(key=_sort_key(self._getter(ref), ref.spec.type, item), reverse=item.desc)
        end = None if self.query.limit is None else self.query.offset + self.query.limit
        return rows[self.query.offset : end]

    def project(self, record: dict[str, Any], version: str) -> dict[str, Any]:
        """One record as the query answers it: ``attributes`` and the selected fields."""
        out: dict[str, Any] = {"attributes": attributes(self.spec.name, record["Id"], version)}
        for ref in self.select:
            if ref.via is None:
                out[ref.spec.name] = record.get(ref.spec.name)
                continue
            key = ref.via.relationship or ref.via.name
            parent_type = ref.parent.name if ref.parent else ""
            parent_id = record.get(ref.via.name)
            parent = self.org.fetch(parent_type, parent_id) if parent_id else None
            if parent is None:
                out[key] = None
                continue
            nested = out.get(key) or {"attributes": attributes(parent_type, parent["Id"], version)}
            nested[ref.spec.name] = parent.get(ref.spec.name)
            out[key] = nested
        return out


def attributes(sobject: str, id_: str, version: str) -> dict[str, str]:
    """The ``attributes`` member Salesforce puts on every record it returns."""
    return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{id_}"}


def compile_query(text: str, org: OrgView) -> CompiledQuery:
    """Parse and check a SOQL query against the org's schema."""
    return CompiledQuery(parse(text), org)


def _where(query: Query, pos: int) -> str:
    return error_prefix(query.text, pos)


def _id_lookup(where: Condition | BoolOp | None) -> list[str] | None:
    """The ids a ``WHERE Id = ... / Id IN (...)`` query can fetch directly (no scan)."""
    if not isinstance(where, Condition) or where.field.lower() != "id" or where.op not in ("=", "IN"):
        return None
    if any(v.kind != "string" for v in where.values):
        return None
    return [normalize_id(v.value) or v.value for v in where.values]


_EXPECTED = {
    **{t: "string" for t in STRING_TYPES},
    **{t: "number" for t in NUMBER_TYPES},
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
}
_TYPE_LABEL = {"datetime": "dateTime", "double": "double", "currency": "currency", "int": "int"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


class _Converter(Protocol):
    def __call__(self, value: Any, *, literal: bool) -> Any: ...


def _converter(field_type: str) -> _Converter:
    """Maps stored values and literals to one comparable form (None: not comparable)."""
    if field_type in ("id", "reference"):
        return lambda v, literal: (normalize_id(v) or v) if isinstance(v, str) else None
    if field_type == "datetime":
        # Stored dateTimes share one fixed-width UTC format, so they compare as strings.
        return lambda v, literal: format_ms(v) if literal else v
    kind = _EXPECTED.get(field_type, "string")
    if kind == "string":
        return lambda v, literal: str(v).casefold()
    if kind == "number":
        return lambda v, literal: _decimal(v)
    if kind == "bool":
        return lambda v, literal: v if isinstance(v, bool) else None
    if kind == "date":
        return lambda v, literal: v[:10] if isinstance(v, str) else None
    if kind == "datetime":
        return lambda v, literal: v if literal else (parse_datetime_ms(v) if isinstance(v, str) else None)
    return lambda v, literal: v


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _sort_key(getter: Getter, field_type: str, item: OrderItem) -> Callable[[dict[str, Any]], Any]:
    # Nulls get a rank below or above every value; after ``reverse`` for DESC the
    # ranks flip, so the rank is chosen to land nulls where NULLS FIRST/LAST says.
    null_rank = 0 if item.nulls_first != item.desc else 2

    def key(record: dict[str, Any]) -> tuple[int, int, Any]:
        value = getter(record)
        if value is None:
            return (null_rank, 0, 0)
        if isinstance(value, bool):
            return (1, 0, int(value))
        if isinstance(value, int | float):
            return (1, 0, value)
        if field_type in NUMBER_TYPES:
            return (1, 0, _decimal(value) or 0)
        return (1, 1, str(value).casefold())

    return key
