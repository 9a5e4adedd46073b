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

from collections.abc import Collection, Iterator
from typing import Any

from quote2cash.sandbox.netsuite.records import TRANSACTION_TABLE, RecordBook
from quote2cash.sandbox.netsuite.schema import TYPES

# The sublist of each transaction type that ``transactionline`` shows.
_LINES: dict[str, str] = {"invoice": "item", "journalentry": "line", "expensereport": "expense"}
TABLES = frozenset({*TYPES, "transaction", "transactionline"})


def rows(book: RecordBook, table: str, columns: Collection[str] | None = None) -> Iterator[dict[str, str]]:
    """The rows of a SuiteQL table; ``columns`` limits each row to those (``None``: all).

    Naming only the columns a query mentions keeps scans of a million time
    entries affordable.
    """
    if table == "transaction":
        for type_ in TRANSACTION_TABLE:
            extra = {"type": TYPES[type_].suiteql_type, "recordtype": type_}
            if columns is not None:
                extra = {k: v for k, v in extra.items() if k in columns}
            for row in _records(book, type_, columns):
                row.update(extra)
                yield row
    elif table == "transactionline":
        yield from _lines(book, columns)
    else:
        yield from _records(book, table, columns)


def _records(book: RecordBook, type_: str, columns: Collection[str] | None) -> Iterator[dict[str, str]]:
    if columns is None:
        for _, doc in book.docs(type_):
            yield {k.lower(): text for k, v in doc.items() if (text := _text(v)) is not None}
        return
    wanted = [(column, book.spellings(type_, column)) for column in columns]
    for _, doc in book.docs(type_):
        row: dict[str, str] = {}
        for column, keys in wanted:
            for key in keys:
                value = doc.get(key)
                if value is not None:
                    text = _text(value)
                    if text is not None:
                        row[column] = text
                        break
        yield row


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
