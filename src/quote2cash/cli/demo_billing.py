"""The cash half of ``q2c demo``: the Stripe sandbox as the billing system, and the demo month billed.

:class:`DemoBilling` starts the Stripe sandbox beside the other sandboxes and
registers the hub's webhook route (``/webhooks/stripe`` of its HTTP API) with it; :func:`bill_month` then hands the
activated projects to billing (schedules, the subscription), signs off the
first milestone of every milestone project in the PSA, books one retainer's
overage, bills the month, pays some invoices and declines one payment, and
waits for the webhooks to come back. What it does in the PSA goes through the
stack's :class:`~quote2cash.cli.psa_side.PsaSide`. Every choice follows the seed and the
CRM's ids (never the order in which flows ran), so a seed gives the same figures.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from quote2cash.cli.psa_side import PsaSide
from quote2cash.flows import outbox
from quote2cash.flows.billing.milestones import poll_milestones
from quote2cash.flows.billing.periods import bill_now
from quote2cash.flows.posting import post_now
from quote2cash.model import to_minor
from quote2cash.ops.billing import kpis
from quote2cash.ports import ErpReceivables
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import billing_system
from quote2cash.sandbox.stripe import StripeSandbox
from quote2cash.sandbox.stripe.app import DEFAULT_KEY
from quote2cash.store.tables import billing_invoice, billing_schedule, flow_run

#: The hub's route for Stripe's deliveries.
WEBHOOK_PATH = "/webhooks/stripe"
#: The month the demo bills: every project has started by its end.
BILLING_PERIOD = "2026-12"
#: The variable the demo's hub reads the webhook endpoint's signing secret from (this run's only).
SECRET_ENV = "Q2C_DEMO_STRIPE_WHSEC"
#: The day billing is looked at: the billing month has closed.
AS_OF = date(2027, 1, 1)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoBilling:
    """The Stripe sandbox of a demo run and the webhook endpoint it delivers to."""

    stripe: StripeSandbox
    secret: str

    @classmethod
    def start(cls, folder: Path, seed: int, api_url: str) -> DemoBilling:
        """Serve the Stripe sandbox, with an endpoint delivering to the hub's API at ``api_url``."""
        stripe = StripeSandbox(folder / "stripe.sqlite", seed=seed)
        stripe.start()
        endpoint = httpx.post(
            f"{stripe.url}/v1/webhook_endpoints",
            headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
            data={"url": f"{api_url}{WEBHOOK_PATH}", "enabled_events[]": "*"},
        ).json()
        return cls(stripe, str(endpoint["secret"]))

    def configure(self, raw: dict[str, Any], env: dict[str, str]) -> None:
        """Add the Stripe sandbox to a hub config (``systems.billing``), its webhooks to the
        config's ``api.webhooks``, and the endpoint's signing secret to the environment."""
        raw["systems"]["billing"] = billing_system(self.stripe.url)
        raw.setdefault("api", {}).setdefault("webhooks", {})["stripe"] = {"secret_env": SECRET_ENV}
        env[SECRET_ENV] = self.secret

    def stop(self) -> None:
        """Stop the deliveries and the sandbox."""
        self.stripe.webhooks.stop()
        self.stripe.stop()
        self.stripe.store.close()


def _busy(conn: sa.Connection) -> int:
    """Flow runs running, and workflows still queued or pending in the engine's own table."""
    running = int(conn.execute(sa.select(sa.func.count()).where(flow_run.c.status == "running")).scalar_one())
    table = "dbos.workflow_status" if conn.dialect.name == "postgresql" else "workflow_status"
    queued = conn.execute(
        sa.text(f"SELECT count(*) FROM {table} WHERE status IN ('ENQUEUED', 'PENDING')")
    ).scalar_one()
    return running + int(queued)


def settle(hub: Hub, billing: DemoBilling, timeout: float = 90.0) -> None:
    """Wait until the webhooks are delivered and no flow is queued or runs, for a second."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 5:
        quiet = quiet + 1 if not hub.read(_busy) and not billing.stripe.webhooks.pending() else 0
        time.sleep(0.2)


def _schedules(hub: Hub) -> list[dict[str, Any]]:
    return hub.read(
        lambda c: [
            dict(r)
            for r in c.execute(sa.select(billing_schedule).order_by(billing_schedule.c.project)).mappings()
        ]
    )


def _sign_off_milestones(psa: PsaSide, schedules: list[dict[str, Any]]) -> int:
    """Sign off the first milestone of every milestone and fixed-fee project in the PSA."""
    return psa.sign_off_first_milestones(
        str(s["psa_workspace_id"]) for s in schedules if s["model"] in ("milestone", "fixed_fee")
    )


def _retainer_overage(hub: Hub, psa: PsaSide, schedules: list[dict[str, Any]]) -> str | None:
    """Approved billable time beyond the first retainer's monthly fee; returns its project."""
    retainer = next(
        (
            s
            for s in schedules
            if s["model"] == "retainer"
            and s["period_minor"]
            and isinstance(hub.erp(s["erp"]), ErpReceivables)  # billed where the ERP takes the invoice
        ),
        None,
    )
    if retainer is None:
        return None
    currency, ws = str(retainer["currency"]), str(retainer["psa_workspace_id"])
    card = hub.config.rate_cards.get(str(retainer["rate_card"] or f"STD-{currency}"))
    if card is None or "Partner" not in card.rates:
        return None
    rate = to_minor(card.rates["Partner"], currency)
    hours = int(retainer["period_minor"]) // rate + 8  # a working day beyond what the fee covers
    first = date.fromisoformat(f"{BILLING_PERIOD}-07")
    days = [(first + timedelta(days=n), 60 * share) for n, share in enumerate(_split(hours)[:21])]
    if not psa.book_time(ws, "Partner", days, rate, currency):
        return None
    return str(retainer["project"])


def _split(hours: int, per_day: int = 8) -> list[int]:
    return [min(per_day, hours - i) for i in range(0, hours, per_day)]


def _pay(billing: DemoBilling, hub: Hub, seed: int) -> tuple[int, int]:
    """Decline one payment (the first T&M invoice by project), pay about half of the others.

    Each invoice's draw comes from the seed and what it bills (project, kind,
    period) alone: not from ids the billing system drew, nor from which other
    invoices are open.
    """
    issued = sorted(
        hub.read(
            lambda c: [
                (f"{project}:{kind}:{period}", str(kind), str(sid))
                for project, kind, period, sid in c.execute(
                    sa.select(
                        billing_invoice.c.project,
                        billing_invoice.c.kind,
                        billing_invoice.c.period,
                        billing_invoice.c.billing_id,
                    ).where(billing_invoice.c.status == "open", billing_invoice.c.billing_id.is_not(None))
                )
            ]
        )
    )
    declined = next((sid for _, kind, sid in issued if kind == "time_and_materials"), None)
    paid = 0
    for stable, _, sid in issued:
        if sid == declined:
            with contextlib.suppress(Exception):  # the sandbox answers a declined card with Stripe's 402
                billing.stripe.pay(sid, succeed=False)
        elif random.Random(f"{seed}:pay:{stable}").random() < 0.5:
            billing.stripe.pay(sid)
            paid += 1
    return paid, int(declined is not None)


def bill_month(hub: Hub, billing: DemoBilling, psa: PsaSide, seed: int) -> dict[str, Any]:
    """Schedules, milestone sign-offs, one retainer overage, the month's run, payments; the figures."""
    outbox.relay(hub)  # projects activated by lead-to-project become billing schedules
    settle(hub, billing)
    schedules = _schedules(hub)
    if _retainer_overage(hub, psa, schedules) is not None:
        post_now("time")  # the hub's ledger of approved work gets the retainer's time
    _sign_off_milestones(psa, schedules)
    poll_milestones(hub)
    settle(hub, billing)
    run = bill_now(BILLING_PERIOD)
    billing.stripe.advance(2 * 3600)  # Stripe finalizes the subscriptions' first invoices an hour on
    settle(hub, billing)
    paid, declined = _pay(billing, hub, seed)
    settle(hub, billing)
    figures = kpis(hub, as_of=AS_OF)
    cycle = figures["invoice_cycle"]
    models = sorted({str(s["model"]) for s in _schedules(hub)})
    return {
        "billing_schedules": len(schedules),
        "billing_models": models,
        "billing_run_status": run["status"],
        "invoices_sent": figures["invoices_sent"],
        "invoices_by_status": figures["invoices_by_status"],
        "invoices_failed": run.get("failed", 0),
        "billed_by_currency": figures["billed_by_currency"],
        "payments_made": paid,
        "payments_declined": declined,
        "payments_failed": figures["payments_failed"],
        "received_by_currency": figures["received_by_currency"],
        "leakage_by_currency": figures["leakage"]["by_currency"],
        "leakage_projects": len(figures["leakage"]["projects"]),
        "invoice_cycle_p50_s": cycle["p50_s"],
        "invoice_cycle_p95_s": cycle["p95_s"],
    }


__all__ = ["AS_OF", "BILLING_PERIOD", "SECRET_ENV", "DemoBilling", "bill_month", "settle"]
