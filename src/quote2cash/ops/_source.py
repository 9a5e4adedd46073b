"""What a read-only service reads from: a hub, an engine or an open connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from quote2cash.runtime.hub import Hub

P = ParamSpec("P")
R = TypeVar("R")

Source = Hub | sa.Engine | sa.Connection


def read(
    source: Source, fn: Callable[Concatenate[sa.Connection, P], R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run ``fn(conn, ...)`` on a connection of ``source``."""
    if isinstance(source, sa.Connection):
        return fn(source, *args, **kwargs)
    if isinstance(source, sa.Engine):
        with source.connect() as conn:
            return fn(conn, *args, **kwargs)
    return source.read(fn, *args, **kwargs)
