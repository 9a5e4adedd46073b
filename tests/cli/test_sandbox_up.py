"""``q2c sandbox up`` for trying the hub outside the demo: a config with an absolute database path,
a month of approved work once the hub has created the projects, or master data only."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

Q2C = [sys.executable, "-c", "from quote2cash.cli import main; main()"]


def _free_ports() -> int:
    """A first port with the two after it free."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first < 65000 and all(_free(first + i) for i in (1, 2)):
            return first
    raise AssertionError("no three free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def _sandboxes(folder: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    up = subprocess.Popen(
        [*Q2C, "sandbox", "up", "--folder", str(folder), "--port", str(_free_ports()), "--deals", "8", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield up
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)


def _wait_for(up: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    assert up.stdout is not None
    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        seen += line
        if text in " ".join(seen.split()):
            return " ".join(seen.split())
        if not line and up.poll() is not None:
            break
    raise AssertionError(f"{text!r} never printed; got:\n{seen}\n{up.stderr.read() if up.stderr else ''}")


def test_month_is_seeded_once_the_hub_created_the_projects(tmp_path: Path) -> None:
    folder = tmp_path / "boxes"
    with _sandboxes(folder, "--won", "3", "--month", "2026-10") as up:
        _wait_for(up, "once the hub has created the projects")
        config = folder / "q2c.yaml"
        database = yaml.safe_load(config.read_text())["hub"]["database_url"]
        assert database == f"sqlite:///{(folder / 'hub.sqlite').resolve()}"  # absolute: works from any folder
        hub = subprocess.run(
            [*Q2C, "run", "--config", str(config), "--once"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert hub.returncode == 0, hub.stderr
        assert "flows: 3 completed" in hub.stderr
        seeded = _wait_for(up, "q2c reconcile time --period 2026-10")
    assert "2026-10:" in seeded and "approved on 3 project(s)" in seeded
    entries = int(seeded.split("2026-10: ")[-1].split(" time entries")[0])
    assert entries > 100
    assert f"q2c post time --now --config {config}" in seeded


def test_master_data_only_seeds_no_deals(tmp_path: Path) -> None:
    folder = tmp_path / "boxes"
    with _sandboxes(folder, "--master-data-only") as up:
        printed = _wait_for(up, "hub config for these sandboxes")
    assert "closed-won" not in printed
    with sqlite3.connect(folder / "salesforce.sqlite") as db:
        kinds = dict(db.execute("SELECT kind, count(*) FROM docs GROUP BY kind").fetchall())
    assert kinds.get("Account", 0) > 0 and "Opportunity" not in kinds
