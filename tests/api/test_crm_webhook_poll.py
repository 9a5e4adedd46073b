"""A deal won in HubSpot reaches the hub by HubSpot's own signed webhook, with no scheduled poll:
the subscription event names the deal, and the hub reads its closed-won feed at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.api import ApiServer, create_app
from quote2cash.cli.stacks import HUBSPOT_BC, StackSandboxes
from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import cursor_name
from quote2cash.flows.lead_to_project import FLOW
from quote2cash.runtime.flow import workflow_id
from quote2cash.runtime.hub import Hub
from quote2cash.store import repo
from quote2cash.store.tables import inbox
from tests.flows.conftest import FAST, result_of, wait_for_flows

from .conftest import ENV

#: The HubSpot sandbox app's client secret, with which it signs its deliveries (v3).
APP_SECRET = "hubspot-sandbox-client-secret"


@pytest.fixture
def served(boxes: StackSandboxes, db_url: str) -> Iterator[tuple[Hub, ApiServer]]:
    raw: dict[str, Any] = boxes.config(db_url)
    raw["api"] = {"port": 0, "webhooks": {"hubspot": {"secret_env": "Q2C_TEST_HS_APP_SECRET"}}}
    hub = launch_hub(load_config(data=raw, env={**ENV, "Q2C_TEST_HS_APP_SECRET": APP_SECRET}), retry=FAST)
    server = ApiServer(create_app(hub), port=0).start()
    boxes.hubspot.webhooks.url = f"{server.url}/webhooks/hubspot"
    try:
        yield hub, server
    finally:
        boxes.hubspot.webhooks.url = None
        server.stop()
        hub.shutdown()


def _wait_for_run(hub: Hub, subject: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while hub.read(repo.get_run, FLOW, subject) is None:
        assert time.monotonic() < deadline, f"no {FLOW} run started for {subject}"
        time.sleep(0.05)


@pytest.mark.parametrize("stack", [HUBSPOT_BC.name])
def test_a_deal_won_in_hubspot_becomes_a_project_by_webhook_without_a_poll(
    stack: str, boxes: StackSandboxes, served: tuple[Hub, ApiServer]
) -> None:
    hub, _ = served
    assert hub.read(repo.get_cursor, cursor_name(hub)) is None  # nothing has polled
    _, deal = boxes.add_deal("Aurora Robotics Inc")
    _wait_for_run(hub, boxes.subject(deal))
    assert result_of(workflow_id(FLOW, boxes.subject(deal)))["status"] == "completed"
    assert len(boxes.erp_projects()) == 1 and len(boxes.kantata.records("workspaces")) == 1
    # HubSpot's events are kept as they came, and the closed-won feed's cursor moved on.
    sources = hub.read(lambda c: [s for (s,) in c.execute(sa.select(inbox.c.event_type))])
    assert "hubspot.deal_creation" in sources and "opportunity.closed_won" in sources
    assert hub.read(repo.get_cursor, cursor_name(hub)) is not None

    # A second deal, and the first one edited again: one more run, nothing written twice.
    _, second = boxes.add_deal("Basalt Media Ltd", region="UK & Ireland", currency="GBP")
    boxes.hubspot.update("deals", deal, {"amount": "125000"})
    _wait_for_run(hub, boxes.subject(second))
    assert list(wait_for_flows(hub, 2).values()) == ["completed", "completed"]
    assert len(boxes.erp_projects()) == 2 and len(boxes.erp_customers()) == 2
    assert boxes.hubspot.webhooks.pending() == 0
