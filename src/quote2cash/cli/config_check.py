"""``q2c config``: check a hub config file before starting the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from quote2cash.cli._common import console, err, load, reported
from quote2cash.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help="Hub configuration files.")

#: The roles every flow needs; billing is optional.
REQUIRED_ROLES = ("crm", "psa", "erp")
ROLES = (*REQUIRED_ROLES, "billing")


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="the hub config file (YAML) to check, e.g. examples/hub.yaml")],
) -> None:
    """Validate a config file: print its systems by role and what is wrong (exit 0 valid, 2 not)."""
    from quote2cash.registry import connector

    try:
        cfg = load(file)
    except ConfigError as exc:
        err.print(f"[red]{escape(str(file))} is not valid[/] {escape(f'[{exc.code}]')}", soft_wrap=True)
        for line in exc.message.splitlines()[1:] or [exc.message]:
            err.print(f"  {escape(line.strip())}", soft_wrap=True)
        raise typer.Exit(2) from None
    problems: list[str] = []
    table = Table(title=f"{file}: systems by role", header_style="bold")
    for col in ("role", "system", "kind", "base URL"):
        table.add_column(col, overflow="fold")
    with reported():
        for role in ROLES:
            try:
                name = cfg.system_for(role)  # type: ignore[arg-type]
            except ConfigError as exc:
                if role in REQUIRED_ROLES or cfg.players(role):  # type: ignore[arg-type]
                    problems.append(str(exc))
                table.add_row(role, "—", "", "")
                continue
            system = cfg.systems[name]
            table.add_row(role, name, system.kind, str(getattr(system, "base_url", "")))
        unused = [n for n, s in cfg.systems.items() if not connector(s.kind).roles]
        problems.extend(f"system {n} plays no role" for n in unused)
    console.print(table)
    console.print(
        f"{len(cfg.legal_entities)} legal entit{'y' if len(cfg.legal_entities) == 1 else 'ies'}, "
        f"{len(cfg.rate_cards)} rate card(s), database {cfg.hub.database_url}"
    )
    if problems:
        for problem in problems:
            err.print(f"[red]error[/] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"[green]{escape(str(file))} is valid[/]")
