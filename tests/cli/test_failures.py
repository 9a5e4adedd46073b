"""Everyday failures give one line on stderr naming what to check, and exit status 2."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from quote2cash.sandbox.seed import hub_config
from tests.cli.conftest import one_line, q2c


def _config(tmp_path: Path, database_url: str, **changes: object) -> Path:
    raw = hub_config("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9", database_url)
    raw.update(changes)
    path = tmp_path / "q2c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unreachable_database(tmp_path: Path) -> None:
    config = _config(tmp_path, "postgresql://q2c:hunter2@127.0.0.1:9/hub")
    for command in (["kpis"], ["exceptions", "list"], ["audit", "verify"]):
        result = q2c(*command, "--config", config)
        assert result.exit_code == 2
        line = one_line(result)
        assert "cannot use the hub database at postgresql://q2c:***@127.0.0.1:9/hub" in line
        assert f"check that it is running and reachable, and hub.database_url in {config}" in line
        assert "hunter2" not in result.output


def test_database_without_hub_tables(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'empty.sqlite'}")
    result = q2c("exceptions", "list", "--config", config)
    assert result.exit_code == 2
    assert "has no hub tables yet" in one_line(result)


def test_systems_given_as_a_list(tmp_path: Path) -> None:
    raw = hub_config(
        "http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9", f"sqlite:///{tmp_path}/x.sqlite"
    )
    raw["systems"] = [{"name": name, **s} for name, s in raw["systems"].items()]
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(raw))
    commands: list[list[str | Path]] = [
        ["kpis", "--config", path],
        ["config", "check", path],
        ["run", "--config", path],
    ]
    for command in commands:
        result = q2c(*command)
        assert result.exit_code == 2
        assert "'systems' must be a mapping of system names to their settings" in result.stderr
        assert "not a list" in result.stderr
    assert "[config.shape]" in one_line(q2c("kpis", "--config", path))


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    for command in (["kpis"], ["exceptions", "show", "1"], ["run"], ["post", "time", "--now"]):
        result = q2c(*command, "--config", missing)
        assert result.exit_code == 2
        assert f"no config file at {missing}; pass --config FILE" in one_line(result)


def test_invalid_value_in_the_config(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        f"sqlite:///{tmp_path}/x.sqlite",
        hub={"database_url": f"sqlite:///{tmp_path}/x", "sandbox": True, "poll_interval_seconds": -1},
    )
    result = q2c("kpis", "--config", config)
    assert result.exit_code == 2
    line = one_line(result)
    assert "[config.invalid]" in line and "hub.poll_interval_seconds" in line


def test_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = q2c("sandbox", "up", "--folder", tmp_path / "boxes", "--port", port - 1)
    assert result.exit_code == 2
    line = one_line(result)
    assert f"port {port} on 127.0.0.1 (for the Kantata sandbox) is already in use" in line
    assert "--port N" in line
    assert not (tmp_path / "boxes").exists()  # refused before anything was seeded


def test_sandbox_that_does_not_start(tmp_path: Path) -> None:
    folder = tmp_path / "boxes"
    folder.mkdir()
    (folder / "salesforce.sqlite").write_text("not a database")
    result = q2c("sandbox", "up", "--folder", folder, "--port", 0)
    assert result.exit_code == 2
    line = one_line(result)
    assert f"the sandbox files in {folder} cannot be opened" in line
    assert "remove the folder to start afresh" in line


def test_bad_enums_and_periods_are_refused_before_anything_runs(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"  # refused on the argument, before the config is even read
    cases: list[tuple[list[str | Path], str]] = [
        (["exceptions", "list", "--status", "bogus"], "unknown case status 'bogus': use one of open"),
        (["reconcile", "time", "--period", "2026-1"], "period '2026-1' is not a month written YYYY-MM"),
        (["reconcile", "time", "--period", "2026-13"], "period '2026-13' is not a month written YYYY-MM"),
        (["reconcile", "hours", "--period", "2026-10"], "unknown kind 'hours': use 'time' or 'expenses'"),
        (["post", "hours", "--now"], "unknown kind 'hours': use 'time' or 'expenses'"),
        (["sandbox", "up", "--month", "2026-1", "--folder", tmp_path], "period '2026-1' is not a month"),
    ]
    for command, message in cases:
        config: list[str | Path] = ["--config", missing] if command[0] != "sandbox" else []
        result = q2c(*command, *config)
        assert result.exit_code == 2, command
        assert message in one_line(result), command
