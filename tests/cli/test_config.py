"""Getting started: the example config, ``q2c config check``, ``--version`` and help on every option."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import typer.main

from quote2cash.cli import app
from quote2cash.config import HubConfig, load_config
from quote2cash.sandbox.seed import SANDBOX_ENV
from tests.cli.conftest import q2c

EXAMPLE = Path(__file__).parents[2] / "examples" / "hub.yaml"


def test_the_example_config_validates_and_explains_every_section() -> None:
    config = load_config(EXAMPLE, env=SANDBOX_ENV)
    assert {config.system_for(r) for r in ("crm", "psa", "erp")} == {"crm", "psa", "erp"}
    text = EXAMPLE.read_text()
    top_level = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    # Every section of the configuration is in the example, once.
    assert sorted(top_level) == sorted(set(HubConfig.model_fields) - {"source"})
    for section in top_level:  # each section comes after a comment saying what it is
        before = text.split(f"\n{section}:")[0].rstrip().splitlines()[-1]
        assert before.startswith("#"), section


def test_config_check_prints_systems_by_role() -> None:
    result = q2c("config", "check", EXAMPLE)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert "salesforce" in rows["crm"] and "kantata" in rows["psa"] and "netsuite" in rows["erp"]
    assert "—" in rows["billing"]
    assert f"{EXAMPLE} is valid" in " ".join(result.stdout.split())


def test_config_check_says_what_is_wrong(tmp_path: Path) -> None:
    broken = tmp_path / "hub.yaml"
    text = EXAMPLE.read_text().replace("  poll_interval_seconds: 2", "  poll_interval_seconds: -2")
    broken.write_text(text.split("\nlegal_entities:")[0])  # and no legal entities at all
    result = q2c("config", "check", broken)
    assert result.exit_code == 2
    assert f"{broken} is not valid [config.invalid]" in result.stderr
    problems = result.stderr.splitlines()[1:]
    assert any(
        p.strip().startswith("hub.poll_interval_seconds: Input should be greater than 0") for p in problems
    )
    assert any(p.strip().startswith("legal_entities: Field required") for p in problems)


def test_version() -> None:
    result = q2c("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"q2c (quote2cash) {version('quote2cash')}"


def _commands(command: click.Command, path: str = "q2c") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help_and_config_says_its_default() -> None:
    missing = []
    root: Any = typer.main.get_command(app)
    for path, command in _commands(root):
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            if not getattr(param, "help", None):
                missing.append(f"{path} {param.name}")
            if param.name == "config":
                assert "YAML" in str(param.help) and (
                    param.required or ".q2c/demo/q2c.yaml" in str(param.help)
                ), path
    assert not missing, missing
