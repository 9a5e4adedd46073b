"""What the NetSuite contract tests share: credentials, a fast retry policy, the
sandbox on loopback and a client signed for it. Each test file seeds its own
master data through its ``ids`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials
from quote2cash.sandbox.netsuite import NetSuiteSandbox

CREDS = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "q2c-ts")
FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[NetSuiteSandbox]:
    """The NetSuite sandbox on loopback, persisted in the test's folder."""
    sb = NetSuiteSandbox(tmp_path / "netsuite.db")
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


@pytest.fixture
def client(sandbox: NetSuiteSandbox, ids: dict[str, str]) -> Iterator[NetSuiteClient]:
    """A client for the sandbox, once the test file's master data is seeded."""
    with NetSuiteClient(sandbox.url, CREDS, retry=FAST, timeout=2.0) as c:
        yield c
