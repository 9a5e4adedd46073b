"""Posting approved work to the ERP on demand."""

from __future__ import annotations

from typing import Any

from quote2cash.flows import posting as posting_flow
from quote2cash.ops._args import work_kind
from quote2cash.runtime.hub import Hub


def post_now(hub: Hub, kind: str) -> dict[str, Any]:
    """Run one posting micro-batch of ``time`` or ``expenses`` on the launched hub and wait for it.

    Returns the run's figures (pulled, valid, quarantined, held, posted, …).
    """
    return posting_flow.post_now(work_kind(kind))
