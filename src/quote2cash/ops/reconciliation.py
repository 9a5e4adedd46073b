"""Reconciliation of approved work: PSA approved vs ERP posted, by month."""

from __future__ import annotations

from pathlib import Path

from quote2cash.flows import reconcile_work
from quote2cash.flows.reconcile_work import Report
from quote2cash.ops._args import period as month
from quote2cash.ops._args import work_kind
from quote2cash.runtime.hub import Hub


def reconcile(hub: Hub, kind: str, period: str, *, out: Path | None = None) -> Report:
    """Reconcile ``time`` or ``expenses`` for a month (``YYYY-MM``); every break gets a case.

    With ``out`` the report is also written there as CSV and JSON; ``Report.files``
    lists the paths written.
    """
    return reconcile_work.reconcile(hub, work_kind(kind), month(period), out=out)


__all__ = ["Report", "reconcile"]
