"""Sandbox credentials are never a fallback: the hub refuses to start with a missing secret.

Only a config that points at sandboxes (``hub.sandbox: true`` and every
system on loopback) may take the sandbox credentials and a sandbox audit key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config
from tests.cli.conftest import one_line, q2c

REAL = (
    "https://acme.my.salesforce.com",
    "https://api.mavenlink.com",
    "https://1234567.suitetalk.api.netsuite.com",
)
LOOPBACK = ("http://127.0.0.1:8701", "http://127.0.0.1:8702", "http://127.0.0.1:8703")


@pytest.fixture(autouse=True)
def _no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [*SANDBOX_ENV, "Q2C_AUDIT_KEY", "Q2C_DATABASE_URL"]:
        monkeypatch.delenv(var, raising=False)


def _config(tmp_path: Path, urls: tuple[str, str, str], *, sandbox: bool, **audit: Any) -> Path:
    raw = hub_config(*urls, f"sqlite:///{tmp_path / 'hub.sqlite'}")
    if not sandbox:  # a config for real systems, as an operator writes it
        del raw["hub"]["sandbox"]
        del raw["audit"]
    if audit:
        raw["audit"] = audit
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_hub_refuses_to_start_naming_the_missing_secret(tmp_path: Path) -> None:
    config = _config(tmp_path, REAL, sandbox=False)
    # The installed command, as an operator runs it: one line on stderr, exit status 2.
    env = {k: v for k, v in os.environ.items() if k not in SANDBOX_ENV}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("q2c")), "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert "Q2C_SANDBOX_SF_SECRET" in lines[0] and "config.missing_secret" in lines[0]
    assert "sandbox-secret" not in done.stderr + done.stdout
    assert not (tmp_path / "hub.sqlite").exists()  # nothing started


def test_loopback_urls_without_the_sandbox_marker_get_no_sandbox_credentials(tmp_path: Path) -> None:
    result = q2c("run", "--once", "--config", _config(tmp_path, LOOPBACK, sandbox=False))
    assert result.exit_code == 2
    assert "Q2C_SANDBOX_SF_SECRET" in one_line(result)


def test_the_audit_key_is_a_secret_the_hub_will_not_start_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in SANDBOX_ENV.items():
        monkeypatch.setenv(var, value)  # every system's secret is set; the audit key is not
    result = q2c("run", "--once", "--config", _config(tmp_path, REAL, sandbox=False))
    assert result.exit_code == 2
    line = one_line(result)
    assert "Q2C_AUDIT_KEY" in line and "config.missing_secret" in line
    # A sandbox key is no way around it outside sandboxes.
    config = _config(tmp_path, REAL, sandbox=False, sandbox_key="not-a-real-key-at-all")
    result = q2c("run", "--once", "--config", config)
    assert result.exit_code == 2 and "config.audit" in one_line(result)


def test_the_sandbox_marker_on_a_real_system_is_refused(tmp_path: Path) -> None:
    result = q2c("config", "check", _config(tmp_path, REAL, sandbox=True))
    assert result.exit_code == 2
    assert "config.sandbox_not_local" in result.stderr and "acme.my.salesforce.com" in result.stderr


def test_a_sandbox_config_uses_sandbox_credentials_and_a_key_file_beside_its_database(tmp_path: Path) -> None:
    result = q2c("config", "check", _config(tmp_path, LOOPBACK, sandbox=True))
    assert result.exit_code == 0, result.stderr
    key_file = tmp_path / "hub.sqlite.audit-key"
    assert key_file.exists() and len(key_file.read_text().strip()) == 64
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
