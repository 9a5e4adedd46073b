"""The ``q2c`` command line: each command parses its arguments, calls one
service in :mod:`quote2cash.ops` and prints what it returned."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import sys
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from quote2cash.cli import config_check, exceptions
from quote2cash.cli._common import (
    DEMO_DIR,
    ConfigOpt,
    JsonOpt,
    MaybeConfigOpt,
    console,
    err,
    exit_code,
    load,
    open_hub,
    refuse,
    reported,
)
from quote2cash.errors import HubError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="quote2cash — CRM, PSA and ERP, linked.")
sandbox_app = typer.Typer(no_args_is_help=True, help="Local vendor sandboxes.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
workers_app = typer.Typer(no_args_is_help=True, help="Hub worker processes.")
retention_app = typer.Typer(no_args_is_help=True, help="Retention of stored payloads.")
shadow_app = typer.Typer(
    no_args_is_help=True, help="ERP coexistence: the shadow ERP against the system of record."
)
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens for the HTTP API and the console.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(exceptions.app, name="exceptions")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(workers_app, name="workers")
app.add_typer(shadow_app, name="shadow")
app.add_typer(config_check.app, name="config")


def _version() -> str:
    try:
        return package_version("quote2cash")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"q2c (quote2cash) {_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """quote2cash — CRM, PSA and ERP, linked."""


# -- demo -----------------------------------------------------------------------------
def figures_table(title: str, rows: list[tuple[str, Any]], counts: dict[str, int], prefix: str) -> Table:
    """A two-column table of figures, then counts by code (``prefix: code``); None shows as a dash."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, "—" if value is None else str(value))
    for code, n in sorted(counts.items()):
        table.add_row(f"  {prefix}: {code}", str(n))
    return table


#: What each PSA calls the records the demo counts: its projects, and the time the hub posts one by one.
PSA_NOUNS = {"kantata": ("Workspaces", "Time entries"), "certinia": ("Projects", "Timecard days")}


def _psa_nouns(summary: dict[str, Any]) -> tuple[str, str]:
    """The PSA's nouns for a demo summary (from its ``stack``, ``crm,psa,erp``)."""
    psa = str(summary.get("stack") or "salesforce,kantata,netsuite").split(",")[1]
    return PSA_NOUNS.get(psa, ("Projects", "Time entries"))


def render_summary(summary: dict[str, Any]) -> Table:
    """The demo's closing table."""
    rows = [
        ("Deals in the CRM", summary["deals"]),
        ("Deals won (terms approved)", summary["deals_won_terms_approved"]),
        ("Deals won, awaiting terms approval (not started)", summary["deals_awaiting_terms_approval"]),
        ("Deals lost", summary["deals_lost"]),
        ("Flows completed", summary["flows_completed"]),
        ("Flows stopped on an exception", summary["flows_in_exception"]),
        ("Customers created in the ERP", summary["customers_created"]),
        ("Customers matched to existing ERP records", summary["customers_matched"]),
        ("Projects created in the ERP", summary["projects_created_erp"]),
        (f"{_psa_nouns(summary)[0]} created in the PSA", summary["workspaces_created_psa"]),
        ("Staffing requests raised", summary["staffing_requests"]),
        ("Deals with every id written back to the CRM", summary["ids_written_back"]),
        ("Duplicate deliveries prevented", summary["duplicates_prevented"]),
        ("Transient vendor errors retried", summary["transient_errors_retried"]),
        ("Duplicates in any target system", summary["duplicates_in_targets"]),
        ("Closed-won → project latency p50 (s; a day's deals won together)", summary["latency_p50_s"]),
        ("Closed-won → project latency p95 (s; with injected vendor faults)", summary["latency_p95_s"]),
        (
            "Audit entries (hash chain verified)",
            f"{summary['audit_entries']} ({'ok' if summary['audit_chain_verified'] else 'BROKEN'})",
        ),
    ]
    return figures_table("What the hub just did", rows, summary["exceptions_by_code"], "exception")


def render_work(kind: str, figures: dict[str, Any], time_noun: str = "Time entries") -> Table:
    """The demo's table for posted time or expenses (``time_noun``: what the PSA's time is counted in)."""
    label = time_noun if kind == "time" else "Expenses"
    breaks = figures["reconciliation_breaks"]
    rows = [
        (f"{label} approved", figures["approved"]),
        ("Posted", figures["posted"]),
        ("Quarantined (exception cases)", figures["quarantined"]),
        ("Held: closed accounting period", figures["held_closed_period"]),
        ("ERP postings (summary journals)", figures["erp_postings"]),
        ("ERP calls", figures["erp_calls"]),
        ("Posted within SLA (%)", figures["posted_within_sla_pct"]),
        (
            "Approval → posted p50 / p95 (s)",
            f"{figures['approval_to_posted_p50_s']} / {figures['approval_to_posted_p95_s']}",
        ),
        (
            "Reconciliation: project lines that agree",
            f"{figures['reconciliation_lines_ok']} of {figures['reconciliation_lines']}",
        ),
        ("Reconciliation breaks", ", ".join(f"{k} {v}" for k, v in sorted(breaks.items())) or "none"),
        ("  of which explained by quarantined or held entries", figures["reconciliation_breaks_explained"]),
    ]
    title = f"{label}: approved in the PSA → posted to the ERP → reconciled"
    return figures_table(title, rows, figures["quarantined_by_reason"], "quarantined")


def _amounts(by_currency: dict[str, Any]) -> str:
    return ", ".join(f"{cur} {amount}" for cur, amount in sorted(by_currency.items())) or "none"


def render_billing(billing: dict[str, Any]) -> Table:
    """The demo's table of the month billed through the billing system."""
    rows = [
        (
            "Billing schedules (by model)",
            f"{billing['billing_schedules']} ({', '.join(billing['billing_models'])})",
        ),
        ("Invoices sent", billing["invoices_sent"]),
        ("Invoices that failed (cases)", billing["invoices_failed"]),
        ("Billed", _amounts(billing["billed_by_currency"])),
        ("Payments received", f"{billing['payments_made']} ({_amounts(billing['received_by_currency'])})"),
        ("Payments declined", billing["payments_declined"]),
        ("Billing leakage (approved, not invoiced)", _amounts(billing["leakage_by_currency"])),
        (
            "Invoice cycle time p50 / p95 (s)",
            f"{billing['invoice_cycle_p50_s']} / {billing['invoice_cycle_p95_s']}",
        ),
    ]
    return figures_table(
        "Billing: invoiced, paid and leaked", rows, billing["invoices_by_status"], "invoices"
    )


def render_routing(routing: dict[str, Any]) -> Table:
    """The demo's table of where the cutover entity's projects and the month's postings went."""
    table = Table(
        title=f"ERP coexistence: {routing['legal_entity']} moves from the legacy file ERP to the cloud ERP "
        f"on {routing['cutover']}",
        show_header=True,
        header_style="bold",
    )
    erps = sorted(
        {e for kind in ("time", "expense") for e in routing[kind] if isinstance(routing[kind][e], dict)}
    )
    table.add_column("figure")
    for erp in erps:
        table.add_column(erp, justify="right")
    projects = routing["projects_by_erp"]
    table.add_row(f"{routing['legal_entity']} projects", *(str(projects.get(e, 0)) for e in erps))
    for kind, label in (("time", "Time"), ("expense", "Expenses")):
        cells = [routing[kind].get(e, {}) for e in erps]
        table.add_row(
            f"{label}: postings (entries)",
            *(f"{c.get('postings', 0)} ({c.get('entries', 0)})" for c in cells),
        )
        if kind == "time":
            table.add_row(f"{label}: hours", *(str(c.get("hours", "0.00")) for c in cells))
        table.add_row(
            f"{label}: postings held by more than one ERP",
            str(routing[kind]["postings_in_more_than_one_erp"]),
        )
    return table


@app.command()
def demo(
    deals: Annotated[int, typer.Option(help="opportunities to generate (≥ 1)", min=1)] = 200,
    seed: Annotated[
        int, typer.Option(help="random seed: the same seed and --deals give the same figures on every run")
    ] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files (emptied first)")] = DEMO_DIR,
    faults: Annotated[bool, typer.Option(help="inject vendor throttling, errors and timeouts")] = True,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="afterwards, keep the console running on the demo's data until Ctrl-C"),
    ] = False,
    port: Annotated[int, typer.Option(help="the console's port with --serve (0: any free port)")] = 8780,
    stack: Annotated[
        str,
        typer.Option(
            help="CRM,PSA,ERP sandboxes: salesforce|hubspot, kantata|certinia, netsuite|business_central "
            "(bc); Certinia lives in the CRM's Salesforce org (with HubSpot, in an org of its own); "
            "with NetSuite, one legal entity starts on the legacy file ERP and cuts over mid-month, "
            "and the month is billed through Stripe"
        ),
    ] = "salesforce,kantata,netsuite",
) -> None:
    """Run the quote-to-cash demo on sandboxes and print what the hub did.

    Only the wall-clock figures (elapsed time, latencies, the share posted
    within the SLA) change from one run to the next.
    """
    from quote2cash.cli.demo import run_demo
    from quote2cash.cli.stacks import Stack

    with reported():
        summary = run_demo(
            deals=deals, seed_value=seed, workdir=workdir, console=console, quiet=as_json, faults=faults,
            serve_port=port if serve else None, stack=Stack.parse(stack),
        )  # fmt: skip
    if as_json:
        print(json.dumps(summary, sort_keys=True))
        if serve:
            _serve_demo(summary)
        return
    console.print(render_summary(summary))
    for kind in ("time", "expense"):
        if kind in summary:
            console.print(render_work(kind, summary[kind], _psa_nouns(summary)[1]))
    if "erp_routing" in summary:
        console.print(render_routing(summary["erp_routing"]))
    if "billing" in summary:
        console.print(render_billing(summary["billing"]))
    console.print(
        f"Finished in {summary['elapsed_s']} s. Inspect the exception queue with "
        f"[bold]q2c exceptions list --config {workdir / 'q2c.yaml'}[/]; structured logs are in "
        f"{workdir / 'hub.log'}."
    )
    if serve:
        _serve_demo(summary)


def _serve_demo(summary: dict[str, Any]) -> None:
    """Print the console's address and token, then keep it running until Ctrl-C or SIGTERM."""
    served = summary.get("console") or {}
    console.print(
        f"Console: [bold]{served.get('url')}[/] — log in with the token {served.get('token')} "
        "(or send it as 'Authorization: Bearer …' to the API). Ctrl-C stops.",
        soft_wrap=True,
    )
    from quote2cash.cli.demo import wait_serving

    wait_serving()


# -- run --------------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOpt,
    once: Annotated[bool, typer.Option(help="poll once, finish the started flows, and exit")] = False,
) -> None:
    """Run the hub against the systems named in a config file."""
    import quote2cash.flows.billing  # noqa: F401  (declares the billing flows before the hub launches)
    from quote2cash.flows import launch_hub
    from quote2cash.flows.intake import poll_closed_won
    from quote2cash.runtime.logs import configure_logging

    with reported():
        cfg = load(config)
    with reported(cfg.hub.database_url, config):
        configure_logging(cfg.hub.log_level)
        hub = launch_hub(cfg)
    from quote2cash.flows.schedules import install_schedules

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    for line in install_schedules(hub):
        err.print(f"schedule: {line}")
    server = None
    if cfg.api.enabled:
        from quote2cash.api import serve as serve_api

        with reported():
            try:
                server = serve_api(hub)
            except RuntimeError as exc:
                hub.shutdown()
                refuse(f"{exc}: port {cfg.api.port} on {cfg.api.host} (api.port in {config})")
        err.print(f"API and console on {server.url} (webhooks at {server.url}/webhooks/<source>)")
    err.print(
        f"hub running (executor {cfg.executor_id}, version {cfg.hub.application_version}); Ctrl-C stops"
    )
    housekeeping_due = changes_due = time.monotonic()
    try:
        while not stop["now"]:
            if time.monotonic() >= housekeeping_due:
                _housekeeping(hub)
                housekeeping_due = time.monotonic() + HOUSEKEEPING_SECONDS
            changes = time.monotonic() >= changes_due or once
            if changes:
                changes_due = time.monotonic() + BILLING_CHANGES_SECONDS
            _billing_poll(hub, changes=changes)
            try:
                result = poll_closed_won(hub)
                if result.accepted:
                    err.print(
                        f"accepted {result.accepted} closed-won deal(s), dispatched {result.dispatched}"
                    )
            except HubError as exc:
                err.print(f"[yellow]poll failed, will retry[/]: {escape(str(exc))}")
            if once:
                _wait_idle(hub)
                break
            time.sleep(cfg.hub.poll_interval_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        _housekeeping(hub, prune=False)
        hub.shutdown()


#: How often ``q2c run`` reads the billing system's invoice changes that no webhook brought.
BILLING_CHANGES_SECONDS = 60


def _billing_poll(hub: Any, *, changes: bool) -> None:
    """Hand activated projects to billing, bill signed-off milestones, and (``changes``) read
    the invoice changes no webhook brought."""
    if not hub.config.players("billing"):
        return
    from quote2cash.flows import outbox
    from quote2cash.flows.billing import poll_milestones
    from quote2cash.flows.intake import poll_billing

    try:
        outbox.relay(hub)
        poll_milestones(hub)
        found = poll_billing(hub) if changes else None
        if found is not None and found.accepted:
            err.print(f"accepted {found.accepted} invoice change(s) no webhook had brought")
    except HubError as exc:
        err.print(f"[yellow]billing poll failed, will retry[/]: {escape(str(exc))}")


#: How often ``q2c run`` prunes payloads past their retention age and anchors the audit head.
HOUSEKEEPING_SECONDS = 24 * 3600


def _housekeeping(hub: Any, *, prune: bool = True) -> None:
    """Prune payloads past their age (daily) and anchor the audit chain's head outside the database."""
    from quote2cash.ops import audit, retention

    try:
        if prune:
            pruned = retention.prune(hub)
            if pruned.inbox_payloads or pruned.case_payloads:
                err.print(
                    f"retention: pruned {pruned.inbox_payloads} inbox and {pruned.case_payloads} case "
                    f"payload(s) older than {pruned.cutoff:%Y-%m-%d}"
                )
        audit.anchor(hub)
    except (HubError, OSError) as exc:
        err.print(f"[yellow]housekeeping failed, will retry[/]: {escape(str(exc))}")


def _wait_idle(hub: Any, timeout: float = 300) -> None:
    """Wait until no flow is queued or running, then say what happened."""
    from dbos import DBOS

    from quote2cash.cli.demo import _settled

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = DBOS.list_workflows(
            status=["ENQUEUED", "PENDING"], load_input=False, load_output=False, name="run_flow"
        )
        if not busy:
            break
        time.sleep(0.2)
    done, failed, running = _settled(hub)
    err.print(f"flows: {done} completed, {failed} stopped on an exception case, {running} unfinished")


# -- time and expenses -------------------------------------------------------------------
@app.command()
def post(
    kind: Annotated[str, typer.Argument(help="time or expenses")],
    now: Annotated[
        bool, typer.Option("--now", help="run one micro-batch now instead of waiting for the schedule")
    ] = False,
    config: MaybeConfigOpt = None,
) -> None:
    """Post approved time or expenses to the ERP (the scheduled micro-batch, on demand)."""
    from quote2cash.ops import _args, posting

    with reported():
        _args.work_kind(kind)
    if not now:
        refuse("posting runs on its schedule inside `q2c run`; pass --now to run one batch here")
    with reported(), open_hub(config, launch=True) as hub:
        result = posting.post_now(hub, kind)
    console.print_json(json.dumps(result, default=str))


@app.command()
def reconcile(
    kind: Annotated[str, typer.Argument(help="time or expenses")],
    period: Annotated[str, typer.Option(help="the month, YYYY-MM (e.g. 2026-10)")],
    out: Annotated[Path, typer.Option(help="folder for the CSV and JSON reports")] = Path("reconciliation"),
    config: MaybeConfigOpt = None,
) -> None:
    """Compare PSA approved with ERP posted for a month (``time``, ``expenses``), billing with ERP
    invoices (``billing``), or CRM closed-won deals with PSA projects (``projects``)."""
    from quote2cash.ops import _args, reconciliation

    if kind in ("billing", "projects"):
        _reconcile_cash(kind, period, out, config)
        return
    with reported():
        _args.work_kind(kind)
        _args.period(period)
    with reported(), open_hub(config) as hub:
        report = reconciliation.reconcile(hub, kind, period, out=out)
    explained = len(report.breaks) - len(report.unexplained)
    title = f"Reconciliation of {kind} for {period}: {len(report.unexplained)} break(s)"
    table = Table(title=title + (f", {explained} explained by open cases" if explained else ""))
    for col in ("break", "project", "legal entity", "amount", "cause", "explained by"):
        table.add_column(col, overflow="fold")
    for b in report.breaks:
        by = ", ".join(f"case {c}" for c in b.explained_by)
        table.add_row(b.kind, b.project, b.legal_entity, b.amount, escape(b.cause), by or "—")
    console.print(table)
    ok = sum(1 for line in report.lines if line.status == "ok")
    console.print(f"{ok} of {len(report.lines)} project lines reconcile; reports: {', '.join(report.files)}")
    if report.unexplained:
        raise typer.Exit(1)


def _reconcile_cash(kind: str, period: str, out: Path, config: Path | None) -> None:
    from quote2cash.ops import _args
    from quote2cash.ops import billing as billing_ops

    with reported():
        _args.period(period)
    with reported(), open_hub(config) as hub:
        report = billing_ops.reconcile(hub, kind, period, out=out)
    table = Table(title=f"Reconciliation of {kind} for {period}: {len(report.breaks)} break(s)")
    for col in ("break", "record", "amount", "cause"):
        table.add_column(col, overflow="fold")
    for b in report.breaks:
        table.add_row(b.kind, b.record, b.amount, escape(b.cause))
    console.print(table)
    console.print(f"{report.cases_opened} case(s) opened; reports: {', '.join(report.files)}")
    if report.breaks:
        raise typer.Exit(1)


@app.command()
def bill(
    period: Annotated[str, typer.Option(help="the month to bill, YYYY-MM (e.g. 2026-12)")],
    config: MaybeConfigOpt = None,
) -> None:
    """Bill a month now: signed-off milestones, then T&M and retainer time not yet invoiced."""
    from quote2cash.ops import _args
    from quote2cash.ops import billing as billing_ops

    with reported():
        _args.period(period)
    with reported(), open_hub(config, launch=True) as hub:
        result = billing_ops.bill(hub, period)
    console.print_json(json.dumps(result, default=str))


@shadow_app.command("report")
def shadow_report(
    period: Annotated[str, typer.Option(help="the month, YYYY-MM (e.g. 2026-10)")],
    kind: Annotated[str, typer.Option(help="time, expenses, or all")] = "all",
    out: Annotated[Path, typer.Option(help="folder for the CSV and JSON reports")] = Path("reconciliation"),
    config: MaybeConfigOpt = None,
) -> None:
    """Compare the shadow ERP with the system of record, per project, for a month."""
    from quote2cash.ops import _args, shadow

    with reported():
        kinds = ["time", "expense"] if kind == "all" else [_args.work_kind(kind)]
        _args.period(period)
    differences = 0
    with reported(), open_hub(config) as hub:
        reports = [shadow.shadow_report(hub, k, period, out=out) for k in kinds]
    for report in reports:
        table = Table(
            title=f"Shadow ERP {report.shadow} against the system of record: {report.kind} {period}, "
            f"{len(report.differences)} difference(s)"
        )
        for col in (
            "project",
            "record ERP",
            "postings",
            "amount",
            "shadow postings",
            "shadow amount",
            "status",
        ):
            table.add_column(col, overflow="fold")
        for ln in report.lines:
            table.add_row(
                ln.project,
                ln.record_erp or "—",
                str(ln.record_count),
                ln.record_amount,
                str(ln.shadow_count),
                ln.shadow_amount,
                ln.status,
            )
        console.print(table)
        for d in report.differences:
            console.print(
                f"  {d.kind}: project {d.project}, posting {escape(d.key)} ({d.record or '—'} / {d.shadow or '—'})"
            )
        console.print(f"reports: {', '.join(report.files)}")
        differences += len(report.differences)
    if differences:
        raise typer.Exit(1)


# -- sandboxes ----------------------------------------------------------------------------
@sandbox_app.command("up")
def sandbox_up(
    folder: Annotated[Path, typer.Option(help="where the sandboxes keep their files")] = Path(
        ".q2c/sandboxes"
    ),
    deals: Annotated[int, typer.Option(help="opportunities of the generated firm", min=1)] = 200,
    seed: Annotated[int, typer.Option(help="random seed of the firm")] = 7,
    port: Annotated[int, typer.Option(help="first port: Salesforce, Kantata, NetSuite follow")] = 8701,
    won: Annotated[int, typer.Option(help="deals closed-won with approved terms on first start", min=0)] = 20,
    month: Annotated[
        str | None,
        typer.Option(
            help="also seed this month (YYYY-MM) of approved timesheets and expenses on the projects "
            "the hub creates, so posting and reconciliation can be tried",
            show_default=False,
        ),
    ] = None,
    master_data_only: Annotated[
        bool,
        typer.Option(
            "--master-data-only",
            help="on first start seed only master data (clients, ERP set-up, consultants, templates): no deals",
        ),
    ] = False,
) -> None:
    """Start the Salesforce, Kantata and NetSuite sandboxes (seeded on first start) and wait.

    Writes the hub config for them to FOLDER/q2c.yaml (its database is FOLDER/hub.sqlite).
    """
    import dataclasses

    import yaml

    from quote2cash.ops._args import period
    from quote2cash.sandbox.firm import generate
    from quote2cash.sandbox.seed import Sandboxes
    from quote2cash.sandbox.seed import seed as seed_firm
    from quote2cash.store.db import sqlite_url

    with reported():
        if month is not None:
            period(month)
    names = ("Salesforce", "Kantata", "NetSuite")
    ports = (port, port + 1, port + 2)
    for name, p in zip(names, ports, strict=True):
        if not _port_free(p):
            refuse(
                f"port {p} on 127.0.0.1 (for the {name} sandbox) is already in use; stop what uses it "
                f"(another `q2c sandbox up`?) or pass --port N to use ports N to N+2"
            )
    with reported():
        fresh = not (folder / "salesforce.sqlite").exists()
        try:
            boxes = Sandboxes.open(folder, seed=seed)
        except sqlite3.DatabaseError as exc:
            refuse(
                f"the sandbox files in {folder} cannot be opened ({exc}); remove the folder to start afresh"
            )
        if fresh:
            firm = generate(seed, deals)
            if master_data_only:
                firm = dataclasses.replace(firm, opportunities=[], lines={})
            seeded = seed_firm(firm, boxes)
            for opp in list(seeded.opportunities.values())[:won]:
                boxes.salesforce.update(
                    "Opportunity", opp, {"StageName": "Closed Won", "Terms_Approved__c": True}
                )
        try:
            boxes.start(ports)
        except RuntimeError as exc:
            boxes.stop()
            refuse(f"{exc}; check that ports {port} to {port + 2} are free, or pass --port")
        cfg_path = folder / "q2c.yaml"
        database = sqlite_url((folder / "hub.sqlite").resolve())
        cfg_path.write_text(yaml.safe_dump(boxes.config(database), sort_keys=False))
    console.print(
        f"Salesforce {boxes.salesforce.url}\nKantata    {boxes.kantata.url}\nNetSuite   {boxes.netsuite.url}"
    )
    console.print(
        f"hub config for these sandboxes: {cfg_path}  (run: q2c run --config {cfg_path})", soft_wrap=True
    )
    if fresh and won and not master_data_only:
        console.print(f"{won} deals are closed-won with approved terms, waiting for the hub")
    if month is not None:
        console.print(f"{month}: timesheets and expenses are seeded once the hub has created the projects")
    try:
        _serve(boxes, month, seed, cfg_path)
    except KeyboardInterrupt:
        pass
    finally:
        boxes.stop()


def _port_free(port: int) -> bool:
    """Whether a port on loopback can be bound (an OSError on bind means it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(boxes: Any, month: str | None, seed: int, cfg_path: Path) -> None:
    """Wait for Ctrl-C or SIGTERM; seed ``month`` once the hub's projects have stopped appearing."""
    from quote2cash.sandbox.firm import rate_cards
    from quote2cash.sandbox.timesheets import seed_month

    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    seen, steady = -1, 0
    while True:
        if signal.sigtimedwait(signals, 1.0) is not None:
            return
        if month is None:
            continue
        year, mm = (int(x) for x in month.split("-"))
        if any(e["date_performed"].startswith(month) for e in boxes.kantata.records("time_entries")):
            console.print(f"{month} already has time entries; nothing more to seed")
            month = None
            continue
        count = len(boxes.kantata.records("workspaces"))
        steady = steady + 1 if count == seen and count > 0 else 0
        seen = count
        if steady < 3:  # three quiet seconds: the hub has finished creating projects
            continue
        seeded = seed_month(boxes.kantata, rate_cards(), year, mm, seed=seed)
        console.print(
            f"{month}: {len(seeded.time_entries)} time entries and {len(seeded.expenses)} expenses approved "
            f"on {count} project(s). Try: q2c post time --now --config {cfg_path}; "
            f"q2c reconcile time --period {month} --config {cfg_path}",
            soft_wrap=True,
        )
        month = None


# -- workers, audit, KPIs, error codes ------------------------------------------------------
@workers_app.command("recover")
def workers_recover(
    executor: Annotated[str, typer.Option(help="executor id of the worker that is gone for good")],
    config: MaybeConfigOpt = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the recovered flows")] = 600,
) -> None:
    """Take over the unfinished flows of a worker that will not come back, and finish them here.

    A worker recovers only its own unfinished flows when it restarts; this
    moves another executor's flows to this one.
    """
    from quote2cash.ops import workers

    with reported(), open_hub(config, launch=True) as hub:
        recovered = workers.recover(hub, executor, timeout)
    console.print(f"recovering {len(recovered)} unfinished workflow(s) of executor {executor}")
    for r in recovered:
        console.print(f"  {r.workflow_id}: {r.status}")


@audit_app.command("verify")
def audit_verify(config: MaybeConfigOpt = None) -> None:
    """Check the audit chain with its key and against its anchors; report the first broken entry."""
    from quote2cash.ops import audit

    with reported(), open_hub(config) as hub:
        report = audit.verify(hub)
    if report.ok:
        anchored = (
            f", {report.anchors} anchor(s) up to entry {report.anchored_seq} agree" if report.anchors else ""
        )
        console.print(f"audit chain ok: {report.entries} entries{anchored}")
        return
    err.print(f"[red]audit chain broken at entry {report.broken_at}[/]: {report.reason}")
    raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(config: MaybeConfigOpt = None) -> None:
    """Append the chain's committed head (seq and hash) to the anchor file (audit.anchor_file) now."""
    from quote2cash.ops import audit

    with reported(), open_hub(config) as hub:
        written = audit.anchor(hub)
        where = hub.config.audit.anchor_file
    if written is None:
        console.print(f"audit head already anchored (or the chain is empty) in {where}")
        return
    console.print(f"anchored audit entry {written.seq} in {where}")


@retention_app.command("prune")
def retention_prune(
    days: Annotated[
        int | None,
        typer.Option(
            help="prune payloads older than this many days (default: retention.payload_days)", min=1
        ),
    ] = None,
    config: MaybeConfigOpt = None,
) -> None:
    """Prune inbox and closed cases' payloads past their retention age (q2c run does it daily)."""
    from quote2cash.ops import retention

    with reported(), open_hub(config) as hub:
        report = retention.prune(hub, days=days)
    if report.cutoff is None:
        console.print("retention is off (retention.payload_days: null): nothing pruned")
        return
    console.print(
        f"pruned {report.inbox_payloads} inbox payload(s) and {report.case_payloads} closed case "
        f"payload(s) older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
    )


@tokens_app.command("create")
def tokens_create(
    owner: Annotated[
        str, typer.Option(help="the person or system that will use it (named in the audit trail)")
    ],
    scope: Annotated[
        list[str], typer.Option("--scope", help="read, operate, admin or webhook:<source>; repeat for more")
    ],
    note: Annotated[str | None, typer.Option(help="what the token is for")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="the token stops working after this")] = None,
    config: MaybeConfigOpt = None,
    actor: Annotated[str, typer.Option(help="who creates it, as the audit trail records")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; its text is printed once and never stored."""
    from quote2cash.cli._common import DEFAULT_ACTOR
    from quote2cash.ops import tokens

    with reported(), open_hub(config) as hub:
        made, text = tokens.create(
            hub, owner=owner, scopes=scope, actor=actor or DEFAULT_ACTOR, note=note,
            expires_in_days=expires_in_days,
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps({**made.as_dict(), "token": text}, sort_keys=True))
        return
    console.print(f"token {made.id} for {made.owner} ({', '.join(made.scopes)}); keep it, it is shown once:")
    typer.echo(text)


@tokens_app.command("list")
def tokens_list(
    config: MaybeConfigOpt = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="include revoked tokens")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (never their secrets)."""
    from quote2cash.ops import tokens

    with reported(), open_hub(config) as hub:
        found = tokens.list_tokens(hub, include_revoked=revoked)
    if as_json:
        typer.echo(json.dumps([t.as_dict() for t in found], sort_keys=True))
        return
    table = Table(title=f"{len(found)} API token(s)")
    for col in ("id", "owner", "scopes", "created", "expires", "last used", "revoked"):
        table.add_column(col)
    for t in found:
        d = t.as_dict()
        table.add_row(
            t.id, t.owner, ", ".join(t.scopes), str(d["created_at"])[:19], str(d["expires_at"] or "—")[:19],
            str(d["last_used_at"] or "—")[:19], str(d["revoked_at"] or "—")[:19],
        )  # fmt: skip
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id (the part after q2c_)")],
    config: MaybeConfigOpt = None,
    actor: Annotated[str, typer.Option(help="who revokes it, as the audit trail records")] = "",
) -> None:
    """Revoke an API token at once."""
    from quote2cash.cli._common import DEFAULT_ACTOR
    from quote2cash.ops import tokens

    with reported(), open_hub(config) as hub:
        tokens.revoke(hub, token_id, actor=actor or DEFAULT_ACTOR)
    console.print(f"token {token_id} revoked")


@app.command()
def kpis(config: MaybeConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Business KPIs: closed-won → project latency, posting SLA and latency, open cases by owner."""
    from quote2cash.ops import kpis as kpi_service

    with reported(), open_hub(config) as hub:
        figures = kpi_service.summary(hub)
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, indent=2))
        return
    console.print(render_kpis(figures))


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "s":
        return f"{value:.3f} s"
    return str(int(value)) if float(value).is_integer() else str(value)


def render_kpis(figures: dict[str, Any]) -> Table:
    """The KPI summary as a table of labelled figures with their units."""
    table = Table(title="Business KPIs", header_style="bold")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    won = figures["closed_won_to_project"]
    table.add_row("Deals turned into projects", _num(won["deals"]))
    table.add_row("Closed-won → project latency p50", _num(won["p50_s"], "s"))
    table.add_row("Closed-won → project latency p95", _num(won["p95_s"], "s"))
    for kind, label in (("time", "Time entries"), ("expense", "Expenses")):
        run = figures.get(kind)
        if run is None:
            table.add_row(f"{label}: last posting run", "none yet")
            continue
        table.add_row(f"{label} posted in the last run", _num(run.get("posted_entries")))
        table.add_row(f"{label} posted within SLA", _num(run.get("posted_within_sla_pct"), "%"))
        table.add_row(f"{label}: approval → posted p50", _num(run.get("approval_to_posted_p50_s"), "s"))
        table.add_row(f"{label}: approval → posted p95", _num(run.get("approval_to_posted_p95_s"), "s"))
        for key, n in sorted(run.items()):
            if key.startswith("quarantined."):
                table.add_row(f"  quarantined: {key.split('.', 1)[1]}", _num(n))
    table.add_row("Field writes refused by ownership", _num(figures["ownership_refused_fields"]))
    table.add_row("Open exception cases", _num(figures["open_cases"]))
    for owner, codes in sorted(figures["open_cases_by_owner"].items()):
        for code, n in sorted(codes.items()):
            table.add_row(f"  owner {owner}: {code}", _num(n))
    return table


@app.command("errors")
def errors(
    code: Annotated[str | None, typer.Option(help="only codes starting with this prefix, e.g. case.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", hidden=True, help="print docs/errors.md")] = False,
) -> None:
    """The catalogue of error codes: owner, whether retried, HTTP status and meaning."""
    from quote2cash.ops import catalogue

    if markdown:
        sys.stdout.write(catalogue.markdown())
        return
    found = catalogue.entries(code)
    if as_json:
        typer.echo(json.dumps([catalogue.as_dict(e) for e in found], indent=2))
        return
    table = Table(title=f"{len(found)} error code(s)")
    for col in ("code", "owner", "retryable", "HTTP", "meaning"):
        table.add_column(col, overflow="fold")
    for e in found:
        table.add_row(
            e.code, str(e.owner), "yes" if e.retryable else "no", str(e.http_status), escape(e.meaning)
        )
    console.print(table)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="folder for the JSON Schema files")] = Path("schemas"),
) -> None:
    """Write the JSON Schemas of the canonical model."""
    from quote2cash.model import SCHEMA_MODELS

    out.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMA_MODELS.items():
        (out / f"{name}.schema.json").write_text(json.dumps(model.model_json_schema(), indent=2))
    console.print(f"wrote {len(SCHEMA_MODELS)} schemas to {out}/")


def main() -> None:
    """Entry point of ``q2c``."""
    try:
        app()
    except HubError as exc:  # raised outside a command's own handling
        err.print(f"[red]error[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exit_code(exc))
