"""OData v4 query options as Business Central evaluates them: ``$filter``, ``$select``, ``$orderby``.

``$filter`` supports the comparison operators ``eq ne gt ge lt le``, ``and``,
``or``, ``not``, parentheses and the functions ``contains``, ``startswith``
and ``endswith``. Literals are ``'text'`` (``''`` escapes a quote), numbers,
``true``/``false``/``null``, dates, date-times and unquoted GUIDs. A property
the entity does not have is ``BadRequest_PropertyNotFound``; anything else
unreadable is ``BadRequest`` naming the position, as the service answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox.business_central.errors import BcError, bad_request, property_not_found
from quote2cash.sandbox.business_central.schema import Field

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<paren>[(),])|"
    r"(?P<word>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[A-Za-z_][A-Za-z0-9_/]*|-?\d[\d.:TZ+\-]*))"
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"contains", "startswith", "endswith"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise bad_request(f"Syntax error at position {pos + 1} in '{text}'.")
        kind = match.lastgroup or "word"
        out.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str, fields: dict[str, Field], entity_type: str) -> None:
        self.text = text
        self.fields = fields
        self.entity_type = entity_type
        self.tokens = _tokens(text)
        self.i = 0

    def fail(self) -> BcError:
        pos = self.tokens[self.i][2] + 1 if self.i < len(self.tokens) else len(self.text) + 1
        return bad_request(f"Syntax error at position {pos} in '{self.text}'.")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        if self.i >= len(self.tokens):
            raise self.fail()
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        if self.peek() != value:
            raise self.fail()
        self.i += 1

    def parse(self) -> Predicate:
        pred = self.or_()
        if self.i != len(self.tokens):
            raise self.fail()
        return pred

    def or_(self) -> Predicate:
        left = self.and_()
        while self.peek() == "or":
            self.i += 1
            right = self.and_()
            left = (lambda a, b: lambda d: a(d) or b(d))(left, right)
        return left

    def and_(self) -> Predicate:
        left = self.unary()
        while self.peek() == "and":
            self.i += 1
            right = self.unary()
            left = (lambda a, b: lambda d: a(d) and b(d))(left, right)
        return left

    def unary(self) -> Predicate:
        if self.peek() == "not":
            self.i += 1
            inner = self.unary()
            return lambda d: not inner(d)
        if self.peek() == "(":
            self.i += 1
            inner = self.or_()
            self.expect(")")
            return inner
        kind, word, _ = self.take()
        if kind == "word" and word in _FUNCTIONS:
            self.expect("(")
            name = self.property()
            self.expect(",")
            value = self.literal(self.fields[name])
            self.expect(")")
            if not isinstance(value, str):
                raise self.fail()
            needle = value.lower()
            test: Callable[[str, str], bool] = {
                "contains": lambda s, n: n in s,
                "startswith": str.startswith,
                "endswith": str.endswith,
            }[word]
            return lambda d: test(str(d.get(name) or "").lower(), needle)
        self.i -= 1
        name = self.property()
        op = self.take()[1]
        if op not in _COMPARE:
            raise self.fail()
        value = self.literal(self.fields[name])
        spec = self.fields[name]
        return lambda d: _compare(_coerce(d.get(name), spec), op, value)

    def property(self) -> str:
        kind, word, _ = self.take()
        if kind != "word" or word in _COMPARE or word in {"and", "or", "not"}:
            self.i -= 1
            raise self.fail()
        if word not in self.fields:
            raise property_not_found(word, self.entity_type)
        return word

    def literal(self, spec: Field) -> Any:
        kind, word, _ = self.take()
        if kind == "str":
            return _coerce(word[1:-1].replace("''", "'"), spec)
        if kind != "word":
            raise self.fail()
        if word == "null":
            return None
        if word in ("true", "false"):
            return word == "true"
        if _GUID.match(word):
            return word.lower()
        if spec.type in ("date", "datetime"):
            return word
        try:
            return Decimal(word)
        except InvalidOperation:
            raise self.fail() from None


def _coerce(value: Any, spec: Field) -> Any:
    if value is None:
        return None
    if spec.type in ("decimal", "int") and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    if spec.type == "guid":
        return str(value).lower()
    if spec.type == "code":
        return str(value).upper()
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op])
    except TypeError:
        return False


def compile_filter(text: str, fields: dict[str, Field], entity_type: str) -> Predicate:
    """A predicate over stored entities for a ``$filter`` expression."""
    return _Parser(text, fields, entity_type).parse()


def parse_select(text: str, fields: dict[str, Field], entity_type: str) -> list[str]:
    """The properties a ``$select`` names, each checked against the entity."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in fields:
            raise property_not_found(name, entity_type)
    return names


def order(
    docs: list[dict[str, Any]], text: str, fields: dict[str, Field], entity_type: str
) -> list[dict[str, Any]]:
    """Entities sorted by an ``$orderby`` (``field [asc|desc], ...``); nulls first, as SQL Server sorts."""
    keys: list[tuple[str, bool]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, direction = part.partition(" ")
        direction = direction.strip().lower() or "asc"
        if name not in fields:
            raise property_not_found(name, entity_type)
        if direction not in ("asc", "desc"):
            raise bad_request(f"Syntax error at position {len(name) + 2} in '{part}'.")
        keys.append((name, direction == "desc"))
    out = list(docs)
    for name, desc in reversed(keys):
        spec = fields[name]
        out.sort(
            key=lambda d: (
                d.get(name) is not None,
                _coerce(d.get(name), spec) if d.get(name) is not None else 0,
            ),
            reverse=desc,
        )
    return out


__all__ = ["Predicate", "compile_filter", "order", "parse_select"]
