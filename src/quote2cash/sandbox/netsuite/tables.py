"""The tables SuiteQL sees: stored records flattened to rows of text.

Every record type is a table of its own (``customer``, ``journalentry``, ...),
with lower-case column names, references as their ids and checkboxes as
``T``/``F``; custom fields (``custbody_*``, ``custentity_*``) are columns like
any other. Two more tables exist:

- ``transaction``: invoices, journal entries and expense reports together, with
  SuiteQL's ``type`` column (``CustInvc``, ``Journal``, ``ExpRept``).
- ``transactionline``: their sublist lines (invoice ``item``, journal ``line``,
  expense report ``expense``) with the line fields (``custcol_*`` included),
  ``transaction`` (the header id), ``linesequencenumber`` (from 1, in sublist
  order; the sandbox has no header line, so ``mainline`` is always ``F``) and
  the header's ``subsidiary``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from quote2cash.sandbox.netsuite.records import TRANSACTION_TABLE, RecordBook
from quote2cash.sandbox.netsuite.schema import TYPES

Where = Callable[[Mapping[str, str]], bool]
# The sublist of each transaction type that ``transactionline`` shows.
_LINES: dict[str, str] = {
    "invoice": "item",
    "journalentry": "line",
    "expensereport": "expense",
    "creditmemo": "item",
    "customerpayment": "apply",
}
TABLES = frozenset({*TYPES, "transaction", "transactionline"})


def rows(
    book: RecordBook,
    table: str,
    columns: Collection[str] | None = None,
    where: Where | None = None,
    where_columns: Collection[str] = (),
) -> Iterator[dict[str, str]]:
    """The rows of a SuiteQL table that pass ``where`` (if given).

    ``columns`` limits each row to those (``None``: all), which keeps scans of a
    million time entries affordable. On a record table the WHERE columns are
    read first and the rest only for matching records, so a filtered
    reconciliation query touches little more than the filter's fields.
    """
    if table in TYPES and columns is not None:
        yield from _records(book, table, columns, where, where_columns)
        return
    if table == "transaction":
        source: Iterator[dict[str, str]] = _transactions(book, columns)
    elif table == "transactionline":
        source = _lines(book, columns)
    else:
        source = _records(book, table, columns, None, ())
    yield from source if where is None else filter(where, source)


def _transactions(book: RecordBook, columns: Collection[str] | None) -> Iterator[dict[str, str]]:
    for type_ in TRANSACTION_TABLE:
        extra = {"type": TYPES[type_].suiteql_type, "recordtype": type_}
        if columns is not None:
            extra = {k: v for k, v in extra.items() if k in columns}
        for row in _records(book, type_, columns, None, ()):
            row.update(extra)
            yield row


def _records(
    book: RecordBook,
    type_: str,
    columns: Collection[str] | None,
    where: Where | None,
    where_columns: Collection[str],
) -> Iterator[dict[str, str]]:
    if columns is None:
        for _, doc in book.docs(type_):
            row = {k.lower(): text for k, v in doc.items() if (text := _text(v)) is not None}
            if where is None or where(row):
                yield row
        return
    first = _reader(book, type_, where_columns if where is not None else ())
    rest = _reader(book, type_, [c for c in columns if where is None or c not in where_columns])
    for _, doc in book.docs(type_):
        row = {}
        if where is not None:
            first(doc, row)
            if not where(row):
                continue
        rest(doc, row)
        yield row


def _reader(
    book: RecordBook, type_: str, columns: Collection[str]
) -> Callable[[dict[str, Any], dict[str, str]], None]:
    """A function copying the given columns of a stored record into a row."""
    wanted = [(column, keys) for column in columns if (keys := book.spellings(type_, column))]
    if all(len(keys) == 1 for _, keys in wanted):
        # The usual case (one spelling per field): a flat loop, as this runs per record.
        single = [(column, keys[0]) for column, keys in wanted]

        def read_single(doc: dict[str, Any], row: dict[str, str]) -> None:
            for column, key in single:
                value = doc.get(key)
                if value.__class__ is str:
                    row[column] = value
                elif value.__class__ is dict and "items" not in value:  # a reference: its id
                    if (id_ := value.get("id")) is not None:
                        row[column] = str(id_)
                elif value is not None and (text := _text(value)) is not None:
                    row[column] = text

        return read_single

    def read_any(doc: dict[str, Any], row: dict[str, str]) -> None:
        for column, keys in wanted:
            for key in keys:
                value = doc.get(key)
                if value is not None and (text := _text(value)) is not None:
                    row[column] = text
                    break

    return read_any


def _lines(book: RecordBook, columns: Collection[str] | None) -> Iterator[dict[str, str]]:
    for type_, sublist in _LINES.items():
        for id_, doc in book.docs(type_):
            header = {"transaction": id_, "mainline": "F"}
            subsidiary = _text(doc.get("subsidiary"))
            if subsidiary is not None:
                header["subsidiary"] = subsidiary
            value = doc.get(sublist)
            lines = value.get("items", []) if isinstance(value, dict) else []
            for number, line in enumerate(lines, start=1):
                row = {**header, "linesequencenumber": str(number)}
                row.update((k.lower(), text) for k, v in line.items() if (text := _text(v)) is not None)
                yield row if columns is None else {k: v for k, v in row.items() if k in columns}


def _text(value: Any) -> str | None:
    """A field as SuiteQL shows it, or None for NULL and sublists."""
    if value is None or isinstance(value, list):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value["id"]) if "id" in value and not isinstance(value.get("items"), list) else None
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


__all__ = ["TABLES", "rows"]
