"""The operations API (``/api/v1``): flow runs, exception cases, replay,
reconciliation, KPIs, the audit trail, error codes and tokens.

Every route calls a service in :mod:`quote2cash.ops`; reads need the ``read``
scope, actions ``operate``, tokens ``admin``. Every action is audited under
the token's owner (the services write the entry, with ``actor``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from quote2cash.api._auth import hub_of, require
from quote2cash.api._pages import Page, PageParams, page, page_params
from quote2cash.api._problems import responses
from quote2cash.ops import audit as audit_service
from quote2cash.ops import cases, catalogue, kpis, reconciliation, replay, runs, tokens, workbench
from quote2cash.ops.tokens import Token
from quote2cash.store import audit

router = APIRouter(prefix="/api/v1", responses=responses(400, 401, 403, 503))
Read = Annotated[Token, Depends(require("read"))]
Operate = Annotated[Token, Depends(require("operate"))]
Admin = Annotated[Token, Depends(require("admin"))]
Paging = Annotated[PageParams, Depends(page_params)]
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the exception case")]
Text = Annotated[str | None, Query(max_length=200)]
Item = dict[str, Any]


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("holds a NUL character, which no text field takes")
    if isinstance(value, dict):
        for v in value.values():
            _no_nul(v)
    elif isinstance(value, list):
        for v in value:
            _no_nul(v)
    return value


class _Body(BaseModel):
    """A request body: no field it does not declare, and no NUL character in any text
    (no database takes one: refused with a 422, never a 500 further in)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _text_without_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class AssignBody(_Body):
    """Who a case goes to (empty: nobody)."""

    assignee: str = Field(max_length=120)


class CommentBody(_Body):
    """A comment on a case."""

    text: str = Field(min_length=1, max_length=5000)


class ResubmitBody(_Body):
    """Fix and resubmit: an edited payload, or a decision on an identity match, or neither."""

    payload: dict[str, Any] | None = Field(
        default=None, description="the edited event (keep type and subject)"
    )
    link_to: str | None = Field(default=None, max_length=120)
    create_new: bool = False


class IgnoreBody(_Body):
    """Why no action is needed."""

    reason: str = Field(min_length=1, max_length=1000)


class BulkResubmitBody(_Body):
    """Which cases to resubmit: a code, a flow, or ids."""

    code: str | None = Field(default=None, max_length=80)
    flow: str | None = Field(default=None, max_length=60)
    case_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(default=None, max_length=1000)


class ReconcileBody(_Body):
    """A reconciliation run: which kind of work, which month."""

    kind: Literal["time", "expenses"]
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class TokenBody(_Body):
    """A new API token."""

    owner: str = Field(min_length=1, max_length=120)
    scopes: list[str] = Field(min_length=1, max_length=10)
    note: str | None = Field(default=None, max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class Started(BaseModel):
    """A run started (or None when the entry waits for the next posting run)."""

    case_id: int
    workflow_id: str | None


class Done(BaseModel):
    """An action done."""

    ok: bool = True


# -- flow runs -------------------------------------------------------------------------------
@router.get("/runs", response_model=Page[Item], tags=["runs"])
def list_runs(
    request: Request,
    _: Read,
    paging: Paging,
    flow: Text = None,
    status: Annotated[Literal["running", "completed", "exception", "compensated"] | None, Query()] = None,
    subject: Text = None,
    correlation_id: Text = None,
) -> Item:
    """Flow runs, newest first: status, steps per system with timing, correlation id."""
    found = runs.list_runs(
        hub_of(request), flow=flow, status=status, subject=subject, correlation_id=correlation_id
    )
    return page(request, found, paging)


@router.get("/runs/{flow}/{subject:path}", tags=["runs"], responses=responses(404))
def show_run(request: Request, _: Read, flow: str, subject: str) -> Item:
    """One run with its per-system timeline (audit entries of its subject) and its cases."""
    return runs.show_run(hub_of(request), flow, subject)


# -- exception cases ---------------------------------------------------------------------------
def _case_json(case: dict[str, Any], assignee: str | None) -> Item:
    out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in case.items() if k != "dedupe_key"}
    out["assignee"] = assignee or None
    return out


@router.get("/cases", response_model=Page[Item], tags=["cases"])
def list_cases(
    request: Request,
    _: Read,
    paging: Paging,
    status: Annotated[Literal["open", "resubmitted", "resolved", "ignored", "all"], Query()] = "open",
    code: Text = None,
    flow: Text = None,
    system: Text = None,
    owner: Annotated[Literal["sales_ops", "pmo", "finance", "integration"] | None, Query()] = None,
    assignee: Text = None,
    min_age_hours: Annotated[float | None, Query(ge=0, le=1e6)] = None,
    max_age_hours: Annotated[float | None, Query(ge=0, le=1e6)] = None,
) -> Item:
    """Exception cases, oldest first, filtered by status, code, flow, system, owner team, assignee and age."""
    hub = hub_of(request)
    found = cases.list_cases(hub, status=status, code=code, flow=flow)
    assigned = workbench.assignees(hub)
    out = [
        _case_json(c, assigned.get(int(c["id"])))
        for c in found
        if (system is None or c.get("system") == system)
        and (owner is None or c.get("owner") == owner)
        and (assignee is None or assigned.get(int(c["id"])) == assignee)
        and (min_age_hours is None or c["age_hours"] >= min_age_hours)
        and (max_age_hours is None or c["age_hours"] <= max_age_hours)
    ]
    return page(request, out, paging)


@router.get("/cases/{case_id}", tags=["cases"], responses=responses(404))
def show_case(request: Request, _: Read, case_id: CaseId) -> Item:
    """A case with its flow run, what was written, its audit entries, history and notes."""
    hub = hub_of(request)
    detail = cases.show_case(hub, case_id)
    return {
        "case": _case_json(detail.case, workbench.assignees(hub).get(case_id)),
        "run": detail.run,
        "written": detail.written,
        "history": detail.history,
        "notes": [{**n, "at": n["at"].isoformat()} for n in workbench.notes(hub, case_id)],
        "audit": [{**e, "at": e["at"].isoformat()} for e in detail.audit],
    }


@router.post("/cases/{case_id}/assign", response_model=Done, tags=["cases"], responses=responses(404))
def assign_case(request: Request, token: Operate, case_id: CaseId, body: AssignBody) -> Done:
    """Give a case to a person."""
    workbench.assign(hub_of(request), case_id, assignee=body.assignee, actor=token.actor)
    return Done()


@router.post("/cases/{case_id}/comments", response_model=Done, tags=["cases"], responses=responses(404))
def comment_case(request: Request, token: Operate, case_id: CaseId, body: CommentBody) -> Done:
    """Comment on a case."""
    workbench.comment(hub_of(request), case_id, text=body.text, actor=token.actor)
    return Done()


@router.post(
    "/cases/{case_id}/resubmit", response_model=Started, tags=["cases"], responses=responses(404, 409)
)
def resubmit_case(
    request: Request, token: Operate, case_id: CaseId, body: Annotated[ResubmitBody, Body()] | None = None
) -> Started:
    """Fix and resubmit: with an edited payload, with an identity decision, or as it is."""
    hub, b = hub_of(request), body or ResubmitBody()
    if b.payload is not None:
        wf = workbench.resubmit_edited(hub, case_id, b.payload, actor=token.actor)
    else:
        wf = cases.resubmit(hub, case_id, actor=token.actor, link_to=b.link_to, create_new=b.create_new)
    return Started(case_id=case_id, workflow_id=wf)


@router.get("/cases/{case_id}/replay", tags=["cases"], responses=responses(404))
def replay_dry_run(request: Request, _: Read, case_id: CaseId) -> Item:
    """The dry run: field by field, what each system would receive if the case were replayed now."""
    return replay.as_dict(replay.dry_run(hub_of(request), case_id))


@router.post("/cases/{case_id}/replay", response_model=Started, tags=["cases"], responses=responses(404, 409))
def replay_case(request: Request, token: Operate, case_id: CaseId) -> Started:
    """Replay the case from its kept source payload with the current mapping."""
    return Started(case_id=case_id, workflow_id=replay.replay(hub_of(request), case_id, actor=token.actor))


@router.post("/cases/{case_id}/ignore", response_model=Done, tags=["cases"], responses=responses(404, 409))
def ignore_case(request: Request, token: Operate, case_id: CaseId, body: IgnoreBody) -> Done:
    """Close a case without action, with the reason."""
    cases.ignore(hub_of(request), case_id, actor=token.actor, reason=body.reason)
    return Done()


@router.post("/cases/resubmit", tags=["cases"])
def resubmit_many(request: Request, token: Operate, body: BulkResubmitBody) -> Item:
    """Resubmit every open case of a code and/or flow, or the cases named; one outcome each."""
    outcomes = cases.resubmit_many(
        hub_of(request), actor=token.actor, code=body.code, flow=body.flow, case_ids=body.case_ids
    )
    return {
        "outcomes": [{"case_id": o.case_id, "workflow_id": o.workflow_id, "error": o.error} for o in outcomes]
    }


# -- reconciliation ----------------------------------------------------------------------------
@router.get("/reconciliation/breaks", response_model=Page[Item], tags=["reconciliation"])
def reconciliation_breaks(
    request: Request,
    _: Read,
    paging: Paging,
    status: Annotated[Literal["open", "resubmitted", "resolved", "ignored", "all"], Query()] = "open",
) -> Item:
    """Reconciliation breaks (each is a case with a ``recon.`` code), oldest first."""
    found = [
        c for c in cases.list_cases(hub_of(request), status=status) if str(c["code"]).startswith("recon.")
    ]
    return page(request, [_case_json(c, None) for c in found], paging)


@router.get("/reconciliation/runs", response_model=Page[Item], tags=["reconciliation"])
def reconciliation_runs(request: Request, _: Read, paging: Paging) -> Item:
    """Reconciliation runs started through the API, newest first, with their counts."""
    entries, total = runs.search_audit(
        hub_of(request), action="reconciliation.run", limit=paging.limit, offset=paging.offset
    )
    end = paging.offset + paging.limit
    nxt = str(request.url.include_query_params(offset=end)) if end < total else None
    return {"items": entries, "total": total, "limit": paging.limit, "offset": paging.offset, "next": nxt}


@router.post("/reconciliation/runs", tags=["reconciliation"])
def run_reconciliation(request: Request, token: Operate, body: ReconcileBody) -> Item:
    """Reconcile a month now: PSA approved vs ERP posted; every break gets a case."""
    hub = hub_of(request)
    report = reconciliation.reconcile(hub, body.kind, body.period)
    figures = {
        "kind": report.kind,
        "period": report.period,
        "lines": len(report.lines),
        "lines_ok": sum(1 for line in report.lines if line.status == "ok"),
        "breaks": report.counts(),
        "cases_opened": report.cases_opened,
    }
    hub.tx(
        lambda conn: audit.append(
            conn, actor=token.actor, action="reconciliation.run",
            subject=f"reconciliation/{report.kind}/{report.period}", after=figures,
        )
    )  # fmt: skip
    return {
        **figures,
        "break_list": [
            {
                "kind": b.kind,
                "project": b.project,
                "legal_entity": b.legal_entity,
                "amount": b.amount,
                "cause": b.cause,
            }
            for b in report.breaks
        ],
    }


# -- KPIs ------------------------------------------------------------------------------------
@router.get("/kpis", tags=["kpis"])
def kpi_summary(request: Request, _: Read) -> Item:
    """The business KPIs now (as ``q2c kpis``), and open cases by owner team and age."""
    hub = hub_of(request)
    return {**kpis.summary(hub), "open_cases_by_owner_and_age": runs.exceptions_by_owner_and_age(hub)}


@router.get("/kpis/series", tags=["kpis"])
def kpi_series(
    request: Request,
    _: Read,
    kpi: Annotated[str, Query(min_length=1, max_length=80, description="e.g. closed_won_to_project_seconds")],
    bucket: Annotated[Literal["hour", "day"], Query()] = "day",
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Item:
    """One KPI over time, per hour or day: count, mean, p50, p95."""
    return {
        "kpi": kpi,
        "bucket": bucket,
        "points": runs.series(hub_of(request), kpi, bucket=bucket, since=since, until=until),
    }


@router.get("/kpis/rates", tags=["kpis"])
def kpi_rates(request: Request, _: Read, bucket: Annotated[Literal["hour", "day"], Query()] = "day") -> Item:
    """Sync success rate and duplicate-customer rate over time."""
    return {
        "bucket": bucket,
        "points": runs.sync_rates(hub_of(request), bucket=bucket),
        "kpis": runs.kpi_names(hub_of(request)),
    }


# -- audit -----------------------------------------------------------------------------------
@router.get("/audit", response_model=Page[Item], tags=["audit"])
def search_audit(
    request: Request,
    _: Read,
    paging: Paging,
    subject: Text = None,
    actor: Text = None,
    action: Text = None,
    correlation_id: Text = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Item:
    """Audit entries, newest first, by subject (prefix), actor, action (prefix), correlation id and time."""
    entries, total = runs.search_audit(
        hub_of(request), subject=subject, actor=actor, action=action, correlation_id=correlation_id,
        since=since, until=until, limit=paging.limit, offset=paging.offset,
    )  # fmt: skip
    end = paging.offset + paging.limit
    nxt = str(request.url.include_query_params(offset=end, limit=paging.limit)) if end < total else None
    return {"items": entries, "total": total, "limit": paging.limit, "offset": paging.offset, "next": nxt}


@router.get("/audit/export", tags=["audit"], response_class=StreamingResponse)
def export_audit(
    request: Request,
    _: Read,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    subject: Text = None,
    action: Text = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> StreamingResponse:
    """Every matching audit entry, oldest first, as JSON lines or CSV."""
    body = list(
        runs.export_audit(hub_of(request), format, subject=subject, action=action, since=since, until=until)
    )
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(
        iter(body), media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
    )  # fmt: skip


@router.get("/audit/verify", tags=["audit"])
async def verify_audit(request: Request, _: Read) -> Item:
    """Recompute the audit chain; names the first broken entry, if any."""
    report = await run_in_threadpool(audit_service.verify, hub_of(request))
    return {
        "ok": report.ok,
        "entries": report.entries,
        "broken_at": report.broken_at,
        "reason": report.reason,
    }


# -- error codes, tokens ------------------------------------------------------------------------
@router.get("/errors", tags=["errors"])
def error_codes(_: Read, prefix: Text = None) -> list[Item]:
    """The catalogue of error codes: owner, retryable, HTTP status, meaning."""
    return [catalogue.as_dict(e) for e in catalogue.entries(prefix)]


@router.get("/tokens", tags=["tokens"])
def list_tokens(request: Request, _: Admin, include_revoked: bool = False) -> list[Item]:
    """API tokens (never their secrets)."""
    return [t.as_dict() for t in tokens.list_tokens(hub_of(request), include_revoked=include_revoked)]


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(request: Request, token: Admin, body: TokenBody) -> Item:
    """A new token; its text is in this answer only."""
    made, text = tokens.create(
        hub_of(request), owner=body.owner, scopes=body.scopes, actor=token.actor, note=body.note,
        expires_in_days=body.expires_in_days,
    )  # fmt: skip
    return {**made.as_dict(), "token": text}


@router.delete("/tokens/{token_id}", tags=["tokens"], responses=responses(404))
def revoke_token(
    request: Request, token: Admin, token_id: Annotated[str, Path(max_length=16, pattern=r"^[0-9a-f]+$")]
) -> Item:
    """Revoke a token at once."""
    return tokens.revoke(hub_of(request), token_id, actor=token.actor).as_dict()
