"""What every ``q2c`` command shares: the consoles, loading the config, opening
the hub, and turning a failure into one line and an exit status.

Everyday failures (a hub error, a config that does not validate, a database
that cannot be reached, a port already taken, a file that cannot be opened)
print one line on stderr naming what to check, and exit with status 2; a
traceback means a bug.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from quote2cash.errors import ConfigError, HubError, NotFoundError, UsageError

if TYPE_CHECKING:
    from quote2cash.config import HubConfig
    from quote2cash.runtime.hub import Hub

console = Console()
err = Console(stderr=True)
DEMO_DIR = Path(".q2c/demo")
DEFAULT_CONFIG = DEMO_DIR / "q2c.yaml"
ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="hub config file (YAML), e.g. examples/hub.yaml")
]
MaybeConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"hub config file (YAML); without it, the one the demo writes ({DEFAULT_CONFIG})",
        show_default=False,
    ),
]
DEFAULT_ACTOR = os.environ.get("USER", "operator")
ActorOpt = Annotated[str, typer.Option(help="who is acting, as recorded in the audit trail (default: $USER)")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="print JSON (stable keys, numbers as numbers) instead of tables")
]

# Exit status by error type, most specific first. Arguments that cannot work
# and things that do not exist are usage errors (2); every other hub error
# also exits 2, as `q2c` always has. This table is the one place to change that.
EXIT_CODES: tuple[tuple[type[HubError], int], ...] = ((UsageError, 2), (NotFoundError, 2), (HubError, 2))


def exit_code(exc: HubError) -> int:
    """The exit status of a command that failed with ``exc``."""
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def fail(exc: HubError) -> NoReturn:
    """Print the error with its code and exit with its status."""
    say(str(exc))
    raise typer.Exit(exit_code(exc))


def say(message: str) -> None:
    """Print one error line on stderr (never wrapped, whatever the terminal width)."""
    err.print(f"[red]error[/] {escape(' '.join(message.split()))}", soft_wrap=True)


def refuse(message: str) -> NoReturn:
    """Print one error line and exit with status 2."""
    say(message)
    raise typer.Exit(2)


@contextmanager
def reported(database: str | None = None, config: Path | None = None) -> Iterator[None]:
    """Turn an everyday failure raised inside the block into one line and an exit status.

    ``database`` and ``config`` name what to check when the database fails.
    """
    import sqlalchemy as sa
    from pydantic import ValidationError

    try:
        yield
    except HubError as exc:
        fail(exc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or exc.title
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        refuse(f"{where}: {first['msg']}{more}")
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.InterfaceError) as exc:
        refuse(database_problem(exc, database, config))
    except sqlite3.DatabaseError as exc:
        refuse(f"a sandbox file cannot be opened: {exc}; remove the sandbox folder to start afresh")
    except OSError as exc:
        target = f" ({exc.filename})" if exc.filename else ""
        refuse(f"{exc.strerror or exc}{target}")


def database_problem(exc: Exception, url: str | None, config: Path | None) -> str:
    """One line saying why the hub database failed and what to check."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    where = f" at {_safe_url(url)}" if url else ""
    in_file = f" in {config}" if config else ""
    if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
        return (
            f"the hub database{where} has no hub tables yet ({reason}); "
            f"start the hub once (q2c run --once), or check hub.database_url{in_file}"
        )
    return (
        f"cannot use the hub database{where}: {reason}; check that it is running and reachable, "
        f"and hub.database_url{in_file} (or Q2C_DATABASE_URL)"
    )


def _safe_url(url: str) -> str:
    """The URL with any password left out."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given; it holds no secret we could hide
        return url


def load(path: Path) -> HubConfig:
    """The hub configuration of a file.

    Sandbox credentials stand in for unset environment variables only when the
    file points at sandboxes (``hub.sandbox: true`` and every system on
    loopback, see :func:`quote2cash.config.points_at_sandboxes`); anywhere else
    a missing secret stops the command with one line naming the variable.
    """
    from quote2cash.config import load_config, points_at_sandboxes
    from quote2cash.sandbox.seed import SANDBOX_ENV

    if not path.exists():
        raise ConfigError(
            f"no config file at {path}; pass --config FILE (an annotated example: examples/hub.yaml; "
            f"the demo writes {DEFAULT_CONFIG})",
            code="config.missing",
        )
    data = _check_shape(path)
    if points_at_sandboxes(data):
        return load_config(path, env={**SANDBOX_ENV, **os.environ})
    return load_config(path)


def _check_shape(path: Path) -> Any:
    """Refuse the shapes ``load_config`` does not explain (``systems`` as a list); the parsed file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None  # load_config says what is wrong with an unreadable or malformed file
    systems = data.get("systems") if isinstance(data, dict) else None
    if systems is not None and not isinstance(systems, dict):
        raise ConfigError(
            f"{path}: 'systems' must be a mapping of system names to their settings "
            f"(e.g. 'crm: {{kind: salesforce, ...}}'), not a {type(systems).__name__}; "
            "see examples/hub.yaml",
            code="config.shape",
            record="systems",
        )
    return data


@contextmanager
def open_hub(config: Path | None, *, launch: bool = False) -> Iterator[Hub]:
    """The hub of a config file, launched (flows can run) or not (database work only)."""
    path = config or DEFAULT_CONFIG
    cfg = load(path)
    with reported(cfg.hub.database_url, path):
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
