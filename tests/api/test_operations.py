"""The operations API on a real hub: runs, cases (filter, assign, comment, dry-run diff,
fix and resubmit with an edited payload, ignore), KPIs, audit search, export and verify,
reconciliation, problem details and pagination; every action audited with the token's owner."""

from __future__ import annotations

import csv
import io
import json

import httpx

from quote2cash.flows.intake import poll_closed_won
from tests.api.conftest import Api
from tests.flows.conftest import add_deal, result_of, wait_for_flows

PROBLEM = "application/problem+json"


def _case_without_billing_model(api: Api) -> tuple[str, dict[str, object]]:
    _, opp = add_deal(api.boxes, billing="")
    poll_closed_won(api.hub)
    assert set(wait_for_flows(api.hub, 1).values()) == {"exception"}
    with api.client("read") as c:
        [case] = c.get("/api/v1/cases").json()["items"]
    return opp, case


def test_a_case_from_opening_to_fixed_through_the_api(api: Api) -> None:
    opp, case = _case_without_billing_model(api)
    assert case["code"] == "mapping.required_field_missing"
    with api.client("operate") as op, api.client("read") as ro:
        other = next(o for o in ("sales_ops", "finance") if o != case["owner"])
        assert ro.get("/api/v1/cases", params={"owner": other}).json()["total"] == 0
        assert ro.get("/api/v1/cases", params={"code": case["code"], "min_age_hours": 0}).json()["total"] == 1
        assert ro.get("/api/v1/cases", params={"min_age_hours": 1}).json()["total"] == 0
        assert op.post(f"/api/v1/cases/{case['id']}/assign", json={"assignee": "sam"}).status_code == 200
        assert (
            op.post(f"/api/v1/cases/{case['id']}/comments", json={"text": "asking the AE"}).status_code == 200
        )
        assert ro.get("/api/v1/cases", params={"assignee": "sam"}).json()["total"] == 1

        diff = ro.get(f"/api/v1/cases/{case['id']}/replay").json()
        assert diff["supported"] and not diff["would_succeed"]
        assert [b["code"] for b in diff["blocking"]] == [case["code"]]

        api.boxes.salesforce.update("Opportunity", opp, {"Billing_Model__c": "Time & Materials"})
        diff = ro.get(f"/api/v1/cases/{case['id']}/replay").json()
        assert diff["would_succeed"], diff
        by_record = {s["record"]: s for s in diff["systems"]}
        assert {"customer", "project", "workspace", "deal status"} <= set(by_record)
        project = {f["field"]: f for f in by_record["project"]["fields"]}
        assert project["custentity_q2c_billing_model"]["after"] == "time_and_materials"
        assert project["externalId"]["after"] == f"Q2C-P-{opp}"
        assert by_record["project"]["mapping"].startswith("netsuite@")

        detail = ro.get(f"/api/v1/cases/{case['id']}").json()
        edited = json.loads(json.dumps(detail["case"]["payload"]))
        edited["payload"]["Name"] = "edited by sales ops"
        bad = op.post(f"/api/v1/cases/{case['id']}/resubmit", json={"payload": {**edited, "subject": "x"}})
        assert bad.status_code == 400 and bad.headers["content-type"].startswith(PROBLEM)
        started = op.post(f"/api/v1/cases/{case['id']}/resubmit", json={"payload": edited})
        assert started.status_code == 200, started.text
        assert result_of(started.json()["workflow_id"])["status"] == "completed"

        detail = ro.get(f"/api/v1/cases/{case['id']}").json()
        assert detail["case"]["status"] == "resolved"
        assert [n["kind"] for n in detail["notes"]] == ["assigned", "comment", "payload_edited"]
        again = op.post(f"/api/v1/cases/{case['id']}/ignore", json={"reason": "done"})
        assert again.status_code == 409 and again.json()["code"] == "case.not_open"

        run = ro.get(f"/api/v1/runs/lead_to_project/Opportunity/{opp}").json()
        assert run["status"] == "completed" and run["attempts"] == 2
        assert {"erp_project", "psa_workspace"} <= {s["step"] for s in run["steps"]}
        assert {"erp", "psa", "crm"} <= {sys for e in run["timeline"] for sys in e["systems"]}

        entries = ro.get("/api/v1/audit", params={"actor": "operate user", "limit": 2}).json()
        assert entries["total"] == 4 and len(entries["items"]) == 2 and entries["next"]
        actions = {e["action"] for e in httpx.get(entries["next"], headers=ro.headers).json()["items"]}
        actions |= {e["action"] for e in entries["items"]}
        assert actions == {"case.assigned", "case.comment", "case.payload_edited", "case.resubmitted"}
        edit = ro.get("/api/v1/audit", params={"action": "case.payload_edited"}).json()["items"][0]
        assert edit["before"]["payload"]["payload"]["Name"] != "edited by sales ops"
        assert edit["after"]["payload"]["payload"]["Name"] == "edited by sales ops"


def test_lists_page_and_filter_the_same_way_and_errors_are_problem_details(api: Api) -> None:
    for _ in range(3):
        add_deal(api.boxes)
    poll_closed_won(api.hub)
    wait_for_flows(api.hub, 3)
    with api.client("read") as ro:
        first = ro.get("/api/v1/runs", params={"limit": 2}).json()
        assert first["total"] == 3 and len(first["items"]) == 2 and first["offset"] == 0
        rest = ro.get(first["next"]).json()
        assert len(rest["items"]) == 1 and rest["next"] is None
        assert ro.get("/api/v1/runs", params={"status": "exception"}).json()["total"] == 0
        for path, params in (
            ("/api/v1/runs", {"limit": 0}),
            ("/api/v1/runs", {"status": "sideways"}),
            ("/api/v1/cases", {"owner": "nobody"}),
            ("/api/v1/kpis/series", {}),
        ):
            r = ro.get(path, params=params)
            assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), (path, r.text)
            body = r.json()
            assert body["code"] == "usage.invalid_argument" and body["type"].endswith(
                "usage.invalid_argument"
            )
            assert body["status"] == 400 and body["instance"] == path and body["errors"]
        # A NUL character reaches no database (PostgreSQL refuses it in text): a 400, not a 500.
        nul = ro.get("/api/v1/kpis/series", params={"kpi": "closed_won\x00", "bucket": "hour"})
        assert nul.status_code == 400 and nul.json()["code"] == "api.malformed"
        missing = ro.get("/api/v1/cases/424242").json()
        assert missing["code"] == "case.not_found" and missing["status"] == 404 and missing["owner"]
        assert ro.get("/api/v1/nothing").json()["code"] == "api.not_found"
        assert ro.get("/api/v1/runs/lead_to_project/Opportunity/none").json()["code"] == "run.not_found"

        kpis = ro.get("/api/v1/kpis").json()
        assert kpis["closed_won_to_project"]["deals"] == 3
        series = ro.get(
            "/api/v1/kpis/series", params={"kpi": "closed_won_to_project_seconds", "bucket": "hour"}
        ).json()
        assert sum(p["count"] for p in series["points"]) == 3
        assert ro.get("/api/v1/kpis/rates").json()["points"][-1]["sync_success_pct"] == 100.0
        assert ro.get("/api/v1/audit/verify").json()["ok"] is True
        lines = ro.get("/api/v1/audit/export", params={"action": "flow.completed"}).text.splitlines()
        assert len(lines) == 3 and all(json.loads(x)["action"] == "flow.completed" for x in lines)
        rows = list(csv.reader(io.StringIO(ro.get("/api/v1/audit/export", params={"format": "csv"}).text)))
        assert rows[0][:3] == ["seq", "at", "actor"] and len(rows) > 4
        assert (
            ro.get("/api/v1/errors", params={"prefix": "webhook."}).json()[0]["code"].startswith("webhook.")
        )
        assert ro.get("/api/v1/reconciliation/breaks").json()["total"] == 0

        metrics = ro.get("/metrics").text
        for name in ("q2c_vendor_calls", "q2c_step_latency_seconds", "q2c_closed_won_to_project_seconds",
                     "q2c_open_cases_by_age", "q2c_inbox_undispatched", "q2c_api_requests_total"):  # fmt: skip
            assert name in metrics, name
    health = httpx.get(f"{api.url}/healthz").json()
    assert health["status"] == "ok" and health["database"] == "up"
    assert {s["state"] for s in health["systems"].values()} == {"up"}
    with api.client("operate") as op:
        run = op.post("/api/v1/reconciliation/runs", json={"kind": "time", "period": "2026-10"})
        assert run.status_code == 200, run.text
        assert op.get("/api/v1/reconciliation/runs").json()["total"] == 1


def test_a_nul_character_in_a_body_is_refused_before_any_database(api: Api) -> None:
    # PostgreSQL takes no NUL in text: a body holding one is a 400 naming the field, never a 500.
    with api.client("operate") as op:
        r = op.post("/api/v1/cases/resubmit", json={"code": "time.rate_mismatch\x00"})
        assert r.status_code == 400 and r.json()["code"] == "usage.invalid_argument", r.text
        assert r.json()["errors"][0]["where"] == "body.code" and "NUL" in r.text
        clean = op.post("/api/v1/cases/resubmit", json={"code": "time.rate_mismatch"})
        assert clean.status_code == 200 and clean.json()["outcomes"] == []  # the same route answers
