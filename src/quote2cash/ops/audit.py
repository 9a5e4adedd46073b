"""The audit trail: verify its sealed chain, and anchor its head outside the database."""

from __future__ import annotations

from quote2cash.ops._source import Source, read
from quote2cash.store import audit
from quote2cash.store.audit import Anchor, ChainReport


def verify(source: Source) -> ChainReport:
    """Check the chain with the audit key and against the anchors; the report names the first broken entry."""
    return read(source, audit.verify)


def anchor(source: Source) -> Anchor | None:
    """Append the committed head of the chain to the anchor file; None if it is already anchored."""
    return read(source, audit.anchor)


__all__ = ["Anchor", "ChainReport", "anchor", "verify"]
