"""Closed-won burst: N deals (default 1,000) won at once, turned into customers, ERP jobs and PSA workspaces.

Run ``python benchmarks/closed_won_burst.py --deals 1000``. The sandboxes
(Salesforce, Kantata, NetSuite) run in a child process (this file with
``--serve``), seeded with the generated firm of ``--seed`` and its N open
deals; "release" flips every deal to Closed Won with approved terms at once.
Two integrations then turn the burst into customers, jobs, workspaces and
staffing requests, each on its own fresh, identically seeded set of sandboxes:

- a naive script (sequential, one deal at a time, plain httpx, every essential
  call once, no identity matching, no retries), run first, in a process that
  has not loaded any quote2cash module;
- the hub, launched on a fresh hub database, polling the CRM once and
  processing every deal to completion or an exception case.

This process measures wall time, its own CPU (the sandboxes are in the child),
the sandboxes' request counts, closed-won → project latency and the
duplicates left in the target systems. See benchmarks/README.md for every figure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from harness import (
    Child,
    add_run_options,
    append_results,
    commit,
    count_diff,
    cpu_self,
    machine,
    print_table,
    results_block,
    start_run,
    verdict,
)

# Targets of the issue, for the hub.
TARGET_CALLS_PER_DEAL = 8
TARGET_CPU_MS_PER_DEAL = 20
TARGET_DEALS_PER_S = 30
KPI_LATENCY = "closed_won_to_project_seconds"


# =====================================================================================================
# THE HUB — every use of quote2cash's internals is in this section (and only here).
#
# The hub's internals (role ports, connector registry, flow runtime) are being redesigned; when the
# entry points below move, adapt this function and nothing else. It uses:
#   - quote2cash.sandbox.seed.hub_config  the embedded default config for the sandboxes' URLs
#   - quote2cash.config.load_config       configuration → HubConfig
#   - quote2cash.flows.launch_hub         build + launch the hub (DBOS, queues, connectors)
#   - quote2cash.flows.intake.poll_closed_won   one poll of the CRM; enqueues a flow per deal
#   - Hub.shutdown()
#   - quote2cash.runtime.logs.configure_logging  the hub's JSON log into the workdir
#   - dbos.DBOS.list_workflows            "no workflow pending/enqueued" = every flow has settled
#   - the hub database's tables flow_run (status per deal), kpi_sample (closed_won_to_project_seconds)
#     and exception_case (code per case), read with plain SQL below.
# =====================================================================================================
HUB_FLOW = "lead_to_project"
SQL_RUN_STATUS = "SELECT status, COUNT(*) FROM flow_run WHERE flow = :flow GROUP BY status"
SQL_LATENCIES = "SELECT value FROM kpi_sample WHERE kpi = :kpi"
SQL_CASE_CODES = "SELECT code, COUNT(*) FROM exception_case WHERE flow = :flow GROUP BY code"
FINAL_STATUSES = ("completed", "exception", "compensated")


def run_hub(
    urls: dict[str, str],
    database_url: str,
    workdir: Path,
    release: Callable[[], None],
    deals: int,
    timeout: float,
) -> dict[str, Any]:
    """Launch the hub, release the burst, poll once, wait until every flow run has settled.

    Measured from the moment ``release()`` returns (every deal closed-won) to
    the moment no flow is left pending: wall time and this process's CPU.
    """
    import sqlalchemy as sa
    from dbos import DBOS

    from quote2cash.config import load_config
    from quote2cash.flows import launch_hub
    from quote2cash.flows.intake import poll_closed_won
    from quote2cash.runtime.logs import configure_logging
    from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config

    configure_logging("INFO", path=workdir / "hub.log")
    raw = hub_config(urls["salesforce"], urls["kantata"], urls["netsuite"], database_url)
    hub = launch_hub(load_config(data=raw, env={**os.environ, **SANDBOX_ENV}))
    db = sa.create_engine(sqlalchemy_url(database_url))

    def statuses() -> dict[str, int]:
        with db.connect() as conn:
            rows = conn.execute(sa.text(SQL_RUN_STATUS), {"flow": HUB_FLOW})
            return {str(s): int(n) for s, n in rows}

    def idle() -> bool:
        active = ["PENDING", "ENQUEUED", "DELAYED"]
        return not DBOS.list_workflows(status=active, load_input=False, load_output=False, limit=1)

    try:
        release()
        meter = Meter()
        poll = poll_closed_won(hub)
        deadline, last_full_check = time.monotonic() + timeout, time.monotonic()
        timed_out = False
        while True:
            s, now = statuses(), time.monotonic()
            final = sum(s.get(k, 0) for k in FINAL_STATUSES)
            # The cheap check every 50 ms; DBOS is asked once the runs look done, and every 2 s
            # regardless (a flow that crashed outside its saga leaves its run 'running', DBOS idle).
            due = now - last_full_check > 2
            if s.get("running", 0) == 0 or final >= deals or due:
                last_full_check = now if due else last_full_check
                if idle():
                    break
            if now > deadline:
                timed_out = True
                break
            time.sleep(0.05)
        wall_s, cpu_s = meter.stop()
        with db.connect() as conn:
            latencies = [float(v) for (v,) in conn.execute(sa.text(SQL_LATENCIES), {"kpi": KPI_LATENCY})]
            codes = {str(c): int(n) for c, n in conn.execute(sa.text(SQL_CASE_CODES), {"flow": HUB_FLOW})}
        s = statuses()
    finally:
        hub.shutdown()
        db.dispose()
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "completed": s.get("completed", 0),
        "exception": s.get("exception", 0) + s.get("compensated", 0),
        "unfinished": deals - sum(s.get(k, 0) for k in FINAL_STATUSES),
        "by_reason": codes,
        "latencies": latencies,
        "seen": poll.seen,
        "timed_out": timed_out,
    }


def run_hub_webhooks(
    box: SandboxProcess, database_url: str, workdir: Path, steady: int, rate: float, timeout: float
) -> dict[str, Any]:
    """Webhook mode: the hub serves its API, the Salesforce sandbox sends an outbound message for
    every deal won, and no poll runs. ``steady`` deals are closed at ``rate`` a second and left to
    settle; then the rest of the deals are closed at once (the burst). Returns each phase's
    closed-won → project latencies (the KPI the hub records: the deal's close stamp to the
    project's completion, so the webhook's own delivery is included), wall time and the hub's CPU.
    """
    import sqlalchemy as sa

    from quote2cash.api import ApiServer, create_app
    from quote2cash.config import load_config
    from quote2cash.flows import launch_hub
    from quote2cash.runtime.logs import configure_logging
    from quote2cash.sandbox.salesforce.app import ORG_ID
    from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config

    urls, deals = box.info["urls"], box.info["deals"]
    configure_logging("INFO", path=workdir / "hub.log")
    secret = secrets.token_hex(16)
    raw = hub_config(urls["salesforce"], urls["kantata"], urls["netsuite"], database_url)
    raw["api"] = {
        "host": "127.0.0.1",
        "port": 0,
        "webhooks": {"salesforce": {"secret_env": "Q2C_BENCH_SF_WEBHOOK_SECRET", "org_id": ORG_ID}},
    }
    env = {**os.environ, **SANDBOX_ENV, "Q2C_BENCH_SF_WEBHOOK_SECRET": secret}
    hub = launch_hub(load_config(data=raw, env=env))
    server = ApiServer(create_app(hub)).start()
    db = sa.create_engine(sqlalchemy_url(database_url))

    def settled() -> int:
        with db.connect() as conn:
            rows = conn.execute(sa.text(SQL_RUN_STATUS), {"flow": HUB_FLOW})
            return sum(int(n) for s, n in rows if s in FINAL_STATUSES)

    def latencies() -> dict[str, float]:
        with db.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT subject, value FROM kpi_sample WHERE kpi = :k"), {"k": KPI_LATENCY}
            )
            return {str(subject): float(v) for subject, v in rows}

    def phase(count: int, per_second: float, expected: int) -> dict[str, Any]:
        before = latencies()
        meter = Meter()
        closed = box.command(f"close {count} {per_second}", "CLOSED")
        deadline = time.monotonic() + timeout
        while settled() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        wall_s, cpu_s = meter.stop()
        after = latencies()
        return {
            "deals": count,
            "rate": per_second,
            "close_s": closed["close_s"],
            "wall_s": wall_s,
            "cpu_s": cpu_s,
            "latencies": [v for k, v in after.items() if k not in before],
            "settled": settled() - (expected - count),
        }

    try:
        box.command(f"webhook {server.url}/webhooks/salesforce {secret}", "HOOKED")
        steady_phase = phase(steady, rate, steady)
        burst_phase = phase(deals - steady, 0, deals)
        deliveries = box.command("deliveries", "DELIVERIES")
    finally:
        server.stop()
        hub.shutdown()
        db.dispose()
    return {"steady": steady_phase, "burst": burst_phase, "deliveries": deliveries}


def webhook_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """The webhook mode's figures, per phase."""
    rows: list[tuple[str, ...]] = []
    for name in ("steady", "burst"):
        ph = result[name]
        lat = sorted(ph["latencies"])
        arrival = f"{ph['rate']:g} deals/s" if ph["rate"] else f"all {ph['deals']} at once"
        p95 = percentile(lat, 95)
        target = verdict(p95 is not None and p95 <= 1.0, "p95 ≤ 1 s")
        rows += [
            (f"{name}: deals, arrival", f"{ph['deals']:,}, {arrival}", ""),
            (f"{name}: settled (completed or case)", f"{ph['settled']:,}", ""),
            (f"{name}: latency p50 / p95 / max (s)", _lat(lat), target if name == "steady" else ""),
            (
                f"{name}: wall time, hub CPU per deal",
                f"{ph['wall_s']:.1f} s, {1000 * ph['cpu_s'] / max(ph['deals'], 1):.1f} ms",
                "",
            ),
        ]
    d = result["deliveries"]
    rows.append(
        (
            "outbound messages acknowledged / failed attempts / still queued",
            f"{d['acknowledged']:,} / {d['failed_attempts']:,} / {d['queued']:,}",
            "",
        )
    )
    return rows


def _lat(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} / {max(values):.2f}"


def webhook_markdown(
    args: argparse.Namespace, argv: list[str], database: str, rows: list[tuple[str, ...]]
) -> str:
    """The webhook mode's block appended to the results file."""
    facts = machine()
    body = [
        f"Machine: nproc {facts['nproc']} ({facts['cpu']}), {facts['memory']} RAM, Python {facts['python']}, "
        f"{facts['os']}. Hub database: {database}. Code at commit `{commit()}` (uncommitted changes are not "
        "recorded). Latency is the hub's `closed_won_to_project_seconds` KPI: from the deal's close stamp "
        "in the CRM to the project's completion, so the outbound message's delivery is included.",
        "",
        "| figure | hub | target |",
        "| --- | ---: | --- |",
        *(f"| {n} | {h} | {t} |" for n, h, t in rows),
        "",
    ]
    return results_block(
        f"closed-won by webhook: {args.steady:,} deals at "
        f"{args.rate:g}/s, then {args.deals - args.steady:,} at once, seed {args.seed}",
        argv,
        body,
    )


# =====================================================================================================
# THE NAIVE SCRIPT — plain httpx, no quote2cash import: what a firm writes by hand.
#
# Sequential, one deal at a time, every essential call once: the closed-won query, then per deal
# GET account, query lines, PUT the ERP customer by an external id of its own (no identity
# matching, so a client already in the ERP under another id gets a second customer), PATCH the
# account with the ERP id (when it has none yet), PUT the ERP job, POST the PSA workspace, POST one
# staffing request per line, PATCH the opportunity with the ids. Lookups of master data (subsidiary,
# currency, terms, department, class, templates, roles) are made once at the start. No retries:
# a deal whose call fails or whose value has no mapping is counted as an exception and left as is.
# =====================================================================================================
NAIVE_TEMPLATES = {
    "Time & Materials": "T&M Delivery",
    "Fixed Fee": "Fixed-Fee Delivery",
    "Milestone": "Milestone Delivery",
    "Retainer": "Retainer Service",
    "Subscription": "Managed Service",
}
NAIVE_CLASSES = {
    "North America": "Americas",
    "UK & Ireland": "EMEA",
    "DACH": "EMEA",
    "APAC": "APAC",
    "Canada": "Americas",
}
SF_API = "/services/data/v62.0"


class NaiveFailure(Exception):
    """A deal the naive script could not finish (the reason is the message)."""


def _pct(value: str) -> str:
    return quote(value, safe="~")


class NetSuiteTba(httpx.Auth):
    """OAuth 1.0a HMAC-SHA256 (NetSuite token-based authentication), signed per request."""

    def __init__(self, c: dict[str, str]) -> None:
        self.c = c

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        c, parts = self.c, urlsplit(str(request.url))
        oauth = {
            "oauth_consumer_key": c["ns_consumer_key"],
            "oauth_token": c["ns_token_id"],
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": str(int(time.time())),
            "oauth_nonce": secrets.token_hex(10),
            "oauth_version": "1.0",
        }
        pairs = sorted((_pct(k), _pct(v)) for k, v in [*oauth.items(), *parse_qsl(parts.query)])
        base = "&".join(
            (
                request.method.upper(),
                _pct(f"{parts.scheme}://{parts.netloc}{parts.path}"),
                _pct("&".join(f"{k}={v}" for k, v in pairs)),
            )
        )
        key = f"{_pct(c['ns_consumer_secret'])}&{_pct(c['ns_token_secret'])}".encode()
        signature = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
        fields = [("realm", c["ns_account"]), *oauth.items(), ("oauth_signature", signature)]
        request.headers["Authorization"] = "OAuth " + ", ".join(f'{k}="{_pct(v)}"' for k, v in fields)
        yield request


class NaiveClients:
    """One httpx client per system; each call raises :class:`NaiveFailure` on an error answer."""

    def __init__(self, urls: dict[str, str], creds: dict[str, str]) -> None:
        self.creds = creds
        self.kt = httpx.Client(
            base_url=urls["kantata"] + "/api/v1",
            headers={"Authorization": f"Bearer {creds['kt_token']}"},
            timeout=10,
        )
        self.ns = httpx.Client(base_url=urls["netsuite"], auth=NetSuiteTba(creds), timeout=10)
        self.sf = httpx.Client(base_url=urls["salesforce"], timeout=10)
        token = self._ok(
            "salesforce",
            self.sf.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds["sf_client_id"],
                    "client_secret": creds["sf_client_secret"],
                },
            ),
        ).json()
        self.sf.base_url = httpx.URL(token["instance_url"])
        self.sf.headers["Authorization"] = f"Bearer {token['access_token']}"

    def close(self) -> None:
        for client in (self.kt, self.ns, self.sf):
            client.close()

    @staticmethod
    def _ok(system: str, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        code = ""
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            body = response.json()
            code = (
                body[0]["errorCode"]
                if isinstance(body, list)
                else body["o:errorDetails"][0]["o:errorCode"]
                if "o:errorDetails" in body
                else body["errors"][0]["type"]
            )
        raise NaiveFailure(f"{system} HTTP {response.status_code} {code}".strip())

    # -- Salesforce -------------------------------------------------------------------------------
    def soql(self, q: str) -> list[dict[str, Any]]:
        body = self._ok("salesforce", self.sf.get(f"{SF_API}/query", params={"q": q})).json()
        records = list(body["records"])
        while not body.get("done", True):
            body = self._ok("salesforce", self.sf.get(body["nextRecordsUrl"])).json()
            records += body["records"]
        return records

    def sf_get(self, sobject: str, id_: str) -> dict[str, Any]:
        body: dict[str, Any] = self._ok(
            "salesforce", self.sf.get(f"{SF_API}/sobjects/{sobject}/{id_}")
        ).json()
        return body

    def sf_patch(self, sobject: str, id_: str, fields: dict[str, Any]) -> None:
        self._ok("salesforce", self.sf.patch(f"{SF_API}/sobjects/{sobject}/{id_}", json=fields))

    # -- NetSuite ---------------------------------------------------------------------------------
    def suiteql(self, q: str) -> list[dict[str, Any]]:
        response = self.ns.post(
            "/services/rest/query/v1/suiteql",
            params={"limit": 1000, "offset": 0},
            json={"q": q},
            headers={"Prefer": "transient"},
        )
        return list(self._ok("netsuite", response).json()["items"])

    def ns_upsert(self, record: str, external_id: str, body: dict[str, Any]) -> str:
        response = self.ns.put(f"/services/rest/record/v1/{record}/eid:{external_id}", json=body)
        return self._ok("netsuite", response).headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    # -- Kantata ----------------------------------------------------------------------------------
    def kt_list(self, resource_: str) -> list[dict[str, Any]]:
        body = self._ok("kantata", self.kt.get(f"/{resource_}.json", params={"per_page": 200})).json()
        return [body[r["key"]][str(r["id"])] for r in body["results"]]

    def kt_create(self, resource_: str, singular: str, obj: dict[str, Any]) -> str:
        body = self._ok("kantata", self.kt.post(f"/{resource_}.json", json={singular: obj})).json()
        return str(body["results"][0]["id"])


def naive_master_data(c: NaiveClients, entities: dict[str, str]) -> dict[str, dict[str, str]]:
    """Ids by name, once: subsidiaries (by region), currencies, terms, departments, classes, templates, roles."""
    subs = {r["name"]: r["id"] for r in c.suiteql("SELECT id, name FROM subsidiary")}
    return {
        "subsidiary": {region: subs[name] for region, name in entities.items() if name in subs},
        "currency": {r["symbol"]: r["id"] for r in c.suiteql("SELECT id, symbol FROM currency")},
        "term": {r["name"]: r["id"] for r in c.suiteql("SELECT id, name FROM term")},
        "department": {r["name"]: r["id"] for r in c.suiteql("SELECT id, name FROM department")},
        "class": {r["name"]: r["id"] for r in c.suiteql("SELECT id, name FROM classification")},
        "template": {str(t.get("name")): str(t["id"]) for t in c.kt_list("project_templates")},
        "role": {str(r.get("name")): str(r["id"]) for r in c.kt_list("roles")},
    }


def _lookup(table: dict[str, str], value: Any, what: str) -> str:
    if value not in table:
        raise NaiveFailure(f"no ERP/PSA {what} for {value!r}")
    return table[value]


def naive_deal(c: NaiveClients, m: dict[str, dict[str, str]], opp: dict[str, Any]) -> None:
    """Turn one won deal into a customer, a job, a workspace and staffing requests."""
    account = c.sf_get("Account", str(opp["AccountId"]))
    lines = c.soql(
        "SELECT Id, Role__c, Quantity, ServiceDate FROM OpportunityLineItem "
        f"WHERE OpportunityId = '{opp['Id']}'"
    )
    region = account.get("Region__c")
    subsidiary = {"id": _lookup(m["subsidiary"], region, "subsidiary of region")}
    currency = {"id": _lookup(m["currency"], account.get("CurrencyIsoCode"), "currency")}
    customer = c.ns_upsert(
        "customer",
        f"NAIVE-C-{account['Id']}",
        {
            "companyName": account["Name"],
            "url": account.get("Website"),
            "vatRegNumber": account.get("Tax_Id__c"),
            "subsidiary": subsidiary,
            "currency": currency,
            "terms": {"id": _lookup(m["term"], account.get("Payment_Terms__c"), "payment terms")},
        },
    )
    if not account.get("ERP_Customer_Id__c"):
        c.sf_patch("Account", account["Id"], {"ERP_Customer_Id__c": customer})
    job = c.ns_upsert(
        "job",
        f"NAIVE-P-{opp['Id']}",
        {
            "companyName": opp["Name"],
            "parent": {"id": customer},
            "subsidiary": subsidiary,
            "currency": currency,
            "department": {"id": _lookup(m["department"], opp.get("Practice__c"), "department")},
            "class": {"id": _lookup(m["class"], NAIVE_CLASSES.get(str(region)), "class")},
            "startDate": opp.get("Start_Date__c"),
            "projectedEndDate": opp.get("End_Date__c"),
        },
    )
    template = NAIVE_TEMPLATES.get(str(opp.get("Billing_Model__c")))
    workspace = c.kt_create(
        "workspaces",
        "workspace",
        {
            "title": opp["Name"],
            "currency": account.get("CurrencyIsoCode"),
            "start_date": opp.get("Start_Date__c"),
            "due_date": opp.get("End_Date__c"),
            "price_in_cents": int(float(opp.get("Amount") or 0) * 100),
            "project_template_id": _lookup(m["template"], template, "project template"),
            "description": account["Name"],
            "creator_role": "maven",
        },
    )
    for line in lines:
        c.kt_create(
            "resource_requests",
            "resource_request",
            {
                "workspace_id": workspace,
                "role_id": _lookup(m["role"], line.get("Role__c"), "role"),
                "start_date": str(line.get("ServiceDate") or opp.get("Start_Date__c"))[:10],
                "end_date": opp.get("End_Date__c"),
                "hours": float(line.get("Quantity") or 0),
                "status": "requested",
                "notes": f"line {line['Id']}",
            },
        )
    c.sf_patch(
        "Opportunity",
        opp["Id"],
        {
            "ERP_Customer_Id__c": customer,
            "ERP_Project_Id__c": job,
            "PSA_Workspace_Id__c": workspace,
            "Integration_Status__c": "Project created",
        },
    )


def run_naive(info: dict[str, Any], release: Callable[[], None]) -> dict[str, Any]:
    """Release the burst, then the naive script, measured from release to the last deal done."""
    hub_loaded = "quote2cash" in sys.modules
    release()
    meter = Meter()
    c = NaiveClients(info["urls"], info["credentials"])
    completed, failures, latencies = 0, Counter[str](), []
    try:
        opps = c.soql(
            "SELECT Id, AccountId, Name, Amount, Billing_Model__c, Practice__c, Start_Date__c, "
            "End_Date__c, SystemModstamp FROM Opportunity WHERE IsWon = true AND Terms_Approved__c = true"
        )
        master = naive_master_data(c, info["entities"])
        for opp in opps:
            try:
                naive_deal(c, master, opp)
            except (NaiveFailure, httpx.HTTPError) as exc:
                failures[str(exc) if isinstance(exc, NaiveFailure) else type(exc).__name__] += 1
                continue
            completed += 1
            won = datetime.strptime(str(opp["SystemModstamp"]), "%Y-%m-%dT%H:%M:%S.%f%z")
            latencies.append((datetime.now(UTC) - won).total_seconds())
    finally:
        c.close()
    wall_s, cpu_s = meter.stop()
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "completed": completed,
        "exception": sum(failures.values()),
        "unfinished": info["deals"] - completed - sum(failures.values()),
        "by_reason": dict(failures),
        "latencies": latencies,
        "seen": len(opps),
        "timed_out": False,
        "hub_loaded": hub_loaded,
    }


# =====================================================================================================
# The sandboxes' process
# =====================================================================================================
def serve(args: argparse.Namespace) -> None:
    """Seed the three sandboxes in memory, print ``READY {json}``, then answer commands on stdin.

    ``release``: every deal → Closed Won with approved terms, at once (Python-side writes, no
    HTTP); answers ``RELEASED {json}`` with the request counts taken just before. ``report``:
    answers ``REPORT {json}``: request counts and the records the duplicate checks need.
    Webhook mode: ``webhook URL SECRET`` makes the Salesforce sandbox send a signed outbound
    message for every deal won; ``close N RATE`` closes the next N deals, RATE a second (0: at
    once); ``deliveries`` counts the outbound messages. Exits at EOF.
    """
    from quote2cash.sandbox.firm import ENTITIES, generate
    from quote2cash.sandbox.kantata import KantataSandbox
    from quote2cash.sandbox.netsuite import NetSuiteSandbox
    from quote2cash.sandbox.salesforce import SalesforceSandbox
    from quote2cash.sandbox.seed import SANDBOX_ENV, Sandboxes, seed

    started = time.perf_counter()
    firm = generate(args.seed, args.deals)
    boxes = Sandboxes(
        SalesforceSandbox(None, seed=args.seed),
        KantataSandbox(None, seed=args.seed),
        NetSuiteSandbox(None, seed=args.seed),
    )
    seeded = seed(firm, boxes)
    boxes.start()
    sf, kt, ns = boxes.salesforce, boxes.kantata, boxes.netsuite
    messenger = None

    def counts() -> dict[str, dict[str, int]]:
        return {
            "salesforce": dict(sf.stats),
            "kantata": dict(kt.stats),
            "netsuite": dict(ns.stats),
            "netsuite_refused": dict(ns.rejections),
        }

    ready = {
        "urls": {"salesforce": sf.url, "kantata": kt.url, "netsuite": ns.url},
        "deals": len(seeded.opportunities),
        "accounts": len(seeded.accounts),
        "preseeded_customers": [str(c["id"]) for c in ns.records("customer")],
        "entities": {e.region: e.name for e in ENTITIES},
        "credentials": {
            "sf_client_id": sf.client_id,
            "sf_client_secret": sf.client_secret,
            "kt_token": kt.token,
            "ns_account": ns.account,
            "ns_consumer_key": ns.verifier.consumer_key,
            "ns_token_id": ns.verifier.token_id,
            "ns_consumer_secret": SANDBOX_ENV["Q2C_SANDBOX_NS_CONSUMER_SECRET"],
            "ns_token_secret": SANDBOX_ENV["Q2C_SANDBOX_NS_TOKEN_SECRET"],
        },
        "seed_s": round(time.perf_counter() - started, 2),
    }
    print("READY " + json.dumps(ready), flush=True)
    waiting = list(seeded.opportunities.values())  # deals not yet closed (webhook mode closes them in turn)
    while line := sys.stdin.readline():
        command, *params = line.split()
        if command == "webhook":  # webhook URL SECRET: send an outbound message for every deal won
            messenger = sf.register_webhook(params[0], params[1])
            print("HOOKED {}", flush=True)
        elif command == "close":  # close N RATE: the next N deals won, RATE a second (0: at once)
            count, rate = int(params[0]), float(params[1])
            batch, waiting = waiting[:count], waiting[count:]
            t0 = time.perf_counter()
            for i, opp_id in enumerate(batch):
                if rate > 0:  # on a steady clock, so a slow write does not slow the arrivals
                    time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                sf.update("Opportunity", opp_id, {"StageName": "Closed Won", "Terms_Approved__c": True})
            print(
                "CLOSED " + json.dumps({"closed": len(batch), "close_s": time.perf_counter() - t0}),
                flush=True,
            )
        elif command == "deliveries":  # outbound messages: acknowledged, failed attempts, still queued
            attempts = messenger.attempts if messenger is not None else []
            delivered = {
                "acknowledged": len({a.notification for a in attempts if a.ok}),
                "failed_attempts": sum(1 for a in attempts if not a.ok),
                "queued": messenger.pending() if messenger is not None else 0,
            }
            print("DELIVERIES " + json.dumps(delivered), flush=True)
        elif command == "release":
            before, t0 = counts(), time.perf_counter()
            for opp_id in seeded.opportunities.values():
                sf.update("Opportunity", opp_id, {"StageName": "Closed Won", "Terms_Approved__c": True})
            answer = {"counts": before, "release_s": time.perf_counter() - t0, "cpu_s": time.process_time()}
            print("RELEASED " + json.dumps(answer), flush=True)
        elif command == "report":
            keep = {
                "customers": ("id", "companyName", "url", "externalId"),
                "jobs": ("id", "companyName", "externalId", "parent"),
            }
            report = {
                "counts": counts(),
                "cpu_s": time.process_time(),
                "customers": [{k: r.get(k) for k in keep["customers"]} for r in ns.records("customer")],
                "jobs": [{k: r.get(k) for k in keep["jobs"]} for r in ns.records("job")],
                "workspaces": [{"id": w["id"], "title": w.get("title")} for w in kt.records("workspaces")],
                "references": [
                    {
                        k: r.get(k)
                        for k in ("service_name", "service_model", "service_model_ref", "subject_id")
                    }
                    for r in kt.records("external_references")
                ],
                "resource_requests": len(kt.records("resource_requests")),
                "written_back": sum(
                    1
                    for o in sf.records("Opportunity")
                    if o.get("ERP_Project_Id__c") and o.get("PSA_Workspace_Id__c")
                ),
            }
            print("REPORT " + json.dumps(report, default=str), flush=True)
    boxes.stop()


class SandboxProcess(Child):
    """A child process serving one freshly seeded set of sandboxes; always ended by :meth:`stop`."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(__file__, [f"--deals={args.deals}", f"--seed={args.seed}"], exit_wait=10)
        self.info = self.ready()
        self.released: dict[str, Any] = {}

    def release(self) -> None:
        """Every deal closed-won, now; returns once they all are."""
        self.released = self.command("release", "RELEASED")

    def report(self) -> dict[str, Any]:
        """Request counts and target records, as they are now."""
        return self.command("report", "REPORT")


# =====================================================================================================
# Measuring
# =====================================================================================================
class Meter:
    """Wall time and this process's CPU (user + system, every thread) since creation."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_self()

    def stop(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds)."""
        return time.perf_counter() - self.wall0, cpu_self() - self.cpu0


def sqlalchemy_url(url: str) -> str:
    """A URL SQLAlchemy opens with the psycopg driver (the hub's config takes plain ``postgresql://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@contextlib.contextmanager
def hub_database(url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh, empty hub database: ``hub.sqlite`` in the workdir, or a new database on a PostgreSQL server.

    With a ``postgresql://`` URL a database ``q2c_burst_<random>`` is created on that server and
    dropped afterwards; a ``sqlite:///`` URL must name a file that does not exist yet.
    """
    if url is None:
        path = workdir / "hub.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        return
    if url.startswith("sqlite"):
        if Path(url.split("///", 1)[-1]).exists():
            raise SystemExit(f"{url} exists; the benchmark needs a fresh hub database")
        yield url
        return
    import sqlalchemy as sa

    admin = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    name = f"q2c_burst_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.split("?", 1)[0].rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_SF_ID = re.compile(r"^(?=.*\d)[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")


def endpoint(key: str) -> str:
    """``GET /api/v1/workspaces/1234.json`` → ``GET /api/v1/workspaces/{id}.json`` (ids folded)."""
    method, _, path = key.partition(" ")
    parts = []
    for seg in path.split("/"):
        if seg.startswith("eid:"):
            seg = "eid:{ext}"
        elif _SF_ID.match(seg):
            seg = "{id}"
        else:
            seg = re.sub(r"^\d+", "{id}", seg)
        parts.append(seg)
    return f"{method} {'/'.join(parts)}"


def _norm_name(name: Any) -> str:
    words = re.sub(r"[^a-z0-9 ]+", " ", str(name or "").lower().replace("&", " and ")).split()
    legal = {"inc", "ltd", "limited", "gmbh", "pte", "corp", "corporation", "llc", "plc", "ulc", "co", "ag"}
    while words and words[-1] in legal:
        words.pop()
    return " ".join(words)


def _domain(url: Any) -> str:
    host = urlsplit(str(url) if "//" in str(url) else f"//{url}").hostname or ""
    return host.removeprefix("www.")


def _surplus(groups: Counter[str]) -> int:
    return sum(n - 1 for key, n in groups.items() if key and n > 1)


def duplicates(report: dict[str, Any], preseeded: set[str]) -> dict[str, int]:
    """Records that are a second copy of another, in the ERP and the PSA.

    ERP customers: by external id, and by identity: a customer whose normalised company name
    (case, punctuation and legal suffix ignored) or web domain equals an earlier customer's is a
    duplicate; ``vs_preseeded`` counts those whose twin is a customer the ERP had before the run.
    ERP jobs: by external id and by name. PSA workspaces: by the hub's external reference to the
    opportunity, and by title.
    """
    customers = sorted(report["customers"], key=lambda c: int(c["id"]))
    seen: dict[tuple[str, str], str] = {}
    identity = vs_preseeded = 0
    for c in customers:
        keys = [k for k in (("name", _norm_name(c["companyName"])), ("domain", _domain(c["url"]))) if k[1]]
        twins = [seen[k] for k in keys if k in seen]
        if twins:
            identity += 1
            vs_preseeded += any(t in preseeded for t in twins)
        for k in keys:
            seen.setdefault(k, str(c["id"]))
    refs = Counter(
        f"{r['service_name']}:{r['service_model']}:{r['service_model_ref']}"
        for r in report["references"]
        if r.get("service_model") == "Opportunity"
    )
    return {
        "customers_created": sum(1 for c in customers if str(c["id"]) not in preseeded),
        "customer_dup_external_id": _surplus(Counter(str(c.get("externalId") or "") for c in customers)),
        "customer_dup_identity": identity,
        "customer_dup_vs_preseeded": vs_preseeded,
        "jobs_created": len(report["jobs"]),
        "job_dup_external_id": _surplus(Counter(str(j.get("externalId") or "") for j in report["jobs"])),
        "job_dup_name": _surplus(Counter(_norm_name(j.get("companyName")) for j in report["jobs"])),
        "workspaces_created": len(report["workspaces"]),
        "workspace_dup_reference": _surplus(refs),
        "workspace_dup_title": _surplus(Counter(str(w.get("title") or "") for w in report["workspaces"])),
    }


def percentile(values: list[float], pct: int) -> float | None:
    """The pct-th percentile (inclusive method), None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def measure(box: SandboxProcess, run: Callable[[Callable[[], None]], dict[str, Any]]) -> dict[str, Any]:
    """Run one integration on a sandbox process and gather every figure of it."""
    result = run(box.release)
    report = box.report()
    before, after = box.released["counts"], report["counts"]
    calls = {
        system: count_diff(before[system], after[system]) for system in ("salesforce", "kantata", "netsuite")
    }
    refused = sum(count_diff(before["netsuite_refused"], after["netsuite_refused"]).values())
    by_endpoint: Counter[str] = Counter()
    for system, counter in calls.items():
        for key, n in counter.items():
            by_endpoint[f"{system}: {endpoint(key)}"] += n
    return {
        **result,
        "calls": {system: sum(c.values()) for system, c in calls.items()},
        "netsuite_refused": refused,
        "by_endpoint": by_endpoint,
        "sandbox_cpu_s": report["cpu_s"] - box.released["cpu_s"],
        "release_s": box.released["release_s"],
        "resource_requests": report["resource_requests"],
        "written_back": report["written_back"],
        **duplicates(report, set(box.info["preseeded_customers"])),
    }


# =====================================================================================================
# Reporting
# =====================================================================================================
Row = tuple[str, str, str, str]  # figure, hub, naive, target verdict (for the hub)


def rows_of(deals: int, hub: dict[str, Any] | None, naive: dict[str, Any] | None) -> list[Row]:
    """The report's rows; a run left out (``--only``) shows as ``—``."""
    n = max(1, deals)

    def rate(f: dict[str, Any]) -> float:
        return float(f["completed"] + f["exception"]) / f["wall_s"] if f["wall_s"] else 0.0

    def calls(f: dict[str, Any]) -> float:
        return float(sum(f["calls"].values()) + f["netsuite_refused"]) / n

    def cpu_ms(f: dict[str, Any]) -> float:
        return float(f["cpu_s"]) * 1000 / n

    def secs(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f} s"

    def row(name: str, fmt: Callable[[dict[str, Any]], str], verdict: str = "") -> Row:
        hub_cell, naive_cell = (fmt(f) if f is not None else "—" for f in (hub, naive))
        return (name, hub_cell, naive_cell, verdict)

    def target(ok: Callable[[dict[str, Any]], bool], text: str) -> str:
        return "" if hub is None else verdict(ok(hub), text)

    speed = target(lambda h: rate(h) >= TARGET_DEALS_PER_S, f"≥ {TARGET_DEALS_PER_S}/s")
    if hub is not None and naive is not None:
        speed += "; " + verdict(rate(hub) >= rate(naive), "≥ naive script")
    rows = [
        row("deals released at once (closed-won, terms approved)", lambda f: f"{deals:,}"),
        row("deals seen (the hub's one poll / the script's query)", lambda f: f"{f['seen']:,}"),
        row(
            "completed / exception / unfinished",
            lambda f: f"{f['completed']} / {f['exception']} / {f['unfinished']}",
        ),
        row("wall clock, release → all settled", lambda f: f"{f['wall_s']:.1f} s"),
        row("deals/s", lambda f: f"{rate(f):.1f}", speed),
    ]
    if hub is not None and naive is not None and rate(naive):
        rows.append(("hub deals/s ÷ naive deals/s", f"{rate(hub) / rate(naive):.2f}×", "", ""))
    rows.append(
        row(
            "vendor calls per deal",
            lambda f: f"{calls(f):.2f}",
            target(lambda h: calls(h) <= TARGET_CALLS_PER_DEAL, f"≤ {TARGET_CALLS_PER_DEAL}"),
        )
    )
    rows += [
        row(f"  {s}", lambda f, s=s: f"{f['calls'][s] / n:.2f}")  # type: ignore[misc]
        for s in ("salesforce", "kantata", "netsuite")
    ]
    rows += [
        row(
            "  netsuite 429s at the concurrency gate (total, in the above)",
            lambda f: f"{f['netsuite_refused']}",
        ),
        row(
            "CPU per deal, integration process",
            lambda f: f"{cpu_ms(f):.1f} ms",
            target(lambda h: cpu_ms(h) <= TARGET_CPU_MS_PER_DEAL, f"≤ {TARGET_CPU_MS_PER_DEAL} ms"),
        ),
        row("  CPU total, integration process", lambda f: f"{f['cpu_s']:.1f} s"),
        row(
            "  CPU per deal, sandboxes process (reference)",
            lambda f: f"{f['sandbox_cpu_s'] * 1000 / n:.1f} ms",
        ),
        row("closed-won → project latency p50", lambda f: secs(percentile(f["latencies"], 50))),
        row("closed-won → project latency p95", lambda f: secs(percentile(f["latencies"], 95))),
    ]
    reasons = sorted({r for f in (hub, naive) if f is not None for r in f["by_reason"]})
    rows += [
        row(f"  exception: {r}", lambda f, r=r: str(f["by_reason"].get(r, "")))  # type: ignore[misc]
        for r in reasons
    ]
    rows += [
        row("ERP customers created", lambda f: f"{f['customers_created']}"),
        row(
            "  duplicates by identity (normalised name or domain)", lambda f: f"{f['customer_dup_identity']}"
        ),
        row("    of which twins of a pre-seeded customer", lambda f: f"{f['customer_dup_vs_preseeded']}"),
        row("  duplicates by externalId", lambda f: f"{f['customer_dup_external_id']}"),
        row("ERP jobs created", lambda f: f"{f['jobs_created']}"),
        row(
            "  duplicates by externalId / by name",
            lambda f: f"{f['job_dup_external_id']} / {f['job_dup_name']}",
        ),
        row("PSA workspaces created", lambda f: f"{f['workspaces_created']}"),
        row(
            "  duplicates by external reference / by title",
            lambda f: f"{f['workspace_dup_reference']} / {f['workspace_dup_title']}",
        ),
        row("PSA staffing requests created", lambda f: f"{f['resource_requests']}"),
        row("opportunities with job + workspace ids written back", lambda f: f"{f['written_back']}"),
        row("release itself (sandbox-side, before the clock starts)", lambda f: f"{f['release_s']:.2f} s"),
    ]
    if naive is not None:
        loaded = "no" if naive["hub_loaded"] else "yes"
        rows.append(("naive script ran with no quote2cash module loaded", "", loaded, ""))
    if hub is not None and hub["timed_out"]:
        rows.append(("hub TIMED OUT before every flow settled", "yes", "", ""))
    return rows


def endpoint_rows(
    deals: int, hub: dict[str, Any] | None, naive: dict[str, Any] | None
) -> list[tuple[str, str, str]]:
    """Vendor calls per deal by endpoint (ids folded), hub's largest first."""
    keys = Counter[str]()
    for f in (hub, naive):
        if f is not None:
            keys.update(f["by_endpoint"])
    order = sorted(keys, key=lambda k: (-(hub or {}).get("by_endpoint", Counter())[k], -keys[k], k))

    def cell(f: dict[str, Any] | None, k: str) -> str:
        if f is None:
            return "—"
        n = f["by_endpoint"].get(k, 0)
        return f"{n / max(1, deals):.2f}" if n else ""

    return [(k, cell(hub, k), cell(naive, k)) for k in order]


def _md_name(name: str) -> str:
    """A row name with its indentation kept (leading spaces would be dropped in markdown)."""
    depth = (len(name) - len(name.lstrip(" "))) // 2
    return "&emsp;" * depth + name.strip()


def markdown(
    args: argparse.Namespace,
    argv: list[str],
    database: str,
    rows: list[Row],
    endpoints: list[tuple[str, str, str]],
) -> str:
    """The block appended to the results file."""
    facts = machine()
    body = [
        f"Machine: nproc {facts['nproc']} ({facts['cpu']}), {facts['memory']} RAM, Python {facts['python']}, "
        f"{facts['os']}. Hub database: {database}. Code at commit `{commit()}` (uncommitted changes are not "
        "recorded). Integration CPU = user + system CPU of the benchmark process (getrusage), the sandboxes "
        "running in a child process.",
        "",
        "| figure | hub | naive script | target (hub) |",
        "| --- | ---: | ---: | --- |",
        *(f"| {_md_name(n)} | {h} | {v} | {t} |" for n, h, v, t in rows),
        "",
        "Vendor calls per deal by endpoint:",
        "",
        "| endpoint | hub | naive script |",
        "| --- | ---: | ---: |",
        *(f"| `{k}` | {h} | {v} |" for k, h, v in endpoints),
        "",
    ]
    return results_block(f"{args.deals:,} closed-won deals at once, seed {args.seed}", argv, body)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    p.add_argument("--deals", type=int, default=1000, help="closed-won deals released at once")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated firm")
    p.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (postgresql://user@host:port/db): the hub runs on a new database "
        "created there and dropped after; default: a fresh SQLite file in the workdir",
    )
    p.add_argument("--only", choices=("hub", "naive"), default=None, help="run one of the two only")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the hub's flows to settle")
    add_run_options(p, "hub database and log (default: a temp dir)")
    p.add_argument(
        "--webhook",
        action="store_true",
        help="webhook mode: deals reach the hub by Salesforce outbound messages, first --steady of "
        "them at --rate a second, then the rest at once; reports latency per phase (hub only)",
    )
    p.add_argument("--steady", type=int, default=200, help="webhook mode: deals of the steady phase")
    p.add_argument("--rate", type=float, default=5.0, help="webhook mode: steady arrivals a second")
    return p.parse_args(argv)


def webhook_main(args: argparse.Namespace, workdir: Path, owned: bool, database: str) -> int:
    """The webhook mode: the hub alone, fed by outbound messages at a steady rate, then a burst."""
    if not 0 < args.steady < args.deals:
        raise SystemExit("--steady must be between 0 and --deals (the rest is the burst)")
    print(
        f"closed-won by webhook: {args.steady:,} deals at {args.rate:g}/s, then {args.deals - args.steady:,} "
        f"at once; seed {args.seed}; workdir {workdir}",
        flush=True,
    )
    try:
        box = SandboxProcess(args)
        try:
            print(f"hub: sandboxes seeded in {box.info['seed_s']:.1f} s; running…", flush=True)
            with hub_database(args.database_url, workdir) as url:
                result = run_hub_webhooks(box, url, workdir, args.steady, args.rate, args.timeout)
        finally:
            box.stop()
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = webhook_rows(result)
    print()
    print_table(rows, ("figure", "hub", "target"))
    if args.results:
        append_results(args.results, webhook_markdown(args, sys.argv, database, rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --serve, be the sandboxes' process)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        serve(args)
        return 0
    workdir, owned = start_run(args.workdir, "q2c-burst-")
    database = "PostgreSQL (fresh database)" if args.database_url else "SQLite file (embedded default)"
    if args.webhook:
        return webhook_main(args, workdir, owned, database)
    print(f"closed-won burst: {args.deals:,} deals, seed {args.seed}; workdir {workdir}", flush=True)
    hub = naive = None
    try:
        if args.only != "hub":
            box = SandboxProcess(args)
            try:
                print(f"naive script: sandboxes seeded in {box.info['seed_s']:.1f} s; running…", flush=True)
                naive = measure(box, lambda release: run_naive(box.info, release))
            finally:
                box.stop()
        if args.only != "naive":
            box = SandboxProcess(args)
            try:
                print(f"hub: sandboxes seeded in {box.info['seed_s']:.1f} s; running…", flush=True)
                with hub_database(args.database_url, workdir) as url:
                    hub = measure(
                        box,
                        lambda release: run_hub(
                            box.info["urls"], url, workdir, release, box.info["deals"], args.timeout
                        ),
                    )
            finally:
                box.stop()
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = rows_of(args.deals, hub, naive)
    endpoints = endpoint_rows(args.deals, hub, naive)
    print()
    print_table(rows, ("figure", "hub", "naive script", "target"))
    print("\nvendor calls per deal by endpoint:")
    print_table(endpoints, ("endpoint", "hub", "naive script"), last_left=False)
    if args.results:
        append_results(args.results, markdown(args, sys.argv, database, rows, endpoints))
    return 0


if __name__ == "__main__":
    sys.exit(main())
