"""The catalogue of error codes, for ``q2c errors`` and ``docs/errors.md``."""

from __future__ import annotations

from typing import Any

from quote2cash.errors import CATALOGUE, ErrorCode

DOCS_HEADER = """# Error codes

Every error the hub reports carries one of these codes: in the exception queue,
the audit log, the API's problem details and the CLI. Errors that are
*retryable* are retried automatically with backoff; the others go to the
owning team as an exception case, or are answered with the HTTP status shown.

This file is generated from `quote2cash.errors.CATALOGUE` by
`scripts/gen_error_docs` (`q2c errors --markdown`); do not edit it by hand.
"""


def entries(prefix: str | None = None) -> list[ErrorCode]:
    """The catalogue in its order, optionally only the codes starting with ``prefix``."""
    return [e for e in CATALOGUE.values() if not prefix or e.code.startswith(prefix)]


def as_dict(entry: ErrorCode) -> dict[str, Any]:
    """One entry as plain data (the JSON of ``q2c errors --json``)."""
    return {
        "code": entry.code,
        "owner": str(entry.owner),
        "retryable": entry.retryable,
        "http_status": entry.http_status,
        "meaning": entry.meaning,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """``docs/errors.md``: one table per family of codes (the part before the first dot)."""
    families: dict[str, list[ErrorCode]] = {}
    for e in entries():
        families.setdefault(e.code.split(".", 1)[0], []).append(e)
    out = [DOCS_HEADER]
    for family, codes in families.items():
        out += [
            f"## {family}",
            "",
            "| code | owner | retryable | HTTP | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| `{e.code}` | {e.owner} | {'yes' if e.retryable else 'no'} | {e.http_status} | {_cell(e.meaning)} |"
            for e in codes
        ]
        out.append("")
    return "\n".join(out)
