"""Month-end storm: a month of approved time (default 1,000,000 entries) posted to the ERP in one run.

Run ``python benchmarks/month_end_storm.py --entries 1000000``. A child process
(this file with ``--serve``) seeds the Kantata and NetSuite sandboxes in memory
and serves them on loopback, so this process measures the hub alone: its wall
time, CPU and peak RSS for ``post_now("time")`` (pull → validate → aggregate →
post). The same run measures two references: the local floor (the same rows
bulk-inserted into a fresh hub database) and a naive sync (one GET and one ERP
PUT per entry, sequentially). See benchmarks/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
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

from quote2cash.sandbox.firm import BASE_RATE, PRACTICES, ROLES
from quote2cash.sandbox.seed import COST_SHARE
from quote2cash.sandbox.timesheets import business_days

STORM = (2026, 10)  # the month being closed: open in the ERP, every month before it closed
SEED = 2026
CHUNK = 100_000  # time entries per bulk seeding write
# (country, currency) of the legal entities, cycled: several currencies, most of them EUR.
COUNTRIES = [
    ("US", "USD"),
    ("GB", "GBP"),
    ("DE", "EUR"),
    ("SG", "SGD"),
    ("CA", "CAD"),
    ("CH", "CHF"),
    ("FR", "EUR"),
    ("AU", "AUD"),
    ("NL", "EUR"),
    ("IE", "EUR"),
]
FX = {
    "USD": Decimal("1"),
    "GBP": Decimal("0.8"),
    "EUR": Decimal("0.92"),
    "SGD": Decimal("1.35"),
    "CAD": Decimal("1.36"),
    "CHF": Decimal("0.88"),
    "AUD": Decimal("1.52"),
}
# Targets of the issue (embedded SQLite default, 2 cores).
TARGET_RATE = 1_000_000 / 60  # entries per second end to end
TARGET_ENTRIES_PER_CALL = 200
TARGET_RSS_MB = 1536


# -- the generated firm (deterministic: the child and the parent build the same one) ------------------
@dataclass(frozen=True)
class Entity:
    """One legal entity: ``LE01``... with its ERP subsidiary's currency."""

    code: str
    country: str
    currency: str


@dataclass(frozen=True)
class ProjectSpec:
    """One project: its entity, currency, billing model and practice (ERP department) index."""

    index: int
    entity: Entity
    billing_model: str
    practice: int

    @property
    def currency(self) -> str:
        """The workspace currency: its legal entity's."""
        return self.entity.currency


def entities(n: int) -> list[Entity]:
    """The firm's legal entities."""
    return [Entity(f"LE{i + 1:02d}", *COUNTRIES[i % len(COUNTRIES)]) for i in range(n)]


def projects(n: int, ents: list[Entity]) -> list[ProjectSpec]:
    """The firm's projects: nine in ten billed on time and materials, the rest fixed fee."""
    return [
        ProjectSpec(i, ents[i % len(ents)], "fixed_fee" if i % 10 == 9 else "time_and_materials", i % 5)
        for i in range(n)
    ]


def rate_cards() -> dict[str, dict[str, int]]:
    """Currency -> role -> hourly rate in minor units (whole major units, so amounts stay exact)."""
    return {
        cur: {r: int((BASE_RATE[r] * fx).quantize(Decimal(1))) * 100 for r in ROLES} for cur, fx in FX.items()
    }


def cost_cards() -> dict[str, dict[str, int]]:
    """Currency -> role -> hourly cost in minor units (whole major units): what the hub posts
    non-billable time at (its ``cost_rates``), so the expected totals value it the same way."""
    return {
        cur: {r: int((Decimal(v) * COST_SHARE / 100).quantize(Decimal(1))) * 100 for r, v in rates.items()}
        for cur, rates in rate_cards().items()
    }


def consultants(entries: int) -> list[str]:
    """The role of each consultant (about one per 4,000 entries in the month)."""
    return [ROLES[j % len(ROLES)] for j in range(max(len(ROLES), entries // 4000))]


# -- the child: seed and serve the sandboxes -----------------------------------------------------------
def _entries(
    args: argparse.Namespace,
    specs: list[ProjectSpec],
    workspaces: list[str],
    tasks: list[list[str]],
    users: list[tuple[str, str]],
    totals: dict[str, Any],
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of approved time entries; ``totals`` collects what a correct posting must add up to."""
    rng = random.Random(SEED)
    days = [d.isoformat() for d in business_days(*STORM)]
    cards, costs = rate_cards(), cost_cards()
    chunk: list[dict[str, Any]] = []
    for _ in range(args.entries):
        p = rng.randrange(len(specs))
        spec = specs[p]
        user, role = users[rng.randrange(len(users))]
        minutes = 15 * rng.randint(2, 32)  # quarter hours, so every summed hours figure is exact
        billable = spec.billing_model == "time_and_materials"
        rate = cards[spec.currency][role] if billable else 0
        reason = None
        if rng.random() < args.invalid_share:  # planted: the hub must quarantine these
            if billable:
                rate, reason = rate + 2500, "time.rate_mismatch"
            else:
                billable, rate, reason = True, cards[spec.currency][role], "time.billable_mismatch"
        if reason is None:
            totals["valid"] += 1
            totals["minutes"] += minutes
            # Billable time is worth its billed amount; non-billable time is posted at its role's cost.
            totals["amount_minor"] += minutes * (rate if billable else costs[spec.currency][role]) // 60
        else:
            totals["planted"][reason] = totals["planted"].get(reason, 0) + 1
        chunk.append(
            {
                "workspace_id": workspaces[p],
                "story_id": rng.choice(tasks[p]),
                "user_id": user,
                "date_performed": days[rng.randrange(len(days))],
                "time_in_minutes": minutes,
                "billable": billable,
                "rate_in_cents": rate,
                "currency": spec.currency,
                "approved": True,
            }
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def serve(args: argparse.Namespace) -> None:
    """Seed both sandboxes in memory, print one ``READY {json}`` line, serve until stdin closes."""
    from quote2cash.sandbox.kantata import KantataSandbox
    from quote2cash.sandbox.netsuite import NetSuiteSandbox

    started = time.perf_counter()
    ents, specs = entities(args.entities), projects(args.projects, entities(args.entities))
    ns, kt = NetSuiteSandbox(None, seed=SEED), KantataSandbox(None, seed=SEED)
    currency_ids = {cur: ns.add_currency(cur) for cur in FX}
    subsidiaries = {
        e.code: ns.add_subsidiary(
            f"Storm Consulting {e.code} ({e.country})", currency=e.currency, country=e.country
        )
        for e in ents
    }
    for month in range(1, 13):
        ns.add_period(2026, month, closed=(2026, month) < STORM)
        ns.add_period(2027, month)
    departments = [ns.add_department(p) for p in PRACTICES]
    jobs, customers = [], []
    for s in specs:
        ref = {
            "subsidiary": {"id": subsidiaries[s.entity.code]},
            "currency": {"id": currency_ids[s.currency]},
        }
        customers.append(ns.add_customer({"companyName": f"Storm Client {s.index:05d}", **ref}))
        jobs.append(
            ns.book.create(
                "job", {"companyName": f"Storm Project {s.index:05d}", "parent": {"id": customers[-1]}, **ref}
            )
        )
    users = [
        (kt.add_user(f"Consultant {j}", f"c{j}@storm.example", role), role)
        for j, role in enumerate(consultants(args.entries))
    ]
    workspaces, tasks = [], []
    for s in specs:
        ws = kt.add_workspace(
            {
                "title": f"Storm Project {s.index:05d}",
                "currency": s.currency,
                "start_date": "2026-01-05",
                "status": "Active",
            }
        )
        workspaces.append(ws)
        tasks.append(
            [
                kt.add_story(
                    {
                        "workspace_id": ws,
                        "title": f"Workstream {t + 1}",
                        "story_type": "task",
                        "state": "started",
                    }
                )
                for t in range(2 + s.index % 3)
            ]
        )
    master_s = time.perf_counter() - started
    totals: dict[str, Any] = {"valid": 0, "minutes": 0, "amount_minor": 0, "planted": {}}
    first = last = ""
    for chunk in _entries(args, specs, workspaces, tasks, users, totals):
        ids = kt.add_time_entries(chunk)
        first, last = first or ids[0], ids[-1]
        print(f"[sandboxes] seeded {int(last) - int(first) + 1:,} time entries", file=sys.stderr, flush=True)
    kt.start()
    ns.start()
    ready = {
        "kantata": kt.url,
        "netsuite": ns.url,
        "workspaces": workspaces,
        "jobs": jobs,
        "customers": customers,
        "subsidiaries": subsidiaries,
        "departments": departments,
        "entry_ids": [first, last],
        "expected": totals,
        "seed_master_s": round(master_s, 2),
        "seed_total_s": round(time.perf_counter() - started, 2),
    }
    print("READY " + json.dumps(ready), flush=True)
    sys.stdin.read()  # returns at EOF: the parent closed the pipe, or died


# -- the parent: the hub run and the references ------------------------------------------------------
def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        f"--entries={args.entries}",
        f"--projects={args.projects}",
        f"--entities={args.entities}",
        f"--invalid-share={args.invalid_share}",
    ]


def hub_raw_config(info: dict[str, Any], args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    """The hub configuration: 20 legal entities, a rate card per currency, the sandboxes' URLs."""
    from quote2cash.sandbox.seed import hub_config

    # The hub only calls Salesforce in lead-to-project: any URL will do.
    raw = hub_config("http://127.0.0.1:9", info["kantata"], info["netsuite"], database_url)
    raw["rate_cards"] = {
        f"STD-{cur}": {"currency": cur, "rates": {r: str(Decimal(v).scaleb(-2)) for r, v in rates.items()}}
        for cur, rates in rate_cards().items()
    }
    raw["cost_rates"] = {
        cur: {r: str(Decimal(v).scaleb(-2)) for r, v in rates.items()} for cur, rates in cost_cards().items()
    }
    raw["legal_entities"] = {
        e.code: {
            "name": f"Storm Consulting {e.code}",
            "country": e.country,
            "base_currency": e.currency,
            "allowed_currencies": [e.currency],
            "tax_regions": [e.country],
            "payment_terms": ["Net 30"],
            "erp_subsidiary": info["subsidiaries"][e.code],
        }
        for e in entities(args.entities)
    }
    raw["posting"] = {"mode": args.mode}
    return raw


def registry_rows(info: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """``project_registry`` rows as lead-to-project would have left them."""
    now = datetime.now(UTC)
    return [
        {
            "canonical_id": f"STORM-{s.index:05d}",
            "name": f"Storm Project {s.index:05d}",
            "psa_workspace_id": info["workspaces"][s.index],
            "erp_job_id": info["jobs"][s.index],
            "customer_erp_id": info["customers"][s.index],
            "legal_entity": s.entity.code,
            "subsidiary": info["subsidiaries"][s.entity.code],
            "currency": s.currency,
            "billing_model": s.billing_model,
            "rate_card": f"STD-{s.currency}",
            "department": info["departments"][s.practice],
            "open_for_time": True,
            "open_for_expenses": True,
            "updated_at": now,
        }
        for s in projects(args.projects, entities(args.entities))
    ]


class SqlTimer:
    """Seconds spent per SQL statement shape (and in COMMIT) on the hub's engine, during the run."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.totals: dict[str, list[float]] = {}  # shape -> [calls, seconds, rows]
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        commit = engine.dialect.do_commit

        def timed_commit(dbapi_connection: Any) -> None:
            started = time.perf_counter()
            commit(dbapi_connection)
            self._add("COMMIT", time.perf_counter() - started, 0)

        engine.dialect.do_commit = timed_commit

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("storm_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - conn.info["storm_started"].pop()
        shape = re.sub(r"\?(, \?)+", "?…", " ".join(statement.split()))
        # rowcount: rows inserted, updated or deleted (-1 for a SELECT).
        self._add(("executemany " if many else "") + shape[:140], elapsed, max(cursor.rowcount, 0))

    def _add(self, shape: str, seconds: float, rows: int) -> None:
        entry = self.totals.setdefault(shape, [0, 0.0, 0])
        entry[0] += 1
        entry[1] += seconds
        entry[2] += rows

    def top(self, n: int = 8) -> list[tuple[str, int, float, int]]:
        """The ``n`` costliest shapes: (shape, calls, seconds, rows written)."""
        ranked = sorted(self.totals.items(), key=lambda kv: -kv[1][1])[:n]
        return [(k, int(v[0]), v[1], int(v[2])) for k, v in ranked]


def _calls(before: dict[str, int], after: dict[str, int], needle: str = "") -> int:
    return sum(n for k, n in count_diff(before, after).items() if needle in k)


def run_hub(args: argparse.Namespace, info: dict[str, Any], child: Child, workdir: Path) -> dict[str, Any]:
    """Launch the hub, time ``post_now("time")``, check the ERP; returns the figures."""
    from dbos import DBOS, SetWorkflowID

    from quote2cash.config import load_config
    from quote2cash.flows import launch_hub
    from quote2cash.flows.posting import post_approved_work, post_now, run_id_now
    from quote2cash.sandbox.seed import SANDBOX_ENV
    from quote2cash.store.db import sqlite_url
    from quote2cash.store.tables import project_registry

    raw = hub_raw_config(info, args, sqlite_url(workdir / "hub.sqlite"))
    hub = launch_hub(load_config(data=raw, env={**os.environ, **SANDBOX_ENV}))
    try:
        with hub.engine.begin() as conn:
            conn.execute(project_registry.insert(), registry_rows(info, args))
        sql = SqlTimer(hub.engine)
        kt0, ns0, child0 = sandbox_stats(info["kantata"]), sandbox_stats(info["netsuite"]), child.cpu_s()
        cpu0, run_id = cpu_self(), run_id_now("time")
        epoch0, started = time.time(), time.perf_counter()
        if args.profile:
            # The workflow runs in this thread (not a queue worker) so the profiler sees it.
            profiler = cProfile.Profile()
            with SetWorkflowID(run_id):
                result = profiler.runcall(post_approved_work, "time", run_id)
            profiler.dump_stats(args.profile)
        else:
            result = post_now("time", run_id)
        wall = time.perf_counter() - started
        figures: dict[str, Any] = {
            "wall_s": wall,
            "hub_cpu_s": cpu_self() - cpu0,
            "sandbox_cpu_s": child.cpu_s() - child0,
            "hub_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "result": result,
            "sql": sql.top(),
        }
        kt1, ns1 = sandbox_stats(info["kantata"]), sandbox_stats(info["netsuite"])
        figures["psa_calls"] = _calls(kt0, kt1)
        figures["erp_calls_sandbox"] = _calls(ns0, ns1)
        figures["erp_restlet_calls"] = _calls(ns0, ns1, "restlet")
        figures["erp_suiteql_calls"] = _calls(ns0, ns1, "suiteql")
        steps = DBOS.list_workflow_steps(run_id, load_output=False)
        figures["phases"] = phases(
            steps, epoch0, epoch0 + wall, between="between steps (checkpoints, master_data())"
        )
        erp: Any = hub.erp()  # the NetSuite adapter: its wire client runs the SuiteQL checks
        figures.update(check_erp(erp.client, info, args.mode))
    finally:
        hub.shutdown()
    return figures


def check_erp(erp: Any, info: dict[str, Any], mode: str) -> dict[str, Any]:
    """Duplicates and totals, asked of the ERP through SuiteQL."""
    # Summary mode posts journal entries; detail mode one timebill per entry.
    where = f"FROM {'journalentry' if mode == 'summary' else 'timebill'} WHERE custbody_q2c_kind = 'time'"
    [sums] = list(
        erp.suiteql(
            f"SELECT SUM(custbody_q2c_hours) AS h, SUM(custbody_q2c_amount) AS a, "
            f"SUM(custbody_q2c_entries) AS n, COUNT(*) AS c {where}"
        )
    )
    by_eid = list(erp.suiteql(f"SELECT externalid, COUNT(*) AS c {where} GROUP BY externalid"))
    # One posting per project × task × period × billable flag in a run: a second one is a duplicate.
    by_key = (
        list(
            erp.suiteql(
                "SELECT custbody_q2c_project, custbody_q2c_task, custbody_q2c_period, custbody_q2c_billable, "
                f"COUNT(*) AS c {where} GROUP BY custbody_q2c_project, custbody_q2c_task, custbody_q2c_period, "
                "custbody_q2c_billable"
            )
        )
        if mode == "summary"
        else []
    )
    expected = info["expected"]
    cents = Decimal("0.01")
    hours, amount = Decimal(sums.get("h") or 0).quantize(cents), Decimal(sums.get("a") or 0).quantize(cents)
    want_hours = (Decimal(expected["minutes"]) / 60).quantize(cents)
    want_amount = Decimal(expected["amount_minor"]).scaleb(-2)
    return {
        "journals": int(sums.get("c") or 0),
        "journal_entries_sum": int(Decimal(sums.get("n") or 0)),
        "dup_external_ids": sum(1 for r in by_eid if int(r["c"]) > 1),
        "dup_business_keys": sum(1 for r in by_key if int(r["c"]) > 1),
        "erp_hours": hours,
        "erp_amount": amount,
        "psa_hours": want_hours,
        "psa_amount": want_amount,
        "totals_match": hours == want_hours and amount == want_amount,
    }


def local_floor(workdir: Path) -> dict[str, Any]:
    """The run's ledger rows re-inserted into a fresh hub database: one executemany, one transaction."""
    from quote2cash.store.db import make_engine, migrate, sqlite_url

    with sqlite3.connect(workdir / "hub.sqlite") as source:
        columns = [row[1] for row in source.execute("PRAGMA table_info(work_entry)")]
        rows = source.execute(f"SELECT {', '.join(columns)} FROM work_entry").fetchall()
    path = workdir / "floor.sqlite"
    path.unlink(missing_ok=True)
    engine = make_engine(sqlite_url(path))
    migrate(engine)  # the same schema and indexes as the hub's
    # A connection of the hub's engine: the same PRAGMAs (WAL, page cache, checkpoints) as the hub.
    db = engine.raw_connection()
    insert = f"INSERT INTO work_entry ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    started = time.perf_counter()
    cursor = db.cursor()
    cursor.executemany(insert, rows)  # the driver opens one transaction for the whole batch
    db.commit()
    elapsed = time.perf_counter() - started
    cursor.close()
    db.close()
    engine.dispose()
    return {
        "floor_rows": len(rows),
        "floor_s": elapsed,
        "floor_rate": len(rows) / elapsed if elapsed else 0.0,
    }


def naive_sync(args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    """``--sample`` entries the way a script would: GET each from the PSA, PUT a timebill to the ERP."""
    from quote2cash.connectors.kantata import KantataClient
    from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials
    from quote2cash.sandbox.seed import SANDBOX_ENV

    first, last = (int(i) for i in info["entry_ids"])
    step = max(1, (last - first + 1) // max(1, args.sample))
    ids = [str(i) for i in range(first, last + 1, step)][: args.sample]
    jobs = dict(zip(info["workspaces"], info["jobs"], strict=True))
    subsidiaries = {
        info["workspaces"][s.index]: info["subsidiaries"][s.entity.code]
        for s in projects(args.projects, entities(args.entities))
    }
    psa = KantataClient(info["kantata"], SANDBOX_ENV["Q2C_SANDBOX_KANTATA_TOKEN"])
    creds = TbaCredentials(
        account="1234567_SB1",
        consumer_key="q2c-ck",
        consumer_secret=SANDBOX_ENV["Q2C_SANDBOX_NS_CONSUMER_SECRET"],
        token_id="q2c-tid",
        token_secret=SANDBOX_ENV["Q2C_SANDBOX_NS_TOKEN_SECRET"],
    )
    erp = NetSuiteClient(info["netsuite"], creds)
    ns0 = sandbox_stats(info["netsuite"])
    started = time.perf_counter()
    try:
        for id_ in ids:
            entry = psa.get("time_entries", id_)
            minutes = int(entry["time_in_minutes"])
            erp.upsert(
                "timebill",
                f"NAIVE-T-{id_}",
                {
                    "tranDate": entry["date_performed"],
                    "customer": {"id": jobs[str(entry["workspace_id"])]},
                    "subsidiary": {"id": subsidiaries[str(entry["workspace_id"])]},
                    "hours": f"{minutes // 60}:{minutes % 60:02d}",
                    "isBillable": bool(entry["billable"]),
                    "rate": str(Decimal(int(entry["rate_in_cents"])).scaleb(-2)),
                    "memo": f"time entry {id_}",
                },
            )
    finally:
        psa.close()
        erp.close()
    elapsed = time.perf_counter() - started
    return {
        "naive_entries": len(ids),
        "naive_s": elapsed,
        "naive_rate": len(ids) / elapsed if elapsed else 0.0,
        "naive_erp_calls": _calls(ns0, sandbox_stats(info["netsuite"])),
    }


# -- reporting ---------------------------------------------------------------------------------------
def rows_of(args: argparse.Namespace, info: dict[str, Any], f: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target verdict) rows of the report."""
    r = f["result"]
    n = args.entries
    rate = n / f["wall_s"]
    per_call = n / r["erp_calls"] if r["erp_calls"] else float("inf")
    surplus = max(0, f["journal_entries_sum"] - info["expected"]["valid"])  # entries carried twice
    dups = f["dup_external_ids"] + f["dup_business_keys"] + surplus

    rows = [
        ("entries (approved in the PSA)", f"{n:,}", ""),
        ("valid / quarantined / held", f"{r['valid']:,} / {r['quarantined']:,} / {r['held']:,}", ""),
        (
            "planted invalid",
            ", ".join(f"{k} {v:,}" for k, v in sorted(info["expected"]["planted"].items())),
            "",
        ),
        (
            "quarantined by reason",
            ", ".join(f"{k} {v:,}" for k, v in sorted(r["quarantined_by_reason"].items())),
            "",
        ),
        (
            "end-to-end wall time",
            f"{f['wall_s']:.1f} s",
            verdict(f["wall_s"] * 1_000_000 / n <= 60, "1M in ≤ 60 s"),
        ),
        ("entries/s end to end", f"{rate:,.0f}", verdict(rate >= TARGET_RATE, f"≥ {TARGET_RATE:,.0f}/s")),
    ]
    rows += [(f"  phase: {name}", f"{secs:.2f} s", "") for name, secs in f["phases"]]
    rows += [
        ("hub CPU (user+sys)", f"{f['hub_cpu_s']:.1f} s", ""),
        ("sandboxes CPU (user+sys)", f"{f['sandbox_cpu_s']:.1f} s", ""),
        ("postings sent / failed", f"{r['postings_sent']:,} / {r['postings_failed']:,}", ""),
        ("ERP calls (hub's count, posting)", f"{r['erp_calls']:,}", ""),
        (
            "ERP calls (sandbox: all / RESTlet / SuiteQL)",
            f"{f['erp_calls_sandbox']:,} / {f['erp_restlet_calls']:,} / {f['erp_suiteql_calls']:,}",
            "",
        ),
        (
            "entries per ERP posting call",
            f"{per_call:,.0f}",
            verdict(per_call >= TARGET_ENTRIES_PER_CALL, "≥ 200 in summary mode"),
        ),
        ("PSA calls", f"{f['psa_calls']:,}", ""),
        (
            "hub peak RSS",
            f"{f['hub_peak_rss_mb']:,.0f} MB",
            verdict(f["hub_peak_rss_mb"] <= TARGET_RSS_MB, "≤ 1.5 GB"),
        ),
        ("sandboxes peak RSS", f"{f['sandbox_peak_rss_mb']:,.0f} MB", ""),
        ("postings in the ERP / entries they carry", f"{f['journals']:,} / {f['journal_entries_sum']:,}", ""),
        (
            "duplicates (externalId / business key / surplus entries)",
            f"{f['dup_external_ids']} / {f['dup_business_keys']} / {surplus}",
            verdict(dups == 0, "0"),
        ),
        ("ERP hours / PSA valid hours", f"{f['erp_hours']:,} / {f['psa_hours']:,}", ""),
        ("ERP amount / PSA valid amount", f"{f['erp_amount']:,} / {f['psa_amount']:,}", ""),
        (
            "ERP totals = PSA valid totals",
            "yes" if f["totals_match"] else "NO",
            verdict(f["totals_match"], "equal"),
        ),
        ("local floor (executemany, 1 tx)", f"{f['floor_rate']:,.0f} rows/s ({f['floor_s']:.1f} s)", ""),
        (
            f"naive sync ({f['naive_entries']} entries, 1 ERP call each)",
            f"{f['naive_rate']:,.1f} entries/s ({f['naive_erp_calls']} ERP calls)",
            "",
        ),
        ("hub / local floor", f"{rate / f['floor_rate']:.3f}×" if f["floor_rate"] else "n/a", ""),
        ("hub / naive sync", f"{rate / f['naive_rate']:,.0f}×" if f["naive_rate"] else "n/a", ""),
        ("sandbox seeding (not measured)", f"{info['seed_total_s']:.0f} s", ""),
    ]
    return rows


def print_sql(sql: list[tuple[str, int, float, int]]) -> None:
    """Where the hub's database time went, by statement shape."""
    print("\nhub database time by statement (top 8):")
    for shape, calls, secs, rows in sql:
        print(f"  {secs:7.2f} s  {calls:6,} calls  {rows:9,} rows written  {shape}")


def markdown(
    args: argparse.Namespace,
    rows: list[tuple[str, str, str]],
    sql: list[tuple[str, int, float, int]],
    argv: list[str],
) -> str:
    """The block appended to the results file."""
    facts = machine()
    body = [
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, "
        f"Python {facts['python']}, {facts['os']}. Code at commit `{commit()}` (uncommitted changes are not recorded).",
        "",
        "| figure | value | target |",
        "| --- | ---: | --- |",
        *(f"| {n.strip()} | {v} | {t} |" for n, v, t in rows),
        "",
        "Hub database time by statement (top 8):",
        "",
        "| seconds | calls | rows written | statement |",
        "| ---: | ---: | ---: | --- |",
        *(f"| {secs:.2f} | {calls:,} | {n:,} | `{shape}` |" for shape, calls, secs, n in sql),
        "",
    ]
    return results_block(f"{args.entries:,} entries, {args.mode} mode", argv, body)


def profile_summary(path: str, top: int = 30) -> str:
    """The top functions of a profile, by own time and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--entries", type=int, default=1_000_000, help="approved time entries in the month")
    p.add_argument("--projects", type=int, default=2000, help="projects (one PSA workspace and ERP job each)")
    p.add_argument("--entities", type=int, default=20, help="legal entities (ERP subsidiaries)")
    p.add_argument("--sample", type=int, default=500, help="entries the naive sync posts one by one")
    p.add_argument("--mode", choices=("summary", "detail"), default="summary", help="posting mode")
    p.add_argument("--invalid-share", type=float, default=0.005, help="share of entries planted invalid")
    add_run_options(p, "where the hub database goes (default: a temp dir)")
    p.add_argument("--profile", default=None, help="cProfile the workflow (run in-thread) into this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --serve, be the sandboxes' process)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        serve(args)
        return 0
    from quote2cash.runtime.logs import configure_logging

    workdir, owned = start_run(args.workdir, "q2c-storm-")
    (workdir / "hub.sqlite").unlink(missing_ok=True)
    configure_logging("INFO", path=workdir / "hub.log")
    print(
        f"month-end storm: {args.entries:,} entries, {args.projects:,} projects, {args.entities} entities; workdir {workdir}"
    )
    child = Child(__file__, _sizes(args))
    try:
        info = child.ready()
        print(f"sandboxes ready in {info['seed_total_s']:.0f} s; posting…", flush=True)
        figures = run_hub(args, info, child, workdir)
        figures["sandbox_peak_rss_mb"] = child.peak_rss_mb()
        figures.update(local_floor(workdir))
        figures.update(naive_sync(args, info))
    finally:
        child.stop()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = rows_of(args, info, figures)
    print()
    print_table(rows)
    print_sql(figures["sql"])
    if args.profile:
        Path(args.profile + ".txt").write_text(profile_summary(args.profile))
        print(f"\nprofile: {args.profile} (top functions in {args.profile}.txt)")
    if args.results:
        append_results(args.results, markdown(args, rows, figures["sql"], sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
