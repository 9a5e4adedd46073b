"""The console: server-rendered pages for people who would rather look than read.

Behind a login (an API token, kept in an HTTP-only, same-site session
cookie). Pages: the KPI overview with charts over time, flow runs with a
per-system timeline, the exception workbench (assign, comment, replay with
its dry-run diff, fix and resubmit with an edited payload, ignore),
reconciliation breaks, and the audit trail. Charts are drawn by uPlot,
vendored under ``static/uplot`` (no build step). Pages call the same
services as the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from quote2cash.api._auth import SESSION_COOKIE, caller, check, hub_of
from quote2cash.errors import HubError
from quote2cash.ops import cases, kpis, replay, runs, tokens, workbench
from quote2cash.ops.audit import verify

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(
    v, indent=2, default=str, sort_keys=True, ensure_ascii=False
)
templates.env.filters["value"] = lambda v: json.dumps(v, default=str, ensure_ascii=False)
SERIES = (
    ("closed_won_to_project_seconds", "Closed-won → project latency (s)", "s"),
    ("time.posted_within_sla_pct", "Approved time posted within SLA (%)", "%"),
    ("invoice_cycle_seconds", "Invoice cycle time: milestone approved → invoice sent (s)", "s"),
    ("billing_leakage_minor", "Billing leakage: approved billable value not invoiced", ""),
)


def _login(request: Request) -> Response:
    return RedirectResponse(f"/console/login?next={quote(request.url.path)}", status_code=303)


def _render(request: Request, name: str, **context: Any) -> Response:
    token = caller(request)
    return templates.TemplateResponse(
        request, name, {"token": token, "flash": request.query_params.get("done"), **context}
    )


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _who(request: Request, scope: str = "read") -> Any:
    """The person's token for a page; None sends them to the login."""
    try:
        return check(request, scope)
    except HubError:
        return None


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/console/") -> Response:
    """The login form: paste an API token."""
    return templates.TemplateResponse(request, "login.html", {"next": next, "error": None, "token": None})


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token and keep it in the session cookie."""
    form = await _form(request)
    text = form.get("token", "").strip()
    target = form.get("next", "/console/")
    target = target if target.startswith("/console") else "/console/"
    found = await run_in_threadpool(tokens.authenticate, hub_of(request), text) if text else None
    if found is None or not found.allows("read"):
        return templates.TemplateResponse(
            request, "login.html", {"next": target, "error": "That token is not valid.", "token": None},
            status_code=401,
        )  # fmt: skip
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, text, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the session."""
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    """The KPI overview: what is wrong and who owns it first, then the charts over time."""
    if _who(request) is None:
        return _login(request)
    hub = hub_of(request)
    figures = kpis.summary(hub)
    charts = []
    for kpi, title, unit in SERIES:
        points = runs.series(hub, kpi, bucket="hour")
        charts.append({"id": kpi.replace(".", "_"), "title": title, "unit": unit, "points": points})
    rates = runs.sync_rates(hub, bucket="hour")
    aged = runs.exceptions_by_owner_and_age(hub)
    return _render(
        request, "overview.html", figures=figures, charts=charts, rates=rates, aged=aged,
        bands=[b for b, _ in runs.AGE_BANDS], totals={o: sum(row.values()) for o, row in aged.items()},
    )  # fmt: skip


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, status: str | None = None, flow: str | None = None) -> Response:
    """Flow runs, newest first."""
    if _who(request) is None:
        return _login(request)
    try:
        found = runs.list_runs(hub_of(request), status=status or None, flow=flow or None)[:200]
    except HubError:
        found = []
    return _render(request, "runs.html", runs=found, status=status or "")


@router.get("/runs/{flow}/{subject:path}", response_class=HTMLResponse)
def run_page(request: Request, flow: str, subject: str) -> Response:
    """One run as a per-system timeline."""
    if _who(request) is None:
        return _login(request)
    try:
        run = runs.show_run(hub_of(request), flow, subject)
    except HubError as exc:
        return _render(request, "error.html", error=exc)
    lanes = sorted({s for e in run["timeline"] for s in e["systems"]})
    return _render(request, "run.html", run=run, lanes=lanes)


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, status: str = "open", owner: str = "", code: str = "") -> Response:
    """The exception workbench: cases with their owner, age and what to do."""
    if _who(request) is None:
        return _login(request)
    hub = hub_of(request)
    try:
        found = cases.list_cases(hub, status=status, code=code or None)
    except HubError:
        found = []
    assigned = workbench.assignees(hub)
    found = [{**c, "assignee": assigned.get(int(c["id"]))} for c in found if not owner or c["owner"] == owner]
    return _render(request, "cases.html", cases=found, status=status, owner=owner, code=code)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: int) -> Response:
    """One case: what is wrong, who owns it, what was written, and the actions."""
    if _who(request) is None:
        return _login(request)
    hub = hub_of(request)
    try:
        detail = cases.show_case(hub, case_id)
    except HubError as exc:
        return _render(request, "error.html", error=exc)
    diff = None
    if request.query_params.get("diff"):
        try:
            diff = replay.as_dict(replay.dry_run(hub, case_id))
        except HubError as exc:
            diff = {"supported": True, "blocking": [exc.to_dict()], "systems": [], "would_succeed": False}
    return _render(
        request, "case.html", detail=detail, diff=diff, notes=workbench.notes(hub, case_id),
        assignee=workbench.assignees(hub).get(case_id), error=request.query_params.get("error"),
    )  # fmt: skip


@router.post("/cases/{case_id}/{action}")
async def case_action(request: Request, case_id: int, action: str) -> Response:
    """Assign, comment, resubmit (with the edited payload), replay or ignore, then back to the case."""
    token = _who(request, "operate")
    if token is None:
        return (
            _login(request)
            if _who(request) is None
            else _back(case_id, error="your token cannot act on cases")
        )
    form = await _form(request)
    hub = hub_of(request)

    def act() -> str:
        if action == "assign":
            workbench.assign(hub, case_id, assignee=form.get("assignee", ""), actor=token.actor)
            return "assigned"
        if action == "comment":
            workbench.comment(hub, case_id, text=form.get("text", ""), actor=token.actor)
            return "comment added"
        if action == "resubmit":
            raw = form.get("payload", "").strip()
            if raw:
                try:
                    payload = json.loads(raw)
                except ValueError as exc:
                    raise HubError(
                        f"the edited payload is not JSON: {exc}", code="usage.invalid_argument"
                    ) from None
                if not isinstance(payload, dict):
                    raise HubError("the edited payload must be a JSON object", code="usage.invalid_argument")
                workbench.resubmit_edited(hub, case_id, payload, actor=token.actor)
            else:
                cases.resubmit(hub, case_id, actor=token.actor)
            return "resubmitted"
        if action == "replay":
            replay.replay(hub, case_id, actor=token.actor)
            return "replayed"
        if action == "ignore":
            cases.ignore(hub, case_id, actor=token.actor, reason=form.get("reason", ""))
            return "ignored"
        raise HubError(f"there is no case action {action!r}", code="api.not_found")

    try:
        done = await run_in_threadpool(act)
    except HubError as exc:
        return _back(case_id, error=f"[{exc.code}] {exc.message}")
    return _back(case_id, done=done)


def _back(case_id: int, **params: str) -> Response:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return RedirectResponse(f"/console/cases/{case_id}?{query}", status_code=303)


@router.get("/reconciliation", response_class=HTMLResponse)
def reconciliation_page(request: Request) -> Response:
    """Reconciliation breaks: each with its project, amount and cause."""
    if _who(request) is None:
        return _login(request)
    found = [
        c for c in cases.list_cases(hub_of(request), status="all") if str(c["code"]).startswith("recon.")
    ]
    return _render(request, "reconciliation.html", breaks=found)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, subject: str = "", actor: str = "", action: str = "") -> Response:
    """The audit trail, searchable, with the chain's verification."""
    if _who(request) is None:
        return _login(request)
    hub = hub_of(request)
    entries, total = runs.search_audit(
        hub, subject=subject or None, actor=actor or None, action=action or None, limit=200
    )
    return _render(
        request, "audit.html", entries=entries, total=total, chain=verify(hub),
        subject=subject, actor=actor, action=action,
    )  # fmt: skip
