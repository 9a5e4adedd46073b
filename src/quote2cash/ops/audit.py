"""The audit trail: verify its hash chain."""

from __future__ import annotations

from quote2cash.ops._source import Source, read
from quote2cash.store import audit
from quote2cash.store.audit import ChainReport


def verify(source: Source) -> ChainReport:
    """Recompute the hash chain; the report names the first broken entry, if any."""
    return read(source, audit.verify)


__all__ = ["ChainReport", "verify"]
