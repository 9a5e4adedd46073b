"""Business flows. Importing this package registers every flow with DBOS, which
must happen before the hub launches (so a restarted worker can recover them)."""

from __future__ import annotations

from typing import Any

from quote2cash.config import HubConfig
from quote2cash.flows import billing, customer_sync, lead_to_project, outbox, posting, reconcile_work
from quote2cash.runtime.hub import Hub


def launch_hub(config: HubConfig, **kwargs: Any) -> Hub:
    """Build and launch the hub with every flow registered."""
    return Hub(config, **kwargs).launch()


__all__ = ["billing", "customer_sync", "launch_hub", "lead_to_project", "outbox", "posting", "reconcile_work"]
