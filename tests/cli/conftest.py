"""Fixtures for ``q2c`` tests: the flow tests' sandboxes and hubs, a config file, and a way to run ``q2c``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from quote2cash.cli import app
from tests.flows.conftest import boxes, make_hub  # noqa: F401  (fixtures shared with the flow tests)
from tests.ops.conftest import config_file  # noqa: F401


def q2c(*args: str | Path | int) -> Any:
    """Run ``q2c`` in this process; the result has ``exit_code``, ``stdout`` and ``stderr``."""
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result: Any) -> str:
    """The single line a failed command printed on stderr (failing if there were more)."""
    lines = [line for line in str(result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]
