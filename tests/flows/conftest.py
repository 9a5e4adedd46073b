"""Fixtures for flow tests: seeded sandboxes on loopback and a launched hub."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dbos import DBOS

from quote2cash.cli.stacks import DEFAULT_STACK, HUBSPOT_CERTINIA_BC, Stack, StackSandboxes
from quote2cash.config import load_config
from quote2cash.connectors._http import RetryPolicy
from quote2cash.flows import launch_hub
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.firm import Firm
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes, seed
from quote2cash.store.tables import flow_run

FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05, max_attempts=8)
_names = itertools.count()
# Distinct names, so identity matching sees no probable duplicates among test clients.
_DISTINCT = [
    "Aurora",
    "Basalt",
    "Cinder",
    "Dynamo",
    "Ember",
    "Fjord",
    "Glacier",
    "Helix",
    "Indigo",
    "Juniper",
    "Krypton",
    "Lagoon",
    "Monsoon",
    "Nebula",
    "Obsidian",
    "Prairie",
    "Quartz",
    "Rhapsody",
    "Sequoia",
    "Tundra",
    "Umber",
    "Vortex",
    "Willow",
    "Xenon",
    "Yonder",
    "Zephyr",
]


#: The stacks flow tests run on with ``@pytest.mark.parametrize("stack", STACKS)``.
#: Every vendor of the CRM, PSA and ERP roles is in one of them.
STACKS = [DEFAULT_STACK.name, HUBSPOT_CERTINIA_BC.name]


@pytest.fixture
def boxes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The stack's sandboxes with the demo firm's master data and no deals.

    The stack is Salesforce, Kantata and NetSuite (:class:`Sandboxes`) unless the
    test is parametrised with ``stack`` (a :class:`StackSandboxes` then).
    """
    stack = request.getfixturevalue("stack") if "stack" in request.fixturenames else DEFAULT_STACK.name
    if stack == DEFAULT_STACK.name:
        sb = Sandboxes.open(tmp_path / "sandboxes").start()
        seed(Firm(seed=0), sb)
        yield sb
        sb.stop()
        return
    stacked = StackSandboxes.open(Stack.parse(stack), tmp_path / "sandboxes").start()
    stacked.seed(Firm(seed=0))
    yield stacked
    stacked.stop()


@pytest.fixture
def make_hub(db_url: str, boxes: Sandboxes) -> Iterator[Callable[..., Hub]]:
    """Launch a hub on the test database; ``policies``, ``posting``, ``limits``, ``customers``,
    ``ownership``, ``timeout`` and ``systems`` (settings added to a system, by name) may be given."""
    hubs: list[Hub] = []

    def make(
        policies: dict[str, Any] | None = None,
        timeout: float = 5.0,
        posting: dict[str, Any] | None = None,
        limits: dict[str, dict[str, Any]] | None = None,
        customers: dict[str, Any] | None = None,
        ownership: dict[str, str] | None = None,
        systems: dict[str, dict[str, Any]] | None = None,
        **sections: Any,
    ) -> Hub:
        raw = boxes.config(db_url)
        for name, system in raw["systems"].items():
            system.update((systems or {}).get(name, {}))
            system["timeout_seconds"] = timeout
            system["limits"] = {**system.get("limits", {}), **(limits or {}).get(name, {})}
        if policies:
            raw["policies"] = policies
        if posting:
            raw["posting"] = posting
        if customers:
            raw["customers"] = customers
        if ownership:
            raw["ownership"] = ownership
        raw.update(sections)  # any other top-level config section (e.g. internal_projects)
        hub = launch_hub(load_config(data=raw, env=SANDBOX_ENV), retry=FAST)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.shutdown()


def add_deal(
    boxes: Sandboxes,
    *,
    name: str | None = None,
    region: str = "North America",
    currency: str = "USD",
    terms: str = "Net 30",
    website: str | None = None,
    tax_id: str | None = None,
    billing: str = "Time & Materials",
    lines: list[tuple[str, int]] | None = None,
    won: bool = True,
    approved: bool = True,
) -> tuple[str, str]:
    """Create an account and a deal in the CRM; returns (account id, opportunity id)."""
    n = next(_names)
    name = name or f"{_DISTINCT[n % len(_DISTINCT)]} {n} Inc"
    sf = boxes.salesforce
    account = sf.insert(
        "Account",
        {
            "Name": name,
            "Website": website or f"https://client{n}.example.com",
            "Region__c": region,
            "CurrencyIsoCode": currency,
            "Payment_Terms__c": terms,
            "BillingCountry": "US",
            "Tax_Id__c": tax_id,
        },
    )
    opp = sf.insert(
        "Opportunity",
        {
            "AccountId": account,
            "Name": f"{name} — Delivery {n}",
            "StageName": "Negotiation/Review",
            "CloseDate": "2026-11-20",
            "Amount": 48000.0,
            "CurrencyIsoCode": currency,
            "Billing_Model__c": billing,
            "Practice__c": "Technology",
            "Start_Date__c": "2026-12-01",
            "End_Date__c": "2027-03-31",
            "Terms_Approved__c": False,
        },
    )
    for role, hours in lines if lines is not None else [("Consultant", 80), ("Engagement Manager", 20)]:
        sf.insert(
            "OpportunityLineItem",
            {
                "OpportunityId": opp,
                "Role__c": role,
                "Quantity": float(hours),
                "UnitPrice": 180.0,
                "ServiceDate": "2026-12-01",
                "Description": f"{role} {hours} h",
            },
        )
    if won:
        sf.update("Opportunity", opp, {"StageName": "Closed Won", "Terms_Approved__c": approved})
    return account, opp


def worker_yaml(raw: dict[str, Any]) -> str:
    """A configuration as a worker process reads it, its API on any free port (tests that start
    workers run side by side, and the default port is one)."""
    return yaml.safe_dump({**raw, "api": {**raw.get("api", {}), "port": 0}})


def wait_for_flows(hub: Hub, expected: int, timeout: float = 60.0) -> dict[str, str]:
    """Wait until ``expected`` flow runs have settled; returns subject -> status."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = hub.read(
            lambda c: {s: st for s, st in c.execute(sa.select(flow_run.c.subject, flow_run.c.status))}
        )
        settled = [s for s in statuses.values() if s != "running"]
        if len(settled) >= expected and len(settled) == len(statuses):
            return statuses
        time.sleep(0.1)
    raise AssertionError(f"flows did not settle in {timeout}s: {statuses}")


def result_of(workflow_id: str) -> Any:
    """The result of a workflow, waiting for it."""
    return DBOS.retrieve_workflow(workflow_id).get_result()


# The billing fixture (a hub with Stripe, NetSuite receivables and the billing flows), shared by the billing tests.
from .billing_fixtures import cash  # noqa: E402, F401
