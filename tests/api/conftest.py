"""Fixtures for API tests: seeded sandboxes, a launched hub with webhook secrets, the app
served by uvicorn on loopback, and tokens of each scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from quote2cash.api import ApiServer, create_app
from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.ops import tokens
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.salesforce.app import ORG_ID
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes
from tests.flows.conftest import FAST, boxes  # noqa: F401  (the flow tests' sandboxes)

SECRETS = {
    "salesforce": "sf-webhook-secret",
    "stripe": "whsec_test_secret",
    "hubspot": "hubspot-client-secret",
    "netsuite": "ns-webhook-secret",
    "kantata": "kt-webhook-secret",
}
ENV = {
    **SANDBOX_ENV,
    "Q2C_AUDIT_KEY": "a" * 64,
    **{f"Q2C_TEST_{k.upper()}_WEBHOOK": v for k, v in SECRETS.items()},
}


@dataclass
class Api:
    """The served app, its hub and sandboxes, and a client per token."""

    hub: Hub
    boxes: Sandboxes
    server: ApiServer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        """Base URL."""
        return self.server.url

    def client(self, scope: str | None = "operate") -> httpx.Client:
        """A client sending the token of ``scope`` (None: no token)."""
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def api_config(boxes: Sandboxes, db_url: str, **api: object) -> dict[str, object]:  # noqa: F811
    """The sandboxes' hub config with every webhook source configured."""
    raw = boxes.config(db_url)
    for system in raw["systems"].values():  # type: ignore[union-attr]
        system["timeout_seconds"] = 5.0
    hooks: dict[str, dict[str, object]] = {
        k: {"secret_env": f"Q2C_TEST_{k.upper()}_WEBHOOK"} for k in SECRETS
    }
    hooks["salesforce"]["org_id"] = ORG_ID
    raw["api"] = {"port": 0, "webhooks": hooks, **api}
    return raw


@pytest.fixture
def api(boxes: Sandboxes, db_url: str) -> Iterator[Api]:  # noqa: F811
    """The API over a launched hub, served on loopback, with read / operate / admin / webhook tokens."""
    hub = launch_hub(load_config(data=api_config(boxes, db_url, max_body_bytes=65536), env=ENV), retry=FAST)
    server = ApiServer(create_app(hub), port=0).start()
    made = {
        scope: tokens.create(hub, owner=f"{scope} user", scopes=[scope], actor="test")[1]
        for scope in ("read", "operate", "admin", "webhook:kantata")
    }
    try:
        yield Api(hub, boxes, server, made)
    finally:
        server.stop()
        hub.shutdown()
