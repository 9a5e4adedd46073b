"""Access control: nothing is reachable without a live token of the right scope, except
``/healthz`` and the webhook routes; tokens are hashed, revocable, and name their owner in
the audit trail."""

from __future__ import annotations

import re

import sqlalchemy as sa
from typer.testing import CliRunner

from quote2cash.api import create_app, openapi_document
from quote2cash.store.tables import api_token, audit_log
from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def _operations(api: Api) -> list[tuple[str, str]]:
    doc = openapi_document(create_app(api.hub, dispatch=False))
    ops = []
    for path, methods in doc["paths"].items():
        for method in methods:
            concrete = re.sub(r"\{case_id\}", "1", path)
            concrete = re.sub(r"\{token_id\}", "abc", concrete)
            concrete = re.sub(r"\{flow\}/\{subject\}", "lead_to_project/Opportunity/1", concrete)
            ops.append((method.upper(), concrete))
    return ops


def test_every_route_but_healthz_and_webhooks_needs_a_token(api: Api) -> None:
    ops = _operations(api)
    assert len(ops) > 25
    with api.client(None) as anonymous, api.client(None) as wrong:
        wrong.headers["Authorization"] = "Bearer q2c_000000000000_not-a-real-token"
        for method, path in ops:
            if path == "/healthz" or path.startswith("/webhooks/"):
                continue
            for client in (anonymous, wrong):
                r = client.request(method, path, json={})
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert r.headers["content-type"].startswith(PROBLEM)
                assert r.json()["code"] == "api.unauthorized"
                assert r.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/console/").status_code == 303  # to the login page


def test_scopes_read_operate_admin(api: Api) -> None:
    with api.client("read") as reader, api.client("operate") as operator, api.client("admin") as admin:
        assert reader.get("/api/v1/cases").status_code == 200
        assert reader.get("/metrics").status_code == 200
        for method, path in (("POST", "/api/v1/cases/1/ignore"), ("POST", "/api/v1/reconciliation/runs")):
            r = reader.request(method, path, json={"reason": "x", "kind": "time", "period": "2026-10"})
            assert r.status_code == 403 and r.json()["code"] == "api.forbidden", r.text
        assert operator.get("/api/v1/tokens").status_code == 403
        assert (
            operator.post("/api/v1/cases/999/ignore", json={"reason": "x"}).json()["code"] == "case.not_found"
        )
        assert admin.get("/api/v1/tokens").status_code == 200
    with api.client("webhook:kantata") as sender:
        assert sender.get("/api/v1/cases").status_code == 403


def test_tokens_are_stored_hashed_and_revoking_one_refuses_it_at_once(api: Api) -> None:
    with api.client("admin") as admin:
        made = admin.post("/api/v1/tokens", json={"owner": "maria", "scopes": ["read"], "note": "finance"})
        assert made.status_code == 201, made.text
        text, token_id = made.json()["token"], made.json()["id"]
        stored = api.hub.read(lambda c: list(c.execute(sa.select(api_token))))
        assert all(text not in str(tuple(row)) for row in stored)
        with api.client(None) as maria:
            maria.headers["Authorization"] = f"Bearer {text}"
            assert maria.get("/api/v1/kpis").status_code == 200
            assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 200
            assert maria.get("/api/v1/kpis").status_code == 401
        bad = admin.post("/api/v1/tokens", json={"owner": "x", "scopes": ["superuser"]})
        assert bad.status_code == 400 and bad.json()["code"] == "usage.invalid_argument"
    actions = api.hub.read(
        lambda c: [(a, who) for a, who in c.execute(sa.select(audit_log.c.action, audit_log.c.actor))]
    )
    assert ("token.revoked", f"admin user (token {api.tokens['admin'][4:16]})") in actions


def test_q2c_tokens_create_list_revoke(api: Api, tmp_path: object) -> None:
    import yaml

    from tests.api.conftest import ENV, api_config

    path = tmp_path / "q2c.yaml"  # type: ignore[operator]
    path.write_text(yaml.safe_dump(api_config(api.boxes, api.hub.url)))
    runner = CliRunner(env=ENV)
    made = runner.invoke(
        __import__("quote2cash.cli", fromlist=["app"]).app,
        ["tokens", "create", "--owner", "ci", "--scope", "read", "--config", str(path), "--json"],
    )
    assert made.exit_code == 0, made.output
    import json

    created = json.loads(made.stdout.strip().splitlines()[-1])
    with api.client(None) as ci:
        ci.headers["Authorization"] = f"Bearer {created['token']}"
        assert ci.get("/api/v1/runs").status_code == 200
        cli = __import__("quote2cash.cli", fromlist=["app"]).app
        listed = runner.invoke(cli, ["tokens", "list", "--config", str(path), "--json"])
        assert created["id"] in listed.stdout and created["token"] not in listed.stdout
        revoked = runner.invoke(cli, ["tokens", "revoke", created["id"], "--config", str(path)])
        assert revoked.exit_code == 0, revoked.output
        assert ci.get("/api/v1/runs").status_code == 401
