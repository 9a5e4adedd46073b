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
    JsonOpt,
    MaybeConfigOpt,
    console,
    err,
    open_hub,
    reported,
)

app = typer.Typer(no_args_is_help=True, help="The exception queue.")
CaseArg = Annotated[int, typer.Argument(help="the case id (from `q2c exceptions list`)")]


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, default=str, indent=2))


@app.command("list")
def list_(
    config: MaybeConfigOpt = None,
    status: Annotated[
        str, typer.Option(help="open (includes resubmitted), resubmitted, resolved, ignored or all")
    ] = "open",
    code: Annotated[
        str | None, typer.Option(help="only this error code, e.g. psa.role_unknown", show_default=False)
    ] = None,
    flow: Annotated[
        str | None, typer.Option(help="only this flow, e.g. lead_to_project", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List exception cases, oldest first."""
    from quote2cash.ops import cases

    with reported():
        cases.check_status(status)
    with reported(), open_hub(config) as hub:
        found = cases.list_cases(hub, status=status, code=code, flow=flow)
    if as_json:
        _json(found)
        return
    table = Table(title=f"{len(found)} exception case(s) ({status})")
    for col in ("id", "code", "owner", "project", "subject", "age (h)", "status", "message"):
        table.add_column(col, overflow="fold")
    for c in found:
        table.add_row(
            str(c["id"]),
            c["code"],
            c["owner"],
            escape(c.get("project") or "—"),
            escape(c["subject"]),
            f"{c['age_hours']:.1f}",
            c["status"],
            escape(c["message"]),
        )
    console.print(table)


@app.command("show")
def show(case_id: CaseArg, config: MaybeConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one case: what is wrong, who owns it, what was already written, and its history."""
    from quote2cash.ops import cases

    with reported(), open_hub(config) as hub:
        detail = cases.show_case(hub, case_id)
    if as_json:
        _json(asdict(detail))
        return
    c = detail.case
    facts = Table(title=f"Exception case {c['id']}", show_header=False)
    facts.add_column("field", style="bold")
    facts.add_column("value", overflow="fold")
    rows = [
        ("code", c["code"]),
        ("status", c["status"]),
        ("owner", c["owner"]),
        ("project", c.get("project") or "—"),
        ("subject", c["subject"]),
        ("flow", c["flow"]),
        ("message", c["message"]),
        ("occurrences", str(c.get("occurrences", 1))),
        ("age", f"{c['age_hours']:.1f} h"),
    ]
    if detail.run is not None:
        rows.append(("flow run", f"{detail.run['status']}, attempt {detail.run['attempts']}"))
    if c.get("resolution"):
        rows.append(("resolution", json.dumps(c["resolution"], default=str)))
    for field, value in rows:
        facts.add_row(field, escape(str(value)))
    console.print(facts)
    if detail.written:
        console.print("already written:")
        for step in detail.written:
            console.print(f"  {step.get('system')}: {step['step']} id {step.get('id')}", soft_wrap=True)
    else:
        console.print("already written: nothing")
    history = Table(title="History (oldest first)", header_style="bold")
    for col in ("at (UTC)", "event", "by", "note"):
        history.add_column(col, overflow="fold")
    for e in detail.history:
        history.add_row(_at(e["at"]), e["event"], escape(str(e["by"])), escape(str(e["note"] or "")))
    console.print(history)
    if detail.audit:
        table = Table(title="audit trail of the subject (newest first)", header_style="bold")
        for col in ("seq", "at (UTC)", "actor", "action"):
            table.add_column(col, overflow="fold")
        for e in detail.audit:
            table.add_row(str(e["seq"]), _at(e["at"]), escape(e["actor"]), e["action"])
        console.print(table)


def _at(value: Any) -> str:
    """A timestamp to the second."""
    text = value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "")


@app.command("resubmit")
def resubmit(
    case_id: CaseArg,
    config: MaybeConfigOpt = None,
    link: Annotated[
        str | None,
        typer.Option(help="probable duplicate: link to this ERP customer id", show_default=False),
    ] = None,
    create_new: Annotated[bool, typer.Option(help="probable duplicate: create a new customer")] = False,
    actor: ActorOpt = DEFAULT_ACTOR,
) -> None:
    """Fix-and-resubmit: re-run the case's flow from its kept payload (the systems must be reachable).

    Exits 1 when the re-run stops on an exception again.
    """
    from quote2cash.ops import cases

    with reported(), open_hub(config, launch=True) as hub:
        wf = cases.resubmit(hub, case_id, actor=f"user:{actor}", link_to=link, create_new=create_new)
        if wf is None:
            console.print(f"case {case_id} resubmitted: the entry is validated again in the next posting run")
            return
        result = cases.run_result(wf)
    if result.get("status") == "completed":
        console.print(f"case {case_id} resubmitted as {wf}: completed")
        return
    again = f"case {result['case']}: {result.get('code')}" if result.get("case") else "no new case"
    err.print(
        f"[red]case {case_id} resubmitted as {escape(wf)} and failed again[/] "
        f"({escape(str(result.get('status')))}, {escape(again)}); see q2c exceptions show {result.get('case', case_id)}",
        soft_wrap=True,
    )
    raise typer.Exit(1)


@app.command("resubmit-all")
def resubmit_all(
    config: MaybeConfigOpt = None,
    code: Annotated[
        str | None, typer.Option(help="every open case of this error code", show_default=False)
    ] = None,
    flow: Annotated[str | None, typer.Option(help="every open case of this flow", show_default=False)] = None,
    case: Annotated[
        list[int] | None, typer.Option("--case", help="this case (repeatable)", show_default=False)
    ] = None,
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
    case_id: CaseArg,
    reason: Annotated[str, typer.Option(help="why no action is needed (required)")] = "",
    config: MaybeConfigOpt = None,
    actor: ActorOpt = DEFAULT_ACTOR,
) -> None:
    """Close a case without action, keeping the reason."""
    from quote2cash.ops import cases

    with reported(), open_hub(config) as hub:
        cases.ignore(hub, case_id, actor=f"user:{actor}", reason=reason)
    console.print(f"case {case_id} ignored")
