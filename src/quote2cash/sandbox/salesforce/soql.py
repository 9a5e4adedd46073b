"""A small SOQL subset: tokens, grammar and syntax tree (see :mod:`.query` to run it).

Grammar (keywords case-insensitive, as in SOQL)::

    SELECT field {, field} | COUNT() FROM Object
      [WHERE cond {AND|OR cond}]   -- NOT and parentheses allowed
      [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] {, ...}]
      [LIMIT n] [OFFSET n]
    cond  := field (= | != | <> | < | > | <= | >=) literal
           | field [NOT] IN (literal {, literal}) | field LIKE 'pattern'
    literal := 'string' | number | true | false | null | 2025-01-31 | 2025-01-01T00:00:00Z

Syntax errors are ``MALFORMED_QUERY`` with Salesforce's row/column excerpt;
subqueries, aggregates other than ``COUNT()`` and date functions are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from quote2cash.sandbox.salesforce.schema import parse_datetime_ms


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is the errorCode it would answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- tokens ------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2}(?![\dT:]))
    |(?P<number>[+-]?\d+(?:\.\d+)?(?![\w.]))
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            raise _malformed(text, pos, text[pos:].split(None, 1)[0])
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


def error_prefix(text: str, pos: int) -> str:
    """The query excerpt Salesforce puts before a query error: the text, a caret, the column."""
    return f"{text}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\n"


def _malformed(text: str, pos: int, what: str) -> SoqlError:
    where = error_prefix(text, pos)
    return SoqlError("MALFORMED_QUERY", where + (f"unexpected token: '{what}'" if what else "unexpected end"))


# -- syntax tree -------------------------------------------------------------------
@dataclass(frozen=True)
class Literal:
    """A literal: kind is string, number, bool, null, date or datetime."""

    kind: str
    value: Any
    pos: int


@dataclass(frozen=True)
class Condition:
    """``field op literal`` (op: = != < > <= >= IN NOT_IN LIKE)."""

    field: str
    pos: int
    op: str
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    """AND / OR of sub-expressions, or NOT of one."""

    op: str
    parts: tuple[Condition | BoolOp, ...]


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key."""

    field: str
    pos: int
    desc: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A parsed query; ``fields`` is None for ``SELECT COUNT()``."""

    text: str
    fields: tuple[tuple[str, int], ...] | None
    sobject: str
    sobject_pos: int
    where: Condition | BoolOp | None
    order: tuple[OrderItem, ...]
    limit: int | None
    offset: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self) -> SoqlError:
        return _malformed(self.text, self.tok.pos, self.tok.text)

    def keyword(self, *words: str) -> bool:
        if self.tok.kind == "ident" and self.tok.text.upper() in words:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail()

    def punct(self, char: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == char:
            self.i += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.punct(char):
            raise self.fail()

    def name(self) -> tuple[str, int]:
        tok = self.tok
        if tok.kind != "ident" or tok.text.upper() in _RESERVED:
            raise self.fail()
        self.i += 1
        return tok.text, tok.pos

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.fail()
        self.i += 1
        return int(tok.text)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: tuple[tuple[str, int], ...] | None
        counting = self.tok.kind == "ident" and self.tok.text.upper() == "COUNT"
        if counting and self.tokens[self.i + 1].text == "(":
            self.i += 1
            self.expect_punct("(")
            self.expect_punct(")")
            fields = None
        else:
            items = [self.name()]
            while self.punct(","):
                items.append(self.name())
            fields = tuple(items)
        self.expect_keyword("FROM")
        sobject, sobject_pos = self.name()
        where = self.expression() if self.keyword("WHERE") else None
        order: list[OrderItem] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.punct(","):
                order.append(self.order_item())
        limit = self.integer() if self.keyword("LIMIT") else None
        offset = self.integer() if self.keyword("OFFSET") else 0
        if self.tok.kind != "eof":
            raise self.fail()
        return Query(self.text, fields, sobject, sobject_pos, where, tuple(order), limit, offset)

    def order_item(self) -> OrderItem:
        field, pos = self.name()
        desc = self.keyword("DESC")
        if not desc:
            self.keyword("ASC")
        nulls_first = not desc
        if self.keyword("NULLS"):
            if self.keyword("FIRST"):
                nulls_first = True
            else:
                self.expect_keyword("LAST")
                nulls_first = False
        return OrderItem(field, pos, desc, nulls_first)

    def expression(self) -> Condition | BoolOp:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self) -> Condition | BoolOp:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def factor(self) -> Condition | BoolOp:
        if self.keyword("NOT"):
            return BoolOp("NOT", (self.factor(),))
        if self.punct("("):
            inner = self.expression()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Condition:
        field, pos = self.name()
        tok = self.tok
        if tok.kind == "op":
            self.i += 1
            return Condition(field, pos, "!=" if tok.text == "<>" else tok.text, (self.literal(),))
        if self.keyword("LIKE"):
            value = self.literal()
            if value.kind != "string":
                raise _malformed(self.text, value.pos, str(value.value))
            return Condition(field, pos, "LIKE", (value,))
        negate = self.keyword("NOT")
        if not self.keyword("IN"):
            raise self.fail()
        self.expect_punct("(")
        values = [self.literal()]
        while self.punct(","):
            values.append(self.literal())
        self.expect_punct(")")
        return Condition(field, pos, "NOT_IN" if negate else "IN", tuple(values))

    def literal(self) -> Literal:
        tok = self.tok
        self.i += 1
        if tok.kind == "string":
            body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), tok.text[1:-1])
            return Literal("string", body, tok.pos)
        if tok.kind == "number":
            return Literal("number", Decimal(tok.text), tok.pos)
        if tok.kind == "date":
            return Literal("date", tok.text, tok.pos)
        if tok.kind == "datetime":
            ms = parse_datetime_ms(tok.text)
            if ms is not None:
                return Literal("datetime", ms, tok.pos)
        if tok.kind == "ident" and tok.text.upper() in ("TRUE", "FALSE"):
            return Literal("bool", tok.text.upper() == "TRUE", tok.pos)
        if tok.kind == "ident" and tok.text.upper() == "NULL":
            return Literal("null", None, tok.pos)
        self.i -= 1
        raise self.fail()


_RESERVED = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "LIMIT",
        "OFFSET",
        "ASC",
        "DESC",
        "NULLS",
        "NULL",
        "TRUE",
        "FALSE",
    }
)


def parse(text: str) -> Query:
    """Parse a SOQL query, or raise :class:`SoqlError` (``MALFORMED_QUERY``)."""
    return _Parser(text.strip()).parse()
