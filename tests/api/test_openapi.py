"""The OpenAPI 3 document is committed (docs/openapi.json), matches the app, is valid,
and schemathesis, run against it on a live hub, finds no 5xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quote2cash.api import create_app, openapi_document
from quote2cash.config import load_config
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config
from tests.api.conftest import Api

DOC = Path(__file__).parents[2] / "docs" / "openapi.json"
REGENERATE = "python -c 'from tests.api.test_openapi import write; write()'"


def generated() -> dict[str, Any]:
    """The document of the app (it does not depend on the configuration)."""
    raw = hub_config("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", "sqlite://")
    hub = Hub(load_config(data=raw, env={**SANDBOX_ENV, "Q2C_AUDIT_KEY": "0" * 64}))
    try:
        return openapi_document(create_app(hub, dispatch=False))
    finally:
        hub.shutdown()
        hub.engine.dispose()


def write() -> None:
    """Regenerate docs/openapi.json."""
    DOC.write_text(json.dumps(generated(), indent=2, sort_keys=True) + "\n")


def test_the_committed_document_is_the_apps() -> None:
    assert json.loads(DOC.read_text()) == json.loads(json.dumps(generated())), f"stale: run {REGENERATE}"


def test_the_document_is_openapi_3_and_every_operation_is_secured_or_open_on_purpose() -> None:
    from openapi_spec_validator import validate

    doc = json.loads(DOC.read_text())
    assert doc["openapi"].startswith("3.")
    validate(doc)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            open_route = path in ("/healthz",) or path.startswith("/webhooks/")
            assert bool(op.get("security")) != open_route, (method, path)
            assert op.get("summary") or op.get("description"), (method, path)


def _schemathesis(api: Api, examples: int) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(
        f"{api.url}/openapi.json", headers={"Authorization": f"Bearer {api.tokens['admin']}"}
    )
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {api.tokens['admin']}"})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert not failures, "\n".join(failures[:10])


def test_schemathesis_finds_no_server_error(api: Api, db_url: str) -> None:
    if "postgres" in db_url:
        pytest.skip("the quick run checks the HTTP layer; the long run covers PostgreSQL")
    _schemathesis(api, examples=3)


@pytest.mark.slow
def test_schemathesis_long_run_finds_no_server_error(api: Api) -> None:
    _schemathesis(api, examples=60)
