"""Bulk writes for the month-end hot path.

Core's executemany builds and type-processes a parameter dict per row, which
costs several times the insert itself at a million rows. Here rows go to the
driver as tuples, already in the form each database stores (SQLite keeps
dates and timestamps as the text SQLAlchemy itself writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa


def sqlite_value(value: Any) -> Any:
    """A date or timestamp as SQLAlchemy stores it in SQLite; anything else as is."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """INSERT many rows given as tuples in ``columns`` order."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    if conn.dialect.name == "sqlite":
        temporal = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.Date | sa.DateTime)]
        if temporal:
            converted = []
            for row in rows:
                values = list(row)
                for i in temporal:
                    values[i] = sqlite_value(values[i])
                converted.append(tuple(values))
            rows = converted
    conn.exec_driver_sql(sql, rows)
