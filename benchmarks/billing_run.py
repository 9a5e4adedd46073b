"""Billing run: a month's T&M billing (F7) for 2,000 projects through Stripe, settled in the ERP.

Run ``python benchmarks/billing_run.py --projects 2000``. A child process (this
file with ``--serve``) seeds the Stripe, NetSuite, Kantata and Salesforce
sandboxes in memory and serves them on loopback; this process fills the hub's
tables as lead-to-project, the billing schedules and the posting run would have
left them (projects, T&M schedules, approved billable time of December 2026)
and times one ``bill_now("2026-12")``: plan and lock the time, then per project
one Stripe invoice (created with its idempotency key, lines, finalized, sent),
one AR invoice in the ERP, and billed to date written back to the CRM and the
PSA. See benchmarks/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from harness import (
    Child,
    add_run_options,
    append_results,
    commit,
    count_diff,
    cpu_self,
    machine,
    phases,
    print_table,
    results_block,
    sandbox_stats,
    start_run,
    verdict,
)

from quote2cash.sandbox.firm import ENTITIES, ROLES, rate_cards
from quote2cash.sandbox.timesheets import business_days

PERIOD = "2026-12"
SEED = 2026
ACTIVE = [e for e in ENTITIES if not e.inactive]  # projects are spread over the active entities
PROJECTS_PER_CLIENT = 4
USERS_PER_ROLE = 3


# -- what is billed: generated the same way in both processes ----------------------------------------
def clients(projects: int) -> int:
    """Clients (CRM accounts, ERP and Stripe customers) for this many projects."""
    return (projects + PROJECTS_PER_CLIENT - 1) // PROJECTS_PER_CLIENT


def entity_of(client: int) -> Any:
    """The legal entity (and so the currency) of a client and its projects."""
    return ACTIVE[client % len(ACTIVE)]


def work(projects: int) -> list[list[tuple[str, str, int]]]:
    """Per project, its approved billable time: (role, day, minutes), minutes a multiple of 30."""
    rng = random.Random(SEED)
    days = [d.isoformat() for d in business_days(2026, 12)]
    out = []
    for _ in range(projects):
        roles = rng.sample(ROLES, rng.randint(2, 3))
        out.append(
            [
                (role, rng.choice(days), 30 * rng.randint(2, 16))
                for role in roles
                for _ in range(rng.randint(3, 6))
            ]
        )
    return out


# -- the child: the sandboxes ------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    """Seed the four sandboxes in memory, print one ``READY {json}`` line, answer ``report`` lines."""
    from quote2cash.sandbox.kantata import KantataSandbox
    from quote2cash.sandbox.netsuite import NetSuiteSandbox
    from quote2cash.sandbox.salesforce import SalesforceSandbox
    from quote2cash.sandbox.stripe import StripeSandbox

    started = time.perf_counter()
    n_clients = clients(args.projects)
    ns, kt = NetSuiteSandbox(None, seed=SEED), KantataSandbox(None, seed=SEED)
    sf, stripe = SalesforceSandbox(None, seed=SEED), StripeSandbox(None, seed=SEED)
    currency_ids = {e.currency: ns.add_currency(e.currency) for e in ENTITIES}
    # Subsidiaries in the entities' order: the sandbox hub config names them 1, 2, …
    subsidiaries = {
        e.code: ns.add_subsidiary(e.name, currency=e.currency, country=e.country, inactive=e.inactive)
        for e in ENTITIES
    }
    for year in (2026, 2027):
        for month in range(1, 13):
            ns.add_period(year, month, closed=(year, month) < (2026, 11))
    for role in ROLES:
        kt.add_role(role)
    users = {
        role: [
            kt.add_user(f"{role} {j}", f"{role.lower().replace(' ', '.')}.{j}@bill.example", role)
            for j in range(USERS_PER_ROLE)
        ]
        for role in ROLES
    }
    accounts = sf.insert_many(
        "Account",
        [
            {
                "Name": f"Billing Client {c:05d}",
                "Website": f"https://client{c:05d}.example.com",
                "CurrencyIsoCode": entity_of(c).currency,
                "Region__c": entity_of(c).region,
            }
            for c in range(n_clients)
        ],
    )
    opportunities = sf.insert_many(
        "Opportunity",
        [
            {
                "AccountId": accounts[p // PROJECTS_PER_CLIENT],
                "Name": f"Billing Project {p:05d}",
                "StageName": "Closed Won",
                "CloseDate": "2026-11-20",
                "CurrencyIsoCode": entity_of(p // PROJECTS_PER_CLIENT).currency,
                "Billing_Model__c": "Time & Materials",
            }
            for p in range(args.projects)
        ],
    )
    erp_customers, stripe_customers = [], []
    with stripe.store.lock:
        for c in range(n_clients):
            e = entity_of(c)
            ref = {"subsidiary": {"id": subsidiaries[e.code]}, "currency": {"id": currency_ids[e.currency]}}
            erp_customers.append(ns.add_customer({"companyName": f"Billing Client {c:05d}", **ref}))
            stripe_customers.append(
                stripe.billing.create_customer(
                    {"name": f"Billing Client {c:05d}", "metadata": {"q2c_external_id": accounts[c]}}
                )["id"]
            )
    jobs, workspaces = [], []
    for p in range(args.projects):
        e = entity_of(p // PROJECTS_PER_CLIENT)
        jobs.append(
            ns.book.create(
                "job",
                {
                    "companyName": f"Billing Project {p:05d}",
                    "parent": {"id": erp_customers[p // PROJECTS_PER_CLIENT]},
                    "subsidiary": {"id": subsidiaries[e.code]},
                    "currency": {"id": currency_ids[e.currency]},
                },
            )
        )
        workspaces.append(
            kt.add_workspace(
                {
                    "title": f"Billing Project {p:05d}",
                    "currency": e.currency,
                    "start_date": "2026-12-01",
                    "status": "Active",
                }
            )
        )
    for box in (stripe, ns, kt, sf):
        box.start()
    ready = {
        "stripe": stripe.url,
        "netsuite": ns.url,
        "kantata": kt.url,
        "salesforce": sf.url,
        "users": users,
        "accounts": accounts,
        "opportunities": opportunities,
        "erp_customers": erp_customers,
        "stripe_customers": stripe_customers,
        "jobs": jobs,
        "workspaces": workspaces,
        "subsidiaries": subsidiaries,
        "seed_s": round(time.perf_counter() - started, 2),
    }
    print("READY " + json.dumps(ready), flush=True)
    for line in sys.stdin:  # until EOF: the parent closed the pipe, or died
        if line.strip() == "report":
            print("REPORT " + json.dumps(report(stripe, ns)), flush=True)


def report(stripe: Any, ns: Any) -> dict[str, Any]:
    """What Stripe and the ERP hold after the run: invoices by the hub's key, AR invoices by external id."""
    keyed = [i for i in stripe.objects("invoice") if (i.get("metadata") or {}).get("q2c_key")]
    billed: dict[str, int] = defaultdict(int)
    for i in keyed:
        billed[str(i["currency"]).upper()] += int(i["total"])
    ar = [r for r in ns.records("invoice") if r.get("custbody_q2c_billing")]
    per_key = Counter(str(i["metadata"]["q2c_key"]) for i in keyed)
    per_ext = Counter(str(r.get("externalId")) for r in ar)
    return {
        "stripe_invoices": len(keyed),
        "stripe_by_status": dict(Counter(str(i["status"]) for i in keyed)),
        "stripe_max_per_key": max(per_key.values(), default=0),
        "stripe_lines": sum(len(i["lines"]["data"]) for i in keyed),
        "stripe_billed_minor": dict(billed),
        "ar_invoices": len(ar),
        "ar_max_per_external_id": max(per_ext.values(), default=0),
        "ar_for_stripe_invoices": len({i["id"] for i in keyed} & set(per_ext)),
    }


# -- the parent: the hub's tables, the run, the figures ----------------------------------------------
def hub_raw_config(info: dict[str, Any], database_url: str) -> dict[str, Any]:
    """The sandbox hub configuration, with the Stripe sandbox as the billing system."""
    from quote2cash.sandbox.seed import billing_system, hub_config

    raw = hub_config(info["salesforce"], info["kantata"], info["netsuite"], database_url)
    raw["systems"]["billing"] = billing_system(info["stripe"])
    return raw


def hub_rows(info: dict[str, Any], projects: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The rows lead-to-project, the billing schedules and posting leave, and the minor units to bill."""
    now = datetime.now(UTC)
    cards = rate_cards()
    registry, schedules, entries = [], [], []
    expected: dict[str, int] = defaultdict(int)
    n = 0
    for p, items in enumerate(work(projects)):
        client = p // PROJECTS_PER_CLIENT
        e = entity_of(client)
        project, workspace = info["opportunities"][p], info["workspaces"][p]
        common = {"customer_id": info["accounts"][client], "currency": e.currency, "legal_entity": e.code}
        registry.append(
            {
                "canonical_id": project,
                "name": f"Billing Project {p:05d}",
                "psa_workspace_id": workspace,
                "erp_job_id": info["jobs"][p],
                "customer_erp_id": info["erp_customers"][client],
                "subsidiary": info["subsidiaries"][e.code],
                "billing_model": "time_and_materials",
                "rate_card": f"STD-{e.currency}",
                "start_date": date(2026, 12, 1),
                "updated_at": now,
                **common,
            }
        )
        schedules.append(
            {
                "project": project,
                "model": "time_and_materials",
                "billing_customer": info["stripe_customers"][client],
                "psa_workspace_id": workspace,
                "start_date": date(2026, 12, 1),
                "end_date": date(2027, 3, 31),
                "rate_card": f"STD-{e.currency}",
                "created_at": now,
                **common,
            }
        )
        for role, day, minutes in items:
            n += 1
            rate = int(cards[e.currency][role]) * 100
            user = info["users"][role][n % USERS_PER_ROLE]
            entries.append(
                {
                    "kind": "time",
                    "source_id": f"TE-{n:07d}",
                    "version": now.isoformat(),
                    "approved": True,
                    "workspace_id": workspace,
                    "user_id": user,
                    "work_date": date.fromisoformat(day),
                    "minutes": minutes,
                    "amount_minor": rate * minutes // 60,
                    "rate_minor": rate,
                    "currency": e.currency,
                    "billable": True,
                    "seen_at": now,
                    "status": "assigned",  # posted to the ERP as revenue by the posting run
                }
            )
            expected[e.currency] += rate * minutes // 60  # minutes are multiples of 30: exact
    return {"registry": registry, "schedules": schedules, "entries": entries}, dict(expected)


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests per endpoint during the run, ids folded (``/v1/invoices/{id}/finalize``)."""
    out: dict[str, int] = defaultdict(int)
    for key, count in count_diff(before, after).items():
        shape = re.sub(r"/[a-z]{2,5}_[A-Za-z0-9]+", "/{id}", key)  # Stripe ids: in_…, cus_…
        shape = re.sub(r"/(eid:[^/]+|\d+)(?=[/.?]|$)", "/{id}", shape)  # numeric and external ids
        out[shape] += count
    return dict(out)


def run_hub(args: argparse.Namespace, info: dict[str, Any], child: Child, workdir: Path) -> dict[str, Any]:
    """Fill the hub's tables, time ``bill_now``; returns the figures."""
    from dbos import DBOS

    import quote2cash.flows.billing  # noqa: F401  (declares the billing workflows before the hub launches)
    from quote2cash.config import load_config
    from quote2cash.flows import launch_hub
    from quote2cash.flows.billing.periods import bill_now, run_id_now
    from quote2cash.sandbox.seed import SANDBOX_ENV
    from quote2cash.store.db import sqlite_url
    from quote2cash.store.tables import billing_schedule, project_registry, work_entry

    raw = hub_raw_config(info, sqlite_url(workdir / "hub.sqlite"))
    hub = launch_hub(load_config(data=raw, env={**os.environ, **SANDBOX_ENV}))
    try:
        rows, expected = hub_rows(info, args.projects)
        with hub.engine.begin() as conn:
            conn.execute(project_registry.insert(), rows["registry"])
            conn.execute(billing_schedule.insert(), rows["schedules"])
            conn.execute(work_entry.insert(), rows["entries"])
        urls = {k: info[k] for k in ("stripe", "netsuite", "kantata", "salesforce")}
        before = {k: sandbox_stats(u) for k, u in urls.items()}
        cpu0, child0, run_id = cpu_self(), child.cpu_s(), run_id_now(PERIOD)
        epoch0, started = time.time(), time.perf_counter()
        result = bill_now(PERIOD, run_id)
        wall = time.perf_counter() - started
        figures: dict[str, Any] = {
            "wall_s": wall,
            "hub_cpu_s": cpu_self() - cpu0,
            "sandbox_cpu_s": child.cpu_s() - child0,
            "result": result,
            "entries": len(rows["entries"]),
            "expected_minor": expected,
            "calls": {k: _delta(before[k], sandbox_stats(u)) for k, u in urls.items()},
            "phases": phases(DBOS.list_workflow_steps(run_id, load_output=False), epoch0, epoch0 + wall),
        }
    finally:
        hub.shutdown()
    figures["records"] = child.command("report", "REPORT")
    return figures


def rows_of(args: argparse.Namespace, f: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target verdict) rows of the report."""
    r, rec, calls = f["result"], f["records"], f["calls"]
    issued = int(r.get("issued", 0)) or 1
    rate = int(r.get("issued", 0)) / f["wall_s"]
    stripe_calls = sum(calls["stripe"].values())
    erp_calls = sum(calls["netsuite"].values())
    ar_posts = sum(
        n for k, n in calls["netsuite"].items() if k.startswith(("PUT", "POST")) and "/invoice/" in k
    )
    billed = {c: v for c, v in sorted(rec["stripe_billed_minor"].items())}
    totals_ok = billed == dict(sorted(f["expected_minor"].items()))

    rows = [
        ("projects (T&M, one billing schedule each)", f"{args.projects:,}", ""),
        ("approved billable time entries of the period", f"{f['entries']:,}", ""),
        ("run status", str(r.get("status")), ""),
        (
            "invoices planned / issued / failed",
            f"{r.get('invoices_planned', 0):,} / {r.get('issued', 0):,} / {r.get('failed', 0):,}",
            "",
        ),
        ("time entries locked", f"{r.get('entries_locked', 0):,}", ""),
        ("wall time of bill_now", f"{f['wall_s']:.1f} s", ""),
        ("invoices/s", f"{rate:.1f}", ""),
    ]
    rows += [(f"  phase: {name}", f"{secs:.2f} s", "") for name, secs in f["phases"]]
    rows += [
        ("hub CPU (user+sys)", f"{f['hub_cpu_s']:.1f} s", ""),
        ("sandboxes CPU (user+sys)", f"{f['sandbox_cpu_s']:.1f} s", ""),
        ("Stripe calls per invoice", f"{stripe_calls / issued:.2f}", ""),
        ("  Stripe invoice lines per invoice", f"{rec['stripe_lines'] / issued:.2f}", ""),
        (
            "ERP postings (AR invoices) per invoice",
            f"{rec['ar_invoices'] / issued:.2f}",
            verdict(rec["ar_invoices"] == r.get("issued"), "1"),
        ),
        ("  ERP AR invoice writes (PUT by external id) per invoice", f"{ar_posts / issued:.2f}", ""),
        ("  ERP calls per invoice (all)", f"{erp_calls / issued:.2f}", ""),
        ("CRM calls per invoice", f"{sum(calls['salesforce'].values()) / issued:.2f}", ""),
        ("PSA calls per invoice", f"{sum(calls['kantata'].values()) / issued:.2f}", ""),
        (
            "duplicates (Stripe invoices per key / AR invoices per external id, max)",
            f"{rec['stripe_max_per_key']} / {rec['ar_max_per_external_id']}",
            verdict(rec["stripe_max_per_key"] <= 1 and rec["ar_max_per_external_id"] <= 1, "1 / 1"),
        ),
        (
            "Stripe invoices with their AR invoice",
            f"{rec['ar_for_stripe_invoices']:,} of {rec['stripe_invoices']:,}",
            "",
        ),
        (
            "billed in Stripe = approved time at rate-card rates, per currency",
            "yes" if totals_ok else f"NO: {billed} vs {f['expected_minor']}",
            verdict(totals_ok, "equal"),
        ),
        ("sandbox seeding (not measured)", f"{f['seed_s']:.0f} s", ""),
    ]
    return rows


def endpoint_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """Calls per invoice by endpoint, every system."""
    issued = int(f["result"].get("issued", 0)) or 1
    return [
        (f"{system}: {shape}", f"{n / issued:.2f}")
        for system, shapes in f["calls"].items()
        for shape, n in sorted(shapes.items(), key=lambda kv: -kv[1])
    ]


def markdown(args: argparse.Namespace, f: dict[str, Any], argv: list[str]) -> str:
    """The block appended to the results file."""
    rows, facts = rows_of(args, f), machine()
    body = [
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Python {facts['python']}, "
        f"{facts['os']}. Hub database: SQLite file (embedded default). Code at commit `{commit()}` "
        "(uncommitted changes are not recorded).",
        "",
        "| figure | value | target |",
        "| --- | ---: | --- |",
        *(f"| {n.strip()} | {v} | {t} |" for n, v, t in rows),
        "",
        "Calls per invoice by endpoint:",
        "",
        "| endpoint | per invoice |",
        "| --- | ---: |",
        *(f"| `{e}` | {v} |" for e, v in endpoint_rows(f)),
        "",
    ]
    return results_block(f"T&M billing of {PERIOD} for {args.projects:,} projects", argv, body)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    p.add_argument("--projects", type=int, default=2000, help="T&M projects billed in the run")
    add_run_options(p, "where the hub database goes (default: a temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --serve, be the sandboxes' process)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        serve(args)
        return 0
    from quote2cash.runtime.logs import configure_logging

    workdir, owned = start_run(args.workdir, "q2c-billing-")
    (workdir / "hub.sqlite").unlink(missing_ok=True)
    configure_logging("INFO", path=workdir / "hub.log")
    print(f"billing run: {args.projects:,} T&M projects, period {PERIOD}; workdir {workdir}", flush=True)
    child = Child(__file__, [f"--projects={args.projects}"])
    try:
        info = child.ready()
        print(f"sandboxes ready in {info['seed_s']:.0f} s; billing…", flush=True)
        figures = run_hub(args, info, child, workdir)
        figures["seed_s"] = info["seed_s"]
    finally:
        child.stop()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(rows_of(args, figures))
    print("\ncalls per invoice by endpoint:")
    for endpoint, per in endpoint_rows(figures):
        print(f"  {per:>6}  {endpoint}")
    if args.results:
        append_results(args.results, markdown(args, figures, sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
