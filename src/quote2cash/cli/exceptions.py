"""``q2c exceptions``: the exception queue."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from quote2cash.cli._common import (
    DEFAULT_ACTOR,
    ActorOpt,
    MaybeConfigOpt,
    console,
    open_hub,
    reported,
)

app = typer.Typer(no_args_is_help=True, help="The exception queue.")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, default=str, indent=2))


@app.command("list")
def list_(
    config: MaybeConfigOpt = None,
    status: Annotated[str, typer.Option(help="open, resubmitted, resolved, ignored or all")] = "open",
    code: Annotated[str | None, typer.Option(help="only this error code")] = None,
    flow: Annotated[str | None, typer.Option(help="only this flow")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List exception cases, oldest first."""
    from quote2cash.ops import cases

    with reported(), open_hub(config) as hub:
        found = cases.list_cases(hub, status=status, code=code, flow=flow)
    if as_json:
        _json(found)
        return
    table = Table(title=f"{len(found)} exception case(s) ({status})")
    for col in ("id", "code", "owner", "subject", "age h", "status", "message"):
        table.add_column(col, overflow="fold")
    for c in found:
        table.add_row(
            str(c["id"]), c["code"], c["owner"], c["subject"], str(c["age_hours"]), c["status"], c["message"]
        )
    console.print(table)


@app.command("show")
def show(case_id: int, config: MaybeConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one case: what is wrong, who owns it, what was already written, and its history."""
    from quote2cash.ops import cases

    with reported(), open_hub(config) as hub:
        detail = cases.show_case(hub, case_id)
    if as_json:
        _json(asdict(detail))
        return
    c = detail.case
    console.print(f"[bold]case {c['id']}[/] {escape(c['code'])} — {c['status']}, owner {c['owner']}")
    console.print(f"{escape(c['subject'])} in flow {c['flow']}: {escape(c['message'])}")
    if detail.run is not None:
        console.print(f"flow run: {detail.run['status']}, attempt {detail.run['attempts']}")
    if detail.written:
        console.print("already written:")
        for step in detail.written:
            console.print(f"  {step.get('system')}: {step['step']} id {step.get('id')}")
    else:
        console.print("already written: nothing")
    if c.get("resolution"):
        console.print(f"resolution: {escape(json.dumps(c['resolution'], default=str))}")
    if detail.audit:
        table = Table(title="audit trail (newest first)")
        for col in ("seq", "at", "actor", "action"):
            table.add_column(col, overflow="fold")
        for e in detail.audit:
            table.add_row(str(e["seq"]), str(e["at"]), e["actor"], e["action"])
        console.print(table)


@app.command("resubmit")
def resubmit(
    case_id: int,
    config: MaybeConfigOpt = None,
    link: Annotated[str | None, typer.Option(help="probable duplicate: link to this ERP customer id")] = None,
    create_new: Annotated[bool, typer.Option(help="probable duplicate: create a new customer")] = False,
    actor: ActorOpt = DEFAULT_ACTOR,
) -> None:
    """Fix-and-resubmit: re-run the case's flow from its kept payload (the systems must be reachable)."""
    from quote2cash.ops import cases

    with reported(), open_hub(config, launch=True) as hub:
        wf = cases.resubmit(hub, case_id, actor=f"user:{actor}", link_to=link, create_new=create_new)
        if wf is None:
            console.print(f"case {case_id} resubmitted: the entry is validated again in the next posting run")
            return
        result = cases.run_result(wf)
    console.print(
        f"case {case_id} resubmitted as {wf}: {result.get('status')}"
        + (f" (new case {result['case']}: {result['code']})" if result.get("case") else "")
    )


@app.command("resubmit-all")
def resubmit_all(
    config: MaybeConfigOpt = None,
    code: Annotated[str | None, typer.Option(help="every open case of this error code")] = None,
    flow: Annotated[str | None, typer.Option(help="every open case of this flow")] = None,
    case: Annotated[list[int] | None, typer.Option("--case", help="this case (repeatable)")] = None,
    actor: ActorOpt = DEFAULT_ACTOR,
    as_json: JsonOpt = False,
) -> None:
    """Bulk fix-and-resubmit by error code and/or flow; a case that cannot be resubmitted does not stop the rest."""
    from quote2cash.ops import cases

    with reported(), open_hub(config, launch=True) as hub:
        outcomes = cases.resubmit_many(hub, actor=f"user:{actor}", code=code, flow=flow, case_ids=case)
    if as_json:
        _json([asdict(o) for o in outcomes])
    else:
        table = Table(title=f"{sum(o.ok for o in outcomes)} of {len(outcomes)} case(s) resubmitted")
        for col in ("case", "outcome"):
            table.add_column(col, overflow="fold")
        for o in outcomes:
            if o.error:
                outcome = (
                    f"[red]not resubmitted[/] {escape(str(o.error['code']))}: {escape(o.error['message'])}"
                )
            else:
                outcome = o.workflow_id or "waits for the next posting run"
            table.add_row(str(o.case_id), outcome)
        console.print(table)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("ignore")
def ignore(
    case_id: int,
    reason: Annotated[str, typer.Option(help="why no action is needed (required)")] = "",
    config: MaybeConfigOpt = None,
    actor: ActorOpt = DEFAULT_ACTOR,
) -> None:
    """Close a case without action, keeping the reason."""
    from quote2cash.ops import cases

    with reported(), open_hub(config) as hub:
        cases.ignore(hub, case_id, actor=f"user:{actor}", reason=reason)
    console.print(f"case {case_id} ignored")
