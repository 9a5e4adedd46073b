"""What every ``q2c`` command shares: the consoles, loading the config, opening
the hub, and turning a hub error into a message and an exit status."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from quote2cash.errors import HubError, NotFoundError, UsageError

if TYPE_CHECKING:
    from quote2cash.config import HubConfig
    from quote2cash.runtime.hub import Hub

console = Console()
err = Console(stderr=True)
DEMO_DIR = Path(".q2c/demo")
DEFAULT_CONFIG = DEMO_DIR / "q2c.yaml"
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="hub config file (YAML)")]
MaybeConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help=f"hub config file (YAML); default {DEFAULT_CONFIG}")
]
ActorOpt = Annotated[str, typer.Option(help="who is acting")]
DEFAULT_ACTOR = os.environ.get("USER", "operator")

# Exit status by error type, most specific first. Arguments that cannot work
# and things that do not exist are usage errors (2); every other hub error
# also exits 2, as `q2c` always has. This table is the one place to change that.
EXIT_CODES: tuple[tuple[type[HubError], int], ...] = ((UsageError, 2), (NotFoundError, 2), (HubError, 2))


def exit_code(exc: HubError) -> int:
    """The exit status of a command that failed with ``exc``."""
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def fail(exc: HubError) -> NoReturn:
    """Print the error with its code and exit with its status."""
    err.print(f"[red]error[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(exit_code(exc))


@contextmanager
def reported() -> Iterator[None]:
    """Turn a hub error raised inside the block into a message and an exit status."""
    try:
        yield
    except HubError as exc:
        fail(exc)


def load(path: Path) -> HubConfig:
    """The hub configuration of a file (sandbox credentials as defaults for the environment)."""
    from quote2cash.config import load_config
    from quote2cash.sandbox.seed import SANDBOX_ENV

    # Sandbox credentials are defaults a real deployment overrides in its environment.
    return load_config(path, env={**SANDBOX_ENV, **os.environ})


@contextmanager
def open_hub(config: Path | None, *, launch: bool = False) -> Iterator[Hub]:
    """The hub of a config file, launched (flows can run) or not (database work only)."""
    path = config or DEFAULT_CONFIG
    if not path.exists():
        raise UsageError(f"no config file at {path}; pass --config (the demo writes {DEFAULT_CONFIG})")
    cfg = load(path)
    if launch:
        from quote2cash.flows import launch_hub

        hub = launch_hub(cfg)
    else:
        from quote2cash.runtime.hub import Hub

        hub = Hub(cfg)
    try:
        yield hub
    finally:
        if launch:
            hub.shutdown()
        else:
            hub.engine.dispose()
