"""``q2c workers recover`` on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from quote2cash.cli import app
from quote2cash.cli._common import load
from quote2cash.ops import workers
from quote2cash.runtime.hub import Hub


def test_recovering_this_workers_own_id_is_refused(config_file: Path) -> None:
    own = load(config_file).executor_id
    result = CliRunner().invoke(app, ["workers", "recover", "--executor", own, "--config", str(config_file)])
    assert result.exit_code == 2, result.output
    assert f"{own} is this worker's own executor id" in result.output


def test_a_worker_with_nothing_unfinished_hands_over_nothing(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub()
    assert workers.recover(hub, "worker-gone-for-good", timeout=1) == []
