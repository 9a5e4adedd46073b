"""What the NetSuite contract tests share: credentials, a fast retry policy, the
sandbox on loopback, a client signed for it and a signer for hand-made requests.
Each test file seeds its own master data through its ``ids`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials, TokenAuth
from quote2cash.sandbox.netsuite import NetSuiteSandbox

CREDS = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "q2c-ts")
FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)


def authorization_header(
    method: str, url: str, credentials: TbaCredentials, *, nonce: str, timestamp: int
) -> str:
    """The ``Authorization`` header the connector's signer puts on ``method url``."""
    request = httpx.Request(method, url)
    TokenAuth(credentials, nonce=lambda: nonce, timestamp=lambda: timestamp).sign(request)
    return request.headers["Authorization"]


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
