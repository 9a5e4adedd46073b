"""Fixtures for operations tests: the flow tests' sandboxes and hubs, and a config file for ``q2c``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quote2cash.sandbox.seed import Sandboxes
from tests.flows.conftest import boxes, make_hub  # noqa: F401  (fixtures shared with the flow tests)

EXECUTOR = "ops-test-worker"


@pytest.fixture
def config_file(boxes: Sandboxes, db_url: str, tmp_path: Path) -> Path:  # noqa: F811
    """A hub config file for the test database and sandboxes, as ``q2c --config`` reads it."""
    raw = boxes.config(db_url)
    raw["hub"]["executor_id"] = EXECUTOR
    path = tmp_path / "q2c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
