"""Checks of the arguments services share, failing with :class:`UsageError`."""

from __future__ import annotations

import re

from quote2cash.errors import UsageError

# Names people type for the two kinds of approved work, and the hub's own name of each.
WORK_KINDS = {"time": "time", "expense": "expense", "expenses": "expense"}


def work_kind(value: str) -> str:
    """The hub's name of a kind of work (``time`` or ``expense``)."""
    kind = WORK_KINDS.get(value)
    if kind is None:
        raise UsageError(f"unknown kind {value!r}: use 'time' or 'expenses'")
    return kind


def period(value: str) -> str:
    """A month, ``YYYY-MM``."""
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value) is None:
        raise UsageError(f"period {value!r} is not a month written YYYY-MM (e.g. 2026-11)")
    return value
