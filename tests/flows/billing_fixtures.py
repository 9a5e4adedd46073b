"""A hub with the Stripe sandbox as its billing system, its HTTP API taking Stripe's webhooks,
and deals to bill."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from quote2cash.api import ApiServer, create_app
from quote2cash.config import load_config
from quote2cash.flows import launch_hub, outbox
from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.posting import post_now
from quote2cash.model import to_minor
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes, billing_system
from quote2cash.sandbox.stripe import StripeSandbox
from quote2cash.sandbox.stripe.app import DEFAULT_KEY
from quote2cash.store.tables import billing_invoice, billing_schedule, flow_run, project_registry

from .conftest import _DISTINCT, FAST, _names

WEBHOOK_PATH = "/webhooks/stripe"
JPY_RATES = {"Consultant": "25000", "Engagement Manager": "45000", "Senior Consultant": "33333"}


@dataclass
class Cash:
    """A launched hub billing through the Stripe sandbox, with its API (Stripe's webhooks go to
    ``webhook_url``) and the sandboxes."""

    hub: Hub
    boxes: Sandboxes
    stripe: StripeSandbox
    api: ApiServer
    secret: str
    #: The hub's configuration as loaded from YAML, and the environment it reads (for worker processes).
    raw: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        """Where Stripe sends its deliveries: the hub's webhook route."""
        return f"{self.api.url}{WEBHOOK_PATH}"

    def users(self) -> dict[str, str]:
        """PSA user id by role (a consultant of each role the tests bill is added once)."""
        kt = self.boxes.kantata
        found = {str(u["headline"]): str(u["id"]) for u in kt.records("users")}
        for role in ("Consultant", "Engagement Manager", "Senior Consultant", "Partner", "Analyst"):
            if role not in found:
                slug = role.lower().replace(" ", ".")
                found[role] = str(kt.add_user(f"Test {role}", f"{slug}@northwind.example", role))
        return found

    def deal(
        self,
        billing: str,
        *,
        currency: str = "USD",
        amount: float = 48000.0,
        entity: str | None = None,
        region: str = "North America",
        start: str = "2026-12-01",
        end: str = "2027-03-31",
    ) -> str:
        """A won deal with approved terms; returns the opportunity id once its project is scheduled."""
        n = next(_names)
        sf = self.boxes.salesforce
        account = sf.insert(
            "Account",
            {
                "Name": f"{_DISTINCT[n % len(_DISTINCT)]} {n} Holdings",
                "Website": f"https://billing{n}.example.com",
                "Region__c": region,
                "CurrencyIsoCode": currency,
                "Payment_Terms__c": "Net 30",
                "BillingCountry": "US",
            },
        )
        fields = {
            "AccountId": account,
            "Name": f"{_DISTINCT[n % len(_DISTINCT)]} {n} — {billing}",
            "StageName": "Negotiation/Review",
            "CloseDate": "2026-11-20",
            "Amount": amount,
            "CurrencyIsoCode": currency,
            "Billing_Model__c": billing,
            "Practice__c": "Technology",
            "Start_Date__c": start,
            "End_Date__c": end,
            "Terms_Approved__c": False,
        }
        if entity:
            fields["Legal_Entity__c"] = entity
        opp = sf.insert("Opportunity", fields)
        sf.update("Opportunity", opp, {"StageName": "Closed Won", "Terms_Approved__c": True})
        return opp

    def activate(self, opps: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Run lead-to-project and the billing schedules of these deals; returns their projects."""
        poll_closed_won(self.hub)
        self.settle(timeout)
        outbox.relay(self.hub)
        self.settle(timeout)
        projects = self.hub.read(
            lambda c: {r["canonical_id"]: dict(r) for r in c.execute(sa.select(project_registry)).mappings()}
        )
        runs = self.hub.read(
            lambda c: {
                (f, s): st
                for f, s, st in c.execute(sa.select(flow_run.c.flow, flow_run.c.subject, flow_run.c.status))
            }
        )
        for opp in opps:
            assert runs.get(("lead_to_project", f"Opportunity/{opp}")) == "completed", runs
            assert runs.get(("schedule_billing", f"Opportunity/{opp}")) == "completed", runs
        return {o: projects[o] for o in opps}

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until no flow run is running."""
        import time

        deadline = time.monotonic() + timeout
        time.sleep(0.2)
        while time.monotonic() < deadline:
            running = self.hub.read(
                lambda c: c.execute(
                    sa.select(sa.func.count()).where(flow_run.c.status == "running")
                ).scalar_one()
            )
            queued = self.hub.read(_queued)
            if not running and not queued:
                return
            time.sleep(0.1)
        raise AssertionError("flows did not settle")

    def time(
        self, project: dict[str, Any], role: str, minutes: int, day: str, *, approve: bool = True
    ) -> str:
        """A billable time entry on the project's first task."""
        ws = str(project["psa_workspace_id"])
        task = next(
            str(s["id"])
            for s in self.boxes.kantata.records("stories")
            if str(s["workspace_id"]) == ws and s["story_type"] == "task"
        )
        (entry,) = self.boxes.kantata.add_time_entries(
            [
                {
                    "workspace_id": ws,
                    "story_id": task,
                    "user_id": self.users()[role],
                    "date_performed": day,
                    "time_in_minutes": minutes,
                    "billable": True,
                    "rate_in_cents": to_minor(
                        self.hub.config.rate_cards[f"STD-{project['currency']}"].rates[role],
                        project["currency"],
                    ),
                    "currency": project["currency"],
                    "approved": approve,
                }
            ]
        )
        return str(entry)

    def post_time(self) -> dict[str, Any]:
        """One posting run of approved time (it fills the hub's ledger of approved work)."""
        return post_now("time")

    def invoices(self, project: str | None = None) -> list[dict[str, Any]]:
        """The hub's invoices (of one project), oldest key first."""
        q = sa.select(billing_invoice).order_by(billing_invoice.c.key)
        if project is not None:
            q = q.where(billing_invoice.c.project == project)
        return [dict(r) for r in self.hub.read(lambda c: list(c.execute(q).mappings()))]

    def schedule(self, project: str) -> dict[str, Any]:
        """A project's billing schedule."""
        return dict(
            self.hub.read(
                lambda c: (
                    c.execute(sa.select(billing_schedule).where(billing_schedule.c.project == project))
                    .mappings()
                    .one()
                )
            )
        )


def _queued(conn: sa.Connection) -> int:
    try:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM dbos.workflow_status WHERE status IN ('ENQUEUED', 'PENDING')"
                    if conn.dialect.name == "postgresql"
                    else "SELECT count(*) FROM workflow_status WHERE status IN ('ENQUEUED', 'PENDING')"
                )
            ).scalar_one()
        )
    except sa.exc.DBAPIError:
        return 0


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_japan(boxes: Sandboxes, raw: dict[str, Any]) -> None:
    """A Japanese legal entity invoicing in yen (a zero-decimal currency), in the ERP and the config."""
    ns = boxes.netsuite
    sub = ns.add_subsidiary("Northwind Japan KK", currency="JPY", country="JP")
    raw["legal_entities"]["JP01"] = {
        "name": "Northwind Japan KK",
        "country": "JP",
        "base_currency": "JPY",
        "allowed_currencies": ["JPY"],
        "tax_regions": ["JP"],
        "payment_terms": ["Net 30", "Net 45", "Net 60"],
        "erp_subsidiary": str(sub),
    }
    raw["rate_cards"]["STD-JPY"] = {"currency": "JPY", "rates": JPY_RATES}


@pytest.fixture
def cash(db_url: str, boxes: Sandboxes, tmp_path: Path) -> Iterator[Cash]:
    """The hub, the Stripe sandbox delivering its webhooks to the hub's API."""
    stripe = StripeSandbox(tmp_path / "stripe.sqlite", seed=3)
    stripe.start()
    port = free_port()
    endpoint = httpx.post(
        f"{stripe.url}/v1/webhook_endpoints",
        headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
        data={"url": f"http://127.0.0.1:{port}{WEBHOOK_PATH}", "enabled_events[]": "*"},
    ).json()
    raw = boxes.config(db_url)
    raw["systems"]["billing"] = billing_system(stripe.url)
    add_japan(boxes, raw)
    env = {**SANDBOX_ENV, "Q2C_TEST_STRIPE_WHSEC": endpoint["secret"]}
    # The worker processes some tests start read ``raw``: they bill and post, and take no webhooks.
    served = {**raw, "api": {"port": port, "webhooks": {"stripe": {"secret_env": "Q2C_TEST_STRIPE_WHSEC"}}}}
    hub = launch_hub(load_config(data=served, env=env), retry=FAST)
    api = ApiServer(create_app(hub), port=port).start()
    try:
        yield Cash(hub, boxes, stripe, api, endpoint["secret"], raw, env)
    finally:
        stripe.webhooks.stop()
        api.stop()
        hub.shutdown()
        stripe.stop()
        stripe.store.close()
