"""``q2c errors``, docs/errors.md, exit statuses, and argument checks that need no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quote2cash.cli import app
from quote2cash.cli._common import exit_code
from quote2cash.config import load_config
from quote2cash.errors import CATALOGUE, ConfigError, NotFoundError, TransientError, UsageError
from quote2cash.ops import catalogue, posting, reconciliation
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config

DOCS = Path(__file__).parents[2] / "docs" / "errors.md"


def test_q2c_errors_lists_every_catalogue_code() -> None:
    result = CliRunner().invoke(app, ["errors", "--json"])
    assert result.exit_code == 0, result.output
    listed = {e["code"]: e for e in json.loads(result.stdout)}
    assert set(listed) == set(CATALOGUE)
    assert listed["case.not_found"] == {
        "code": "case.not_found",
        "owner": "integration",
        "retryable": False,
        "http_status": 404,
        "meaning": "There is no such exception case.",
    }
    assert listed["vendor.throttled"]["retryable"] is True


def test_q2c_errors_filters_by_prefix_and_prints_a_table() -> None:
    result = CliRunner().invoke(app, ["errors", "--code", "case.", "--json"])
    codes = {e["code"] for e in json.loads(result.stdout)}
    assert codes == {c for c in CATALOGUE if c.startswith("case.")} and "case.reason_missing" in codes
    table = CliRunner().invoke(app, ["errors", "--code", "recon."])
    recon = sum(1 for c in CATALOGUE if c.startswith("recon."))
    assert (
        table.exit_code == 0 and f"{recon} error code(s)" in table.output and "recon.missing" in table.output
    )


def test_docs_errors_md_is_the_catalogue() -> None:
    assert DOCS.read_text() == catalogue.markdown(), "docs/errors.md is stale: run scripts/gen_error_docs"
    for code in CATALOGUE:
        assert f"`{code}`" in DOCS.read_text()


def test_usage_and_not_found_errors_exit_2() -> None:
    assert exit_code(UsageError("bad")) == 2
    assert exit_code(NotFoundError("gone", code="case.not_found")) == 2
    assert exit_code(ConfigError("bad file")) == 2 and exit_code(TransientError("later")) == 2


@pytest.fixture
def idle_hub(tmp_path: Path) -> Hub:
    """A hub that is not launched, on systems that are never called."""
    nowhere = "http://127.0.0.1:9"
    raw = hub_config(nowhere, nowhere, nowhere, f"sqlite:///{tmp_path}/h.db")
    return Hub(load_config(data=raw, env=SANDBOX_ENV))


@pytest.mark.parametrize(
    ("kind", "period", "message"),
    [
        ("weeks", "2026-11", "unknown kind 'weeks'"),
        ("time", "2026-13", "not a month"),
        ("expenses", "11/2026", "not a month"),
    ],
)
def test_reconcile_refuses_a_bad_kind_or_period(idle_hub: Hub, kind: str, period: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        reconciliation.reconcile(idle_hub, kind, period)
    assert refused.value.code == "usage.invalid_argument"


def test_posting_refuses_a_bad_kind(idle_hub: Hub) -> None:
    with pytest.raises(UsageError, match="use 'time' or 'expenses'"):
        posting.post_now(idle_hub, "invoices")


def test_cli_reports_a_bad_kind_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "q2c.yaml"
    nowhere = "http://127.0.0.1:9"
    config.write_text(json.dumps(hub_config(nowhere, nowhere, nowhere, f"sqlite:///{tmp_path}/h.db")))
    result = CliRunner().invoke(app, ["reconcile", "weeks", "--period", "2026-11", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "[usage.invalid_argument] unknown kind 'weeks'" in result.output
