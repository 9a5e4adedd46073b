"""A small SuiteQL: enough SQL for lookups, incremental pulls and reconciliation.

Grammar (keywords case-insensitive)::

    SELECT [DISTINCT] * | item [, item]...
    FROM table [alias]
    [WHERE cond]  [GROUP BY col [, col]...]  [ORDER BY name [ASC|DESC] [, ...]]

    item := col [[AS] alias] | COUNT(*) | COUNT(col) | SUM(col) | MIN(col) | MAX(col) | AVG(col)
    cond := cond OR cond | cond AND cond | NOT cond | ( cond )
          | col = != <> < <= > >= literal | col [NOT] IN (literal, ...)
          | col IS [NOT] NULL | col [NOT] LIKE 'pat%' | col BETWEEN literal AND literal
    literal := 'text' | number | TO_DATE('2026-01-31', 'YYYY-MM-DD')

Rows are mappings of lower-case column -> string (SuiteQL returns every value
as text and leaves NULL columns out). Values compare as numbers when both
sides are numeric and as text otherwise, which orders ISO dates correctly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

Row = Mapping[str, str]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op><>|!=|<=|>=|[=<>(),*])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_KEYWORDS = frozenset(
    {"select", "distinct", "from", "where", "and", "or", "not", "in", "is", "null", "like", "between"}
    | {"group", "order", "by", "asc", "desc", "as"}
    # Not supported here, but reserved so they are never taken for an alias.
    | {"limit", "offset", "fetch", "join", "inner", "left", "on", "having", "union"}
)
_AGGREGATES = frozenset({"count", "sum", "min", "max", "avg"})


class SuiteQLError(ValueError):
    """A query the sandbox cannot parse or run; NetSuite answers 400."""


@dataclass(frozen=True)
class Item:
    """One selected expression: a column or an aggregate over a column (``*`` for COUNT(*))."""

    func: str | None
    column: str | None
    name: str


@dataclass(frozen=True)
class Query:
    """A parsed query; ``columns`` are every source column it mentions, ``where_columns`` those in WHERE."""

    table: str
    items: tuple[Item, ...]
    star: bool
    distinct: bool
    where: Predicate | None
    group_by: tuple[str, ...]
    order_by: tuple[tuple[str, bool], ...]
    columns: frozenset[str]
    where_columns: frozenset[str] = frozenset()


def _number(value: str) -> Decimal | None:
    return Decimal(value) if _NUMBER.fullmatch(value) else None


def _compare(left: str, right: str) -> int:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    return (left > right) - (left < right)


def _against(literal: str) -> Callable[[str], int]:
    """``lambda v: _compare(v, literal)`` with the literal parsed once (WHERE runs per row)."""
    number = _number(literal)
    if number is None:
        return lambda v: (v > literal) - (v < literal)

    def compare(value: str) -> int:
        if value == literal:
            return 0
        other = _number(value)
        if other is None:
            return (value > literal) - (value < literal)
        return (other > number) - (other < number)

    return compare


def _sort_key(value: str | None) -> tuple[int, int, Decimal, str]:
    # Oracle puts NULLs last ascending and first descending; (1, ...) does both.
    if value is None:
        return (1, 0, Decimal(0), "")
    number = _number(value)
    return (0, 0, number, "") if number is not None else (0, 1, Decimal(0), value)


def _format(value: Decimal) -> str:
    return format(value.normalize(), "f")


_OPERATORS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "<>": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                if text[pos:].strip() in ("", ";"):
                    break
                raise SuiteQLError(f"unexpected character {text[pos:].strip()[0]!r} at position {pos}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.i = 0
        self.columns: set[str] = set()
        self.where_columns: set[str] | None = None  # collecting while the WHERE clause is parsed
        self.prefixes: set[str] = set()
        self.unnamed = 0
        self.aliases: set[str] = set()

    # -- token helpers -----------------------------------------------------------------
    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        at = self.i + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() in words:
            self.i += 1
            return True
        return False

    def op(self, *ops: str) -> str | None:
        token = self.peek()
        if token and token[0] == "op" and token[1] in ops:
            self.i += 1
            return token[1]
        return None

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise SuiteQLError(f"expected {word.upper()} {self.where()}")

    def expect_op(self, op: str) -> None:
        if self.op(op) is None:
            raise SuiteQLError(f"expected '{op}' {self.where()}")

    def where(self) -> str:
        token = self.peek()
        return "at the end of the query" if token is None else f"near {token[1]!r}"

    def name(self) -> str:
        token = self.peek()
        if token is None or token[0] != "word" or token[1].lower() in _KEYWORDS:
            raise SuiteQLError(f"expected a name {self.where()}")
        self.i += 1
        return token[1].lower()

    def column(self) -> str:
        prefix, _, column = self.name().rpartition(".")
        if prefix:
            self.prefixes.add(prefix)
        self.columns.add(column)
        if self.where_columns is not None:
            self.where_columns.add(column)
        return column

    def literal(self) -> str:
        token = self.peek()
        if token is None:
            raise SuiteQLError("expected a value at the end of the query")
        kind, text = token
        if kind == "num":
            self.i += 1
            return text
        if kind == "str":
            self.i += 1
            return text[1:-1].replace("''", "'")
        if kind == "word" and text.lower() == "to_date":
            self.i += 1
            self.expect_op("(")
            value = self.literal()
            fmt = self.literal() if self.op(",") else "YYYY-MM-DD"
            self.expect_op(")")
            return _to_date(value, fmt)
        raise SuiteQLError(f"expected a value {self.where()}")

    # -- grammar -----------------------------------------------------------------------
    def query(self) -> Query:
        self.expect_keyword("select")
        distinct = self.keyword("distinct")
        star = self.op("*") is not None
        items: list[Item] = []
        if not star:
            items.append(self.item())
            while self.op(","):
                items.append(self.item())
        self.expect_keyword("from")
        table = self.name()
        alias = None if self._at_keyword() else self.name()
        where = None
        if self.keyword("where"):
            self.where_columns = set()
            where = self.condition()
        where_columns = frozenset(self.where_columns or ())
        group_by: list[str] = []
        if self.keyword("group"):
            self.expect_keyword("by")
            group_by.append(self.column())
            while self.op(","):
                group_by.append(self.column())
        order_by: list[tuple[str, bool]] = []
        if self.keyword("order"):
            self.expect_keyword("by")
            order_by.append(self.order_item())
            while self.op(","):
                order_by.append(self.order_item())
        if self.peek() is not None:
            raise SuiteQLError(f"unexpected {self.where()}")
        if self.prefixes - {table, alias}:
            raise SuiteQLError(f"unknown table alias {sorted(self.prefixes - {table, alias})[0]!r}")
        columns = frozenset(self.columns)
        return Query(
            table,
            tuple(items),
            star,
            distinct,
            where,
            tuple(group_by),
            tuple(order_by),
            columns,
            where_columns,
        )

    def _at_keyword(self) -> bool:
        token = self.peek()
        return token is None or token[0] != "word" or token[1].lower() in _KEYWORDS

    def item(self) -> Item:
        token, following = self.peek(), self.peek(1)
        if token and token[0] == "word" and following == ("op", "("):
            func = token[1].lower()
            if func not in _AGGREGATES:
                raise SuiteQLError(f"unknown function {token[1]}")
            self.i += 2
            column = None if self.op("*") else self.column()
            if column is None and func != "count":
                raise SuiteQLError(f"{func.upper()}(*) is not allowed")
            self.expect_op(")")
            item = Item(func, column, self.alias() or self.expression_name())
        else:
            column = self.column()
            item = Item(None, column, self.alias() or column)
        self.aliases.add(item.name)
        return item

    def alias(self) -> str | None:
        if self.keyword("as"):
            return self.name()
        return None if self._at_keyword() else self.name()

    def expression_name(self) -> str:
        # NetSuite names unaliased expressions expr1, expr2, ...
        self.unnamed += 1
        return f"expr{self.unnamed}"

    def order_item(self) -> tuple[str, bool]:
        prefix, _, name = self.name().rpartition(".")
        if prefix:
            self.prefixes.add(prefix)
        if name not in self.aliases:
            self.columns.add(name)
        if self.keyword("desc"):
            return name, True
        self.keyword("asc")
        return name, False

    def condition(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda row: not inner(row)
        if self.op("("):
            inner = self.condition()
            self.expect_op(")")
            return inner
        return self.predicate()

    def predicate(self) -> Predicate:
        column = self.column()
        operator = self.op("=", "!=", "<>", "<", "<=", ">", ">=")
        if operator is not None:
            compare, test = _against(self.literal()), _OPERATORS[operator]
            return lambda row: (v := row.get(column)) is not None and test(compare(v))
        if self.keyword("is"):
            negate = self.keyword("not")
            self.expect_keyword("null")
            return lambda row: (row.get(column) is None) != negate
        if self.keyword("between"):
            low = _against(self.literal())
            self.expect_keyword("and")
            high = _against(self.literal())
            return lambda row: (v := row.get(column)) is not None and low(v) >= 0 >= high(v)
        negate = self.keyword("not")
        if self.keyword("in"):
            self.expect_op("(")
            values = [_against(self.literal())]
            while self.op(","):
                values.append(_against(self.literal()))
            self.expect_op(")")
            return lambda row: (v := row.get(column)) is not None and any(x(v) == 0 for x in values) != negate
        if self.keyword("like"):
            pattern = _like(self.literal())
            return lambda row: (
                (v := row.get(column)) is not None and ((pattern.fullmatch(v) is not None) != negate)
            )
        raise SuiteQLError(f"expected a comparison {self.where()}")


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _to_date(value: str, fmt: str) -> str:
    fmt = fmt.upper()
    match fmt:
        case "YYYY-MM-DD":
            parts = value.split("-")
            order = (0, 1, 2)
        case "MM/DD/YYYY":
            parts = value.split("/")
            order = (2, 0, 1)
        case "DD/MM/YYYY" | "DD.MM.YYYY":
            parts = re.split(r"[/.]", value)
            order = (2, 1, 0)
        case _:
            raise SuiteQLError(f"unsupported date format {fmt!r}")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise SuiteQLError(f"{value!r} does not match the date format {fmt!r}")
    year, month, day = (int(parts[i]) for i in order)
    return f"{year:04d}-{month:02d}-{day:02d}"


def parse(text: str) -> Query:
    """Parse a query, or raise :class:`SuiteQLError` saying where it went wrong."""
    return _Parser(text).query()


class _Aggregate:
    def __init__(self, item: Item) -> None:
        self.item = item
        self.count = 0
        self.total = Decimal(0)
        self.best: str | None = None

    def add(self, row: Row) -> None:
        func, column = self.item.func, self.item.column
        if column is None:
            self.count += 1
            return
        value = row.get(column)
        if value is None:
            return
        self.count += 1
        if func in ("sum", "avg"):
            number = _number(value)
            if number is None:
                raise SuiteQLError(f"{func.upper()}({column}) needs numbers, got {value!r}")
            self.total += number
        elif func in ("min", "max") and (
            self.best is None or (_sort_key(value) < _sort_key(self.best)) == (func == "min")
        ):
            self.best = value

    def result(self) -> str | None:
        func = self.item.func
        if func == "count":
            return str(self.count)
        if self.count == 0:
            return None
        if func == "sum":
            return _format(self.total)
        if func == "avg":
            return _format(self.total / self.count)
        return self.best


def execute(query: Query, rows: Iterable[Row], *, filtered: bool = False) -> list[dict[str, str]]:
    """Run a parsed query over rows; the result rows leave NULL columns out.

    ``filtered`` says the rows already passed the WHERE clause (the table scan applied it).
    """
    if query.where is not None and not filtered:
        where = query.where
        rows = (row for row in rows if where(row))
    if query.group_by or any(item.func for item in query.items):
        result = _grouped(query, rows)
        # Aggregated rows can be ordered by an output name or a selected group column.
        names = {item.name: item.name for item in query.items}
        names |= {item.column: item.name for item in query.items if item.func is None and item.column}
        for name, _ in query.order_by:
            if name not in names:
                raise SuiteQLError(f"ORDER BY {name} must be a selected column or alias")
        _sort(result, [(names[name], descending) for name, descending in query.order_by])
    else:
        # Sort the source rows first: ORDER BY may name a column that is not selected.
        source = list(rows)
        aliases = {item.name: item.column or item.name for item in query.items}
        _sort(source, [(aliases.get(name, name), descending) for name, descending in query.order_by])
        result = [dict(row) if query.star else _project(query.items, row) for row in source]
    if query.distinct:
        seen: set[tuple[tuple[str, str], ...]] = set()
        unique = []
        for row in result:
            marker = tuple(sorted(row.items()))
            if marker not in seen:
                seen.add(marker)
                unique.append(row)
        result = unique
    return result


def _sort(rows: list[dict[str, str]] | list[Row], keys: list[tuple[str, bool]]) -> None:
    # Stable sorts applied from the last key to the first give a multi-key order.
    for name, descending in reversed(keys):
        rows.sort(key=lambda row: _sort_key(row.get(name)), reverse=descending)


def _project(items: tuple[Item, ...], row: Row) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        value = row.get(item.column or "")
        if value is not None:
            out[item.name] = value
    return out


def _grouped(query: Query, rows: Iterable[Row]) -> list[dict[str, str]]:
    if query.star:
        raise SuiteQLError("SELECT * cannot be combined with aggregates or GROUP BY")
    for item in query.items:
        if item.func is None and item.column not in query.group_by:
            raise SuiteQLError(f"{item.column} is not a GROUP BY expression")
    aggregated = [item for item in query.items if item.func]
    groups: dict[tuple[str | None, ...], list[_Aggregate]] = {}
    for row in rows:
        key = tuple(row.get(c) for c in query.group_by)
        accumulators = groups.get(key)
        if accumulators is None:
            accumulators = groups[key] = [_Aggregate(item) for item in aggregated]
        for accumulator in accumulators:
            accumulator.add(row)
    if not groups and not query.group_by:
        groups[()] = [_Aggregate(item) for item in aggregated]  # COUNT(*) over nothing is one row: 0
    result = []
    for key, accumulators in groups.items():
        values = dict(zip(query.group_by, key, strict=True))
        results = iter(accumulators)
        out: dict[str, str] = {}
        for item in query.items:
            value = next(results).result() if item.func else values.get(item.column or "")
            if value is not None:
                out[item.name] = value
        result.append(out)
    return result


__all__ = ["Item", "Query", "SuiteQLError", "execute", "parse"]
