"""``q2c demo``: a generated firm in three sandboxes, deals closing over a
simulated month, the hub turning them into customers, projects and staffing
requests, and a summary of what it did.

What the demo does in the PSA (the firm's catalogue, the month's approved
work, milestone sign-offs) goes through the stack's
:class:`~quote2cash.cli.psa_side.PsaSide`, whichever PSA it is."""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quote2cash.cli.demo_billing import DemoBilling, bill_month, free_port
from quote2cash.cli.stacks import DEFAULT_STACK, Stack, StackSandboxes, cutover_routing
from quote2cash.config import load_config
from quote2cash.flows import launch_hub
from quote2cash.flows.intake import deliver, poll_closed_won
from quote2cash.flows.posting import post_now
from quote2cash.flows.reconcile_work import reconcile
from quote2cash.ops.shadow import where_posted
from quote2cash.runtime.hub import Hub
from quote2cash.runtime.logs import configure_logging
from quote2cash.sandbox._base import FaultInjector, FaultRule
from quote2cash.sandbox.firm import generate
from quote2cash.sandbox.seed import SANDBOX_ENV
from quote2cash.store import audit, cases, repo
from quote2cash.store.db import sqlite_url
from quote2cash.store.tables import audit_log, flow_run, kpi_sample, project_registry

DAYS = 10  # business days the simulated period closes deals over


@dataclass
class Plan:
    """Which deals close how, by simulated day."""

    days: list[list[tuple[str, str, bool]]]  # (opportunity id, stage, terms approved)
    won: int
    lost: int
    pending_terms: int


def plan_closings(opportunity_ids: list[str], rng: random.Random, must_win: set[str]) -> Plan:
    """About 75% won (a few without approved terms yet), 12% lost, the rest stay open.

    Deals in ``must_win`` (the deliberately bad records) are won, so the run shows each case.
    """
    ids = list(opportunity_ids)
    rng.shuffle(ids)
    days: list[list[tuple[str, str, bool]]] = [[] for _ in range(DAYS)]
    won = lost = pending = 0
    for i, opp in enumerate(ids):
        roll = 0.0 if opp in must_win else rng.random()
        if roll < 0.75:
            approved = opp in must_win or rng.random() > 0.04
            won += approved
            pending += not approved
            days[i % DAYS].append((opp, "Closed Won", approved))
        elif roll < 0.87:
            lost += 1
            days[i % DAYS].append((opp, "Closed Lost", False))
    return Plan(days, won, lost, pending)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Reads sent as POST (SuiteQL, SOQL, searches): not writes.
READ_PATHS = re.compile(r"suiteql|/query|/search")


class ReproducibleFaults(FaultInjector):
    """Fault rules whose draws come from the seed, the rule and the request's place on its path.

    A generator shared by every request hits whichever request comes next, so
    concurrent flows would see different faults on every run. Here the n-th
    request to a path (ids left out) is hit or not by a draw of its own: how
    many faults fire depends only on how many requests each path had. Only
    writes are hit: how often the hub polls or re-reads cached master data
    depends on timing, how many writes a month takes does not.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._seed = seed
        self._seen: Counter[str] = Counter()
        self._guard = threading.Lock()

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (and count it)."""
        if method.upper() not in WRITES or READ_PATHS.search(path):
            return None
        key = f"{method} {re.sub(r'/[^/]*[0-9][^/]*', '/{id}', path)}"
        with self._guard:
            self._seen[key] += 1
            for n, rule in enumerate(self.rules()):
                draw = random.Random(f"{self._seed}:{n}:{key}:{self._seen[key]}").random()
                if rule.matches(method, path) and draw < rule.probability:
                    rule.fired += 1
                    return rule
        return None


def _inject_faults(boxes: StackSandboxes, seed_value: int) -> None:
    # Real-world weather: throttling, server errors and a couple of timeouts on
    # writes that did land, so the summary shows retries with no duplicates.
    boxes.inject_faults(lambda: ReproducibleFaults(seed_value))


#: The legal entity still on the legacy file ERP in the default demo, and the day it cuts over
#: to NetSuite: its projects starting from then are created in NetSuite, earlier ones stay.
CUTOVER_ENTITY = "UK01"
CUTOVER = date(2026, 12, 15)


def _settled(hub: Hub) -> tuple[int, int, int]:
    def q(conn: sa.Connection) -> tuple[int, int, int]:
        rows: dict[str, int] = {
            str(status): int(n)
            for status, n in conn.execute(
                sa.select(flow_run.c.status, sa.func.count()).group_by(flow_run.c.status)
            )
        }
        return (
            int(rows.get("completed", 0)),
            int(rows.get("exception", 0) + rows.get("compensated", 0)),
            int(rows.get("running", 0)),
        )

    return hub.read(q)


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def summarise(
    hub: Hub, boxes: StackSandboxes, plan: Plan, redelivered: int, elapsed: float
) -> dict[str, Any]:
    """Figures a user reads after the run, from the hub database and the sandboxes."""
    completed, excepted, running = _settled(hub)

    def db(conn: sa.Connection) -> dict[str, Any]:
        actions = Counter(
            a
            for (a,) in conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.action.like("customer.%"))
            )
        )
        latencies = [
            float(v)
            for (v,) in conn.execute(
                sa.select(kpi_sample.c.value).where(kpi_sample.c.kpi == "closed_won_to_project_seconds")
            )
        ]
        chain = audit.verify(conn)
        return {
            "created": actions.get("customer.created", 0),
            "matched": actions.get("customer.matched", 0),
            "latencies": latencies,
            "exceptions": cases.counts_by_code(conn, "lead_to_project"),
            "open_cases": len(cases.list_cases(conn, status="open")),
            "inbox_duplicates": repo.inbox_duplicates(conn),
            "audit_entries": chain.entries,
            "audit_ok": chain.ok,
        }

    facts = hub.read(db)
    erp_projects = boxes.erp_projects()
    ext = Counter(boxes.erp_customers() + erp_projects)
    legacy_projects = len(boxes.legacy.records("project")) if boxes.legacy is not None else 0
    refs = Counter(boxes.psa.references())
    opps = boxes.deals()
    written_back = sum(1 for o in opps if o["erp_project_id"] and o["psa_project_id"])
    retries = hub.retries()
    lat = facts["latencies"]
    return {
        "stack": boxes.stack.name,
        "deals": len(opps),
        "deals_won": plan.won + plan.pending_terms,
        "deals_won_terms_approved": plan.won,
        "deals_awaiting_terms_approval": plan.pending_terms,
        "deals_lost": plan.lost,
        "flows_completed": completed,
        "flows_in_exception": excepted,
        "flows_unfinished": running,
        "customers_created": facts["created"],
        "customers_matched": facts["matched"],
        "projects_created_erp": len(erp_projects) + legacy_projects,
        "workspaces_created_psa": boxes.psa.projects(),
        "staffing_requests": boxes.psa.staffing_requests(),
        "ids_written_back": written_back,
        "exceptions_by_code": facts["exceptions"],
        "open_exception_cases": facts["open_cases"],
        "duplicates_prevented": facts["inbox_duplicates"],
        "duplicate_deliveries_sent": redelivered,
        "transient_errors_retried": retries,
        "duplicates_in_targets": sum(n - 1 for n in ext.values() if n > 1)
        + sum(n - 1 for n in refs.values() if n > 1),
        "latency_p50_s": round(_percentile(lat, 50) or 0.0, 3) if lat else None,
        "latency_p95_s": round(_percentile(lat, 95) or 0.0, 3) if lat else None,
        "audit_entries": facts["audit_entries"],
        "audit_chain_verified": facts["audit_ok"],
        "elapsed_s": round(elapsed, 1),
    }


WORK_MONTH = (2026, 10)  # the month being closed; September is already closed in the ERP


def run_month(
    hub: Hub, boxes: StackSandboxes, seed_value: int, workdir: Path, console: Console, quiet: bool
) -> dict[str, Any]:
    """A month of timesheets and expenses on the new projects, posted and reconciled.

    The month is drawn from the seed and each project's CRM reference, so it
    does not depend on the order in which the flows created the projects.
    """
    registered = hub.read(
        lambda c: {str(w) for (w,) in c.execute(sa.select(project_registry.c.psa_workspace_id))}
    )
    month = boxes.psa.seed_month(*WORK_MONTH, seed=seed_value, projects=registered)
    if not month.time_entries:
        return {}
    if not quiet:
        console.print(
            f"{WORK_MONTH[0]}-{WORK_MONTH[1]:02d}: {month.described} approved in the PSA; "
            "posting them to the ERP and reconciling…"
        )
    out: dict[str, Any] = {}
    period = f"{WORK_MONTH[0]}-{WORK_MONTH[1]:02d}"
    for kind in ("time", "expense"):
        result = post_now(kind)
        boxes.settle()  # the legacy ERP's import job answers the files written to it
        report = reconcile(hub, kind, period, out=workdir / "reconciliation")
        out[kind] = {
            "approved": month.time_entries if kind == "time" else month.expenses,
            "posted": result["valid"],
            "quarantined": result["quarantined"],
            "held_closed_period": result["held"],
            "quarantined_by_reason": result["quarantined_by_reason"],
            "erp_postings": result["postings_sent"],
            "erp_calls": result["erp_calls"],
            "posted_within_sla_pct": result.get("posted_within_sla_pct"),
            "approval_to_posted_p50_s": result.get("approval_to_posted_p50_s"),
            "approval_to_posted_p95_s": result.get("approval_to_posted_p95_s"),
            "reconciliation_lines_ok": sum(1 for line in report.lines if line.status == "ok"),
            "reconciliation_lines": len(report.lines),
            "reconciliation_breaks": report.counts(),
            "reconciliation_breaks_explained": sum(
                1 for b in report.breaks if ": quarantined:" in b.cause or ": held:" in b.cause
            ),
            "reconciliation_report": report.files[0] if report.files else None,
        }
    if boxes.legacy is not None:
        out["erp_routing"] = routing_summary(hub, period)
    return out


def routing_summary(hub: Hub, period: str) -> dict[str, Any]:
    """Where the cutover entity's projects and the month's postings went, ERP by ERP."""
    projects = hub.read(
        lambda c: Counter(
            str(erp)
            for (erp,) in c.execute(
                sa.select(project_registry.c.erp).where(project_registry.c.legal_entity == CUTOVER_ENTITY)
            )
        )
    )
    out: dict[str, Any] = {
        "legal_entity": CUTOVER_ENTITY,
        "cutover": CUTOVER.isoformat(),
        "projects_by_erp": dict(sorted(projects.items())),
    }
    for kind in ("time", "expense"):
        placed = where_posted(hub, kind, period)
        out[kind] = {
            f.erp: {"postings": f.postings, "entries": f.entries, "hours": f.hours, "projects": f.projects}
            for f in placed.by_erp
        }
        out[kind]["postings_in_more_than_one_erp"] = len(placed.in_several)
    return out


#: What ``--serve`` keeps running after the demo: the hub, the sandboxes and the API server.
_serving: list[Any] = []


def wait_serving() -> None:
    """Block until Ctrl-C or SIGTERM, then stop what ``--serve`` left running."""
    import signal

    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        while signal.sigtimedwait(signals, 1.0) is None:
            pass
    finally:
        for running in reversed(_serving):
            if isinstance(running, Hub):
                running.shutdown()
            else:
                running.stop()
        _serving.clear()


def run_demo(
    *,
    deals: int,
    seed_value: int,
    workdir: Path,
    console: Console,
    quiet: bool,
    faults: bool = True,
    serve_port: int | None = None,
    stack: Stack = DEFAULT_STACK,
) -> dict[str, Any]:
    """Run the whole demo; returns the summary.

    Closed-won deals reach the hub by webhook (the Salesforce sandbox's outbound
    messages, verified by the hub's API) and by a poll each simulated day; both
    feed the same inbox, so each deal is processed once. With ``serve_port`` the
    hub, the sandboxes and the console keep running (see :func:`wait_serving`),
    and the summary's ``console`` names the address and an admin token.

    ``stack`` picks the CRM, PSA and ERP sandboxes; with NetSuite the legacy file
    ERP joins, holding ``CUTOVER_ENTITY`` until ``CUTOVER``. Deals from another
    CRM than Salesforce reach the hub by the poll alone.
    """
    import secrets

    from quote2cash.api import ApiServer, create_app
    from quote2cash.ops import tokens
    from quote2cash.sandbox.salesforce.app import ORG_ID

    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    configure_logging("INFO", path=workdir / "hub.log")
    rng = random.Random(seed_value)
    firm = generate(seed_value, deals)
    legacy = stack.erp == "netsuite"
    boxes = StackSandboxes.open(stack, workdir / "sandboxes", seed=seed_value, legacy=legacy).start()
    hub: Hub | None = None
    server: ApiServer | None = None
    cash: DemoBilling | None = None
    api_port = serve_port or free_port()  # known before the hub starts: Stripe's endpoint names it
    keep = False
    try:
        seeded = boxes.seed(firm)
        if stack.erp == "netsuite":  # the ERP that keeps receivables: the month is billed through Stripe
            cash = DemoBilling.start(workdir / "sandboxes", seed_value, f"http://127.0.0.1:{api_port}")
        raw = boxes.config(sqlite_url(workdir / "hub.sqlite"))
        if legacy:
            raw["erp_routing"] = cutover_routing(CUTOVER_ENTITY, CUTOVER, "legacy")
        (workdir / "q2c.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        webhook_secret = secrets.token_hex(16)  # this run's only: the saved config needs no extra secret
        on_salesforce = stack.crm == "salesforce"
        hooks = (
            {"salesforce": {"secret_env": "Q2C_DEMO_SF_WEBHOOK_SECRET", "org_id": ORG_ID}}
            if on_salesforce
            else {}
        )
        raw["api"] = {"host": "127.0.0.1", "port": api_port, "webhooks": hooks}
        env = {**os.environ, **SANDBOX_ENV, "Q2C_DEMO_SF_WEBHOOK_SECRET": webhook_secret}
        if cash is not None:
            cash.configure(raw, env)
        config = load_config(data=raw, env=env)
        config.source = str(workdir / "q2c.yaml")
        hub = launch_hub(config)
        server = ApiServer(create_app(hub), host="127.0.0.1", port=api_port).start()
        messenger = (
            boxes.salesforce.register_webhook(f"{server.url}/webhooks/salesforce", webhook_secret)
            if on_salesforce
            else None
        )
        if faults:
            _inject_faults(boxes, seed_value)
        bad_deals = {
            seeded.opportunities[o["key"]]
            for o in firm.opportunities
            if o["key"] in firm.bad or o["account"] in firm.bad
        }
        plan = plan_closings(list(seeded.opportunities.values()), rng, bad_deals)
        if not quiet:
            console.print(
                f"[bold]quote2cash demo[/] — firm seed {seed_value}: {len(firm.accounts)} clients, "
                f"{deals} deals, {len(firm.consultants)} consultants, 5 legal entities, "
                f"{len(firm.erp_customers)} clients already in the ERP; stack {stack.name}."
            )
            if boxes.psa.intro:
                console.print(boxes.psa.intro)
            if legacy:
                console.print(
                    f"{CUTOVER_ENTITY} is still on the legacy file ERP and cuts over to NetSuite on "
                    f"{CUTOVER:%d %B %Y}: its projects starting before then stay on the legacy ERP."
                )
        redelivered = 0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as progress:
            days = progress.add_task("closing deals (simulated days)", total=len(plan.days))
            flows = progress.add_task("deals turned into projects", total=plan.won)
            won_so_far = 0
            for day in plan.days:
                for opp_id, stage, approved in day:
                    boxes.close_deal(opp_id, stage, approved)
                won_so_far += sum(1 for _, stage, approved in day if stage == "Closed Won" and approved)
                poll_closed_won(hub)
                # A webhook redelivers a few events the poller already accepted.
                for opp_id, stage, approved in day[:2]:
                    if stage == "Closed Won" and approved:
                        source = boxes.won_event(opp_id)
                        deliver(hub, source.source_event_id, source.event)
                        redelivered += 1
                progress.advance(days)
                # A day's deals settle before the next day's are won: they arrive a day at a time,
                # as in a firm, not all at once (the latency figures measure that).
                day_ends = time.monotonic() + 15
                while time.monotonic() < day_ends:
                    done, failed, _ = _settled(hub)
                    progress.update(flows, completed=done + failed)
                    if done + failed >= won_so_far:
                        break
                    time.sleep(0.05)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                done, failed, running = _settled(hub)
                progress.update(flows, completed=done + failed)
                if done + failed >= plan.won and running == 0:
                    break
                time.sleep(0.2)
        settle = time.monotonic() + 30
        while messenger is not None and messenger.pending() and time.monotonic() < settle:
            time.sleep(0.05)
        summary = summarise(hub, boxes, plan, redelivered, 0.0)
        summary["webhook_deliveries"] = (
            len({a.notification for a in messenger.attempts if a.ok}) if messenger is not None else 0
        )
        summary.update(run_month(hub, boxes, seed_value, workdir, console, quiet))
        if cash is not None:
            if not quiet:
                console.print("Billing December 2026 through Stripe: milestones, T&M, retainers, payments…")
            summary["billing"] = bill_month(hub, cash, boxes.psa, seed_value)
        elif not quiet:
            console.print(
                f"The month is not billed on this stack: the hub books receivables (invoices, payments) "
                f"in NetSuite only, and the ERP here is {stack.erp}."
            )
        summary["elapsed_s"] = round(time.monotonic() - started, 1)
        if serve_port is not None:
            _, token = tokens.create(
                hub, owner="demo operator", scopes=["admin"], actor="q2c demo", note="q2c demo --serve"
            )
            summary["console"] = {"url": f"{server.url}/console/", "token": token}
            _serving.extend([hub, *([cash] if cash is not None else []), boxes, server])
            keep = True
        return summary
    finally:
        if not keep:
            if server is not None:
                server.stop()
            if cash is not None:
                cash.stop()
            if hub is not None:
                hub.shutdown()
            boxes.stop()
