"""F4/F5 and F9 end to end against the sandboxes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from quote2cash.flows.intake import poll_closed_won
from quote2cash.flows.lead_to_project import workflow_id
from quote2cash.flows.posting import post_now
from quote2cash.flows.reconcile_work import reconcile
from quote2cash.ops import cases as case_ops
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from quote2cash.store import cases
from quote2cash.store.tables import project_registry, work_entry

from .conftest import add_deal, result_of

USD_CONSULTANT_RATE = 18000  # cents: the STD-USD rate card's Consultant rate


@dataclass
class Firm:
    """Three projects made by lead-to-project, and two consultants."""

    hub: Hub
    boxes: Sandboxes
    tm: dict[str, Any]  # time & materials, USD
    fixed: dict[str, Any]  # fixed fee, USD
    consultant: str
    manager: str


@pytest.fixture
def firm(make_hub: Callable[..., Hub], boxes: Sandboxes) -> Iterator[Callable[..., Firm]]:
    def make(systems: dict[str, dict[str, Any]] | None = None, **policy: Any) -> Firm:
        hub = make_hub(posting=policy or None, systems=systems)
        opps = [add_deal(boxes, billing="Time & Materials")[1], add_deal(boxes, billing="Fixed Fee")[1]]
        poll_closed_won(hub)
        for opp in opps:
            assert result_of(workflow_id(opp))["status"] == "completed"
        projects = hub.read(
            lambda c: {r["canonical_id"]: dict(r) for r in c.execute(sa.select(project_registry)).mappings()}
        )
        kt = boxes.kantata
        users = {u["headline"]: str(u["id"]) for u in kt.records("users")}
        consultant = users.get("Consultant") or kt.add_user(
            "Ada Lovelace", "ada@northwind.example", "Consultant"
        )
        manager = users.get("Engagement Manager") or kt.add_user(
            "Bo Chen", "bo@northwind.example", "Engagement Manager"
        )
        return Firm(hub, boxes, projects[opps[0]], projects[opps[1]], consultant, manager)

    yield make


def _task(boxes: Sandboxes, workspace: str, closed: bool = False) -> str:
    tasks = [
        s
        for s in boxes.kantata.records("stories")
        if str(s["workspace_id"]) == workspace and s["story_type"] == "task"
    ]
    if closed:
        return str(
            boxes.kantata.add_story(
                {
                    "workspace_id": workspace,
                    "title": "Finished work",
                    "story_type": "task",
                    "state": "completed",
                }
            )
        )
    return str(tasks[0]["id"])


def _time(f: Firm, project: dict[str, Any], **kw: Any) -> dict[str, Any]:
    billable = project["billing_model"] == "time_and_materials"
    entry = {
        "workspace_id": project["psa_workspace_id"],
        "story_id": _task(f.boxes, project["psa_workspace_id"]),
        "user_id": f.consultant,
        "date_performed": "2026-10-14",
        "time_in_minutes": 120,
        "billable": billable,
        "rate_in_cents": USD_CONSULTANT_RATE if billable else 0,
        "currency": "USD",
        "approved": True,
    }
    entry.update(kw)
    return entry


def _journals(f: Firm, kind: str = "time") -> list[dict[str, Any]]:
    return [j for j in f.boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == kind]


def _erp_totals(f: Firm, kind: str = "time") -> tuple[Decimal, Decimal]:
    js = _journals(f, kind)
    return (
        sum((Decimal(j["custbody_q2c_hours"]) for j in js), Decimal(0)),
        sum((Decimal(j["custbody_q2c_amount"]) for j in js), Decimal(0)),
    )


def _psa_totals(f: Firm) -> tuple[Decimal, Decimal]:
    entries = [e for e in f.boxes.kantata.records("time_entries") if e.get("approved")]
    hours = sum((Decimal(e["time_in_minutes"]) / 60 for e in entries), Decimal(0))
    amount = sum(
        (Decimal(round(e["time_in_minutes"] * e["rate_in_cents"] / 60)) / 100 for e in entries), Decimal(0)
    )
    return hours.quantize(Decimal("0.01")), amount


def test_each_rule_quarantines_with_its_message_while_the_rest_posts(firm: Callable[..., Firm]) -> None:
    f = firm()
    kt = f.boxes.kantata
    good = [_time(f, f.tm) for _ in range(5)] + [_time(f, f.fixed)]
    bad = {
        "time.task_closed": _time(f, f.tm, story_id=_task(f.boxes, f.tm["psa_workspace_id"], closed=True)),
        "time.rate_mismatch": _time(f, f.tm, rate_in_cents=USD_CONSULTANT_RATE + 2500),
        "time.billable_mismatch": _time(f, f.fixed, billable=True, rate_in_cents=USD_CONSULTANT_RATE),
        "time.project_unknown": None,
    }
    stray = kt.add_workspace({"title": "Internal bench", "currency": "USD", "start_date": "2026-10-01"})
    bad["time.project_unknown"] = _time(f, f.tm, workspace_id=stray, story_id=None)
    bad["time.project_unknown"].pop("story_id")
    kt.add_time_entries(good + list(bad.values()))

    result = post_now("time")
    assert result["valid"] == 6 and result["quarantined"] == 4
    assert result["quarantined_by_reason"] == dict.fromkeys(bad, 1)
    by_code = {c["code"]: c for c in f.hub.read(cases.list_cases, flow="post_approved_work")}
    assert set(by_code) == set(bad)
    assert "rate card STD-USD gives 180.00 USD/h for Consultant" in by_code["time.rate_mismatch"]["message"]
    assert "is completed and takes no more time" in by_code["time.task_closed"]["message"]
    assert "billed as fixed fee" in by_code["time.billable_mismatch"]["message"]
    assert "has no project in the ERP" in by_code["time.project_unknown"]["message"]
    # The valid ones were posted: one journal per project × task × entity × period × billable flag.
    journals = _journals(f)
    assert len(journals) == 2 and result["erp_calls"] == 1
    assert sorted(j["custbody_q2c_entries"] for j in journals) == [1, 5]
    tm = next(j for j in journals if j["custbody_q2c_entries"] == 5)
    assert (
        Decimal(tm["custbody_q2c_hours"]) == Decimal("10.00") and Decimal(tm["custbody_q2c_amount"]) == 1800
    )
    assert result["posted_within_sla_pct"] == 100.0
    from quote2cash.ops.kpis import summary

    kpis = f.hub.read(summary)
    assert kpis["time"]["posted_entries"] == 6 and kpis["time"]["quarantined.time.rate_mismatch"] == 1
    assert kpis["closed_won_to_project"]["deals"] == 2
    assert kpis["open_cases_by_owner"]["pmo"]["time.task_closed"] == 1


def test_expenses_rule_and_reimbursable_split(firm: Callable[..., Firm]) -> None:
    f = firm()
    base = {
        "workspace_id": f.tm["psa_workspace_id"],
        "user_id": f.consultant,
        "date": "2026-10-08",
        "currency": "USD",
        "billable": True,
        "approved": True,
    }
    f.boxes.kantata.add_expenses(
        [
            {**base, "category": "Travel", "amount_in_cents": 42000, "reimbursable": True},
            {**base, "category": "Travel", "amount_in_cents": 8000, "reimbursable": False},
            {**base, "category": "", "amount_in_cents": 1500, "reimbursable": True},
        ]
    )
    result = post_now("expense")
    assert (result["valid"], result["quarantined"]) == (2, 1)
    assert result["quarantined_by_reason"] == {"expense.category_missing": 1}
    journals = _journals(f, "expense")
    assert len(journals) == 2  # reimbursable and company-paid are posted apart
    assert sorted(Decimal(j["custbody_q2c_amount"]) for j in journals) == [80, 420]


@pytest.mark.parametrize("policy", ["hold", "redate"])
def test_closed_period_hold_or_redate(firm: Callable[..., Firm], policy: str) -> None:
    f = firm(closed_period=policy)
    f.boxes.kantata.add_time_entries([_time(f, f.tm, date_performed="2026-09-29"), _time(f, f.tm)])
    result = post_now("time")
    if policy == "hold":
        assert (result["valid"], result["held"]) == (1, 1)
        [case] = f.hub.read(cases.list_cases, flow="post_approved_work")
        assert case["code"] == "erp.period_closed" and "closed accounting period Sep 2026" in case["message"]
        f.boxes.netsuite.reopen_period(2026, 9)  # finance reopens September: the held entry goes through
        again = post_now("time")
        assert again["valid"] == 1 and again["held"] == 0
        assert any(j["tranDate"].startswith("2026-09") for j in _journals(f))
    else:
        assert (result["valid"], result["redated"]) == (2, 1)
        redated = next(j for j in _journals(f) if j["custbody_q2c_period"] == "2026-09")
        assert redated["tranDate"] == "2026-10-01"  # first day of the next open period
        audit_rows = f.hub.read(
            lambda c: list(
                c.execute(sa.text("SELECT after FROM audit_log WHERE action = 'time.posting_run'"))
            )
        )
        assert '"redated": 1' in str(audit_rows[0][0]).replace("'", '"')


def test_edit_and_delete_after_posting_make_reversals_never_overwrites(firm: Callable[..., Firm]) -> None:
    f = firm()
    kt = f.boxes.kantata
    ids = kt.add_time_entries([_time(f, f.tm), _time(f, f.tm), _time(f, f.tm)])
    post_now("time")
    [original] = _journals(f)
    kt.update_time_entry(ids[0], {"time_in_minutes": 60})
    kt.delete_time_entry(ids[1])
    result = post_now("time")
    assert result["reversal_postings"] == 1 and result["valid"] == 1
    journals = _journals(f)
    assert len(journals) == 3
    assert (
        f.boxes.netsuite.get("journalentry", str(original["id"]))["custbody_q2c_amount"]
        == original["custbody_q2c_amount"]
    )  # the posted journal is untouched
    reversal = next(j for j in journals if j.get("custbody_q2c_reversal_of"))
    assert Decimal(reversal["custbody_q2c_amount"]) == -720 and reversal["custbody_q2c_entries"] == -2
    assert _erp_totals(f) == _psa_totals(f)


def test_rerun_and_duplicate_delivery_never_post_twice(firm: Callable[..., Firm]) -> None:
    f = firm()
    f.boxes.kantata.add_time_entries([_time(f, f.tm) for _ in range(3)])
    post_now("time")
    again = post_now("time")
    assert again["valid"] == 0 and again["postings_sent"] == 0
    # A lost cursor replays the whole feed: the ledger recognises every entry.
    f.hub.tx(lambda c: c.execute(sa.text("DELETE FROM cursor WHERE name LIKE 'psa.%'")))
    replay = post_now("time")
    assert replay["pulled"].get("same") == 3 and replay["postings_sent"] == 0
    assert len(_journals(f)) == 1 and _erp_totals(f) == _psa_totals(f)


def test_transient_faults_retried_without_duplicates(firm: Callable[..., Firm]) -> None:
    f = firm()
    f.boxes.kantata.add_time_entries(
        [_time(f, f.tm, date_performed=f"2026-10-{d:02d}") for d in range(1, 29)]
    )
    for box in (f.boxes.kantata, f.boxes.netsuite):
        box.inject("throttle", probability=0.3, retry_after=0.01)
        box.inject("error", status=503, probability=0.2)
    f.boxes.netsuite.inject("timeout_after_commit", path="restlet", count=1, seconds=6)
    result = post_now("time")
    assert result["valid"] == 28 and result["postings_failed"] == 0
    externals = Counter(j["externalId"] for j in _journals(f))
    assert max(externals.values()) == 1
    assert _erp_totals(f) == _psa_totals(f)


def test_detail_mode_posts_one_timebill_per_entry(firm: Callable[..., Firm]) -> None:
    f = firm(mode="detail")
    f.boxes.kantata.add_time_entries([_time(f, f.tm) for _ in range(4)])
    result = post_now("time")
    assert result["postings_sent"] == 4
    bills = f.boxes.netsuite.records("timebill")
    assert len(bills) == 4 and {b["hours"] for b in bills} == {"2:00"}
    assert reconcile(f.hub, "time", "2026-10").breaks == []


def test_reconciliation_finds_each_planted_break_and_none_when_clean(
    firm: Callable[..., Firm], tmp_path: Path
) -> None:
    f = firm()
    kt, ns = f.boxes.kantata, f.boxes.netsuite
    tasks = [
        s
        for s in kt.records("stories")
        if str(s["workspace_id"]) == f.tm["psa_workspace_id"] and s["story_type"] == "task"
    ]
    entries = [_time(f, f.tm, story_id=str(tasks[i % len(tasks)]["id"])) for i in range(6)]
    entries.append(_time(f, f.fixed))
    ids = kt.add_time_entries(entries)
    post_now("time")
    clean = reconcile(f.hub, "time", "2026-10", out=tmp_path)
    assert clean.breaks == [] and all(line.status == "ok" for line in clean.lines)
    assert (tmp_path / "recon-time-2026-10.csv").read_text().count("\n") == len(clean.lines) + 1

    journals = sorted(_journals(f), key=lambda j: int(j["id"]))
    assert len(journals) >= 3
    ns.delete_record("journalentry", str(journals[0]["id"]))  # missing
    ns.duplicate_record("journalentry", str(journals[1]["id"]), "COPY-OF-" + journals[1]["externalId"])  # dup
    ns.set_field("journalentry", str(journals[2]["id"]), "custbody_q2c_amount", "1.00")  # amount mismatch
    posted = f.hub.read(
        lambda c: {
            r.source_id
            for r in c.execute(
                sa.select(work_entry.c.source_id).where(
                    work_entry.c.posting_key == journals[-1]["externalId"]
                )
            )
        }
    )
    kt.update_time_entry(
        next(i for i in ids if str(i) in posted), {"approved": False}
    )  # posted, not approved
    report = reconcile(f.hub, "time", "2026-10", out=tmp_path)
    kinds = Counter(b.kind for b in report.breaks)
    assert set(kinds) == {"missing", "duplicated", "amount_mismatch", "posted_not_approved"}
    causes = " | ".join(b.cause for b in report.breaks)
    assert "is not in the ERP" in causes and "exists 2 times in the ERP" in causes
    assert "was changed in the ERP" in causes and "no longer approved" in causes
    codes = {c["code"] for c in f.hub.read(cases.list_cases, flow="reconcile_work")}
    assert codes == {
        "recon.missing",
        "recon.duplicated",
        "recon.amount_mismatch",
        "recon.posted_not_approved",
    }


def test_schedule_runs_the_micro_batch_by_itself(make_hub: Callable[..., Hub], boxes: Sandboxes) -> None:
    import time

    from quote2cash.flows.schedules import install_schedules
    from quote2cash.store.tables import kpi_sample

    hub = make_hub(posting={"schedule": "*/2 * * * * *"})  # every two seconds, for the test
    assert install_schedules(hub)[0] == "post approved work: */2 * * * * *"
    deadline = time.monotonic() + 30
    runs: list[str] = []
    while time.monotonic() < deadline and not runs:
        runs = hub.read(
            lambda c: [
                s
                for (s,) in c.execute(
                    sa.select(kpi_sample.c.subject).where(kpi_sample.c.kpi == "time.posted_entries")
                )
            ]
        )
        time.sleep(0.2)
    assert runs and runs[0].startswith("post_approved_work:time:")


def test_bad_schedule_is_refused_at_load(tmp_path: Path) -> None:
    from quote2cash.config import load_config
    from quote2cash.errors import ConfigError
    from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config

    raw = hub_config(
        "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", f"sqlite:///{tmp_path}/x"
    )
    raw["posting"] = {"schedule": "every quarter hour"}
    with pytest.raises(
        ConfigError, match=r"posting\.schedule: Value error, 'every quarter hour' is not a cron"
    ):
        load_config(data=raw, env=SANDBOX_ENV)


def test_fix_and_resubmit_a_quarantined_entry_posts_it_and_closes_its_case(firm: Callable[..., Firm]) -> None:
    f = firm()
    [bad] = f.boxes.kantata.add_time_entries([_time(f, f.tm, user_id=f.manager)])  # manager's rate is higher
    first = post_now("time")
    assert first["quarantined_by_reason"] == {"time.rate_mismatch": 1}
    [case] = f.hub.read(cases.list_cases, flow="post_approved_work")
    # Finance agrees the manager bills at the consultant rate on this job: the rate card is fixed.
    f.hub.config.rate_cards["STD-USD"].rates["Engagement Manager"] = Decimal(180)
    assert case_ops.resubmit(f.hub, case["id"], actor="user:finance") is None  # picked up by the next run
    second = post_now("time")
    assert second["valid"] == 1 and second["cases_resolved"] == 1
    assert f.hub.read(cases.get_case, case["id"])["status"] == "resolved"
    assert _erp_totals(f) == _psa_totals(f)
    assert bad


def test_a_backlog_is_read_by_the_reader_process_through_faults(firm: Callable[..., Firm]) -> None:
    f = firm()
    tasks = [
        str(s["id"])
        for s in f.boxes.kantata.records("stories")
        if str(s["workspace_id"]) == f.tm["psa_workspace_id"] and s["story_type"] == "task"
    ]
    entries = [
        _time(f, f.tm, story_id=tasks[i % len(tasks)], date_performed=f"2026-10-{1 + i % 28:02d}")
        for i in range(1250)
    ]  # seven pages: the first five read here, the rest by the reader process
    f.boxes.kantata.add_time_entries(entries)
    f.boxes.kantata.inject("throttle", path="/time_entries", probability=0.3, retry_after=0.01)
    f.boxes.kantata.inject("error", path="/time_entries", status=503, probability=0.2)
    result = post_now("time")
    assert result["pulled"]["pages"] == 7 and result["valid"] == 1250
    assert _erp_totals(f) == _psa_totals(f)
    assert max(Counter(j["externalId"] for j in _journals(f)).values()) == 1


def test_non_billable_time_is_posted_at_its_roles_cost(firm: Callable[..., Firm]) -> None:
    f = firm()
    kt = f.boxes.kantata
    intern = kt.add_user("Cy Dorsey", "cy@northwind.example", "Intern")  # a role with no cost rate
    kt.add_time_entries([_time(f, f.fixed), _time(f, f.fixed, user_id=intern)])
    result = post_now("time")
    assert result["valid"] == 1 and result["quarantined"] == 1
    [journal] = _journals(f)
    cost = f.hub.config.cost_rates["USD"]["Consultant"]
    assert cost > 0 and journal["custbody_q2c_billable"] is False
    # Two hours of a consultant's time on a fixed-fee project: posted to the cost centre at cost, not 0.
    assert Decimal(journal["custbody_q2c_amount"]) == 2 * cost
    [case] = f.hub.read(cases.list_cases, flow="post_approved_work")
    assert case["code"] == "time.cost_rate_unknown" and "Intern" in case["message"]
    # PSA and ERP agree once both sides are valued alike: the only break is the intern's entry,
    # which its own case already explains, so reconciliation opens no second case for it.
    report = reconcile(f.hub, "time", "2026-10")
    [explained] = report.breaks
    assert explained.kind == "missing" and explained.explained_by == [case["id"]]
    assert report.unexplained == [] and report.cases_opened == 0
    assert f.hub.read(cases.list_cases, flow="reconcile_work") == []
    assert [line.status for line in report.lines] == ["explained"]  # one project: both entries


def test_an_entry_booked_to_its_own_cost_centre_posts_there_once_the_erp_has_it_active(
    firm: Callable[..., Firm],
) -> None:
    f = firm(systems={"psa": {"cost_centre_field": "Cost Centre"}})
    kt, ns = f.boxes.kantata, f.boxes.netsuite
    departments = {d["name"]: str(d["id"]) for d in ns.records("department")}
    ns.set_inactive("department", departments["Operations"])
    field = kt.add_custom_field("Cost Centre", "TimeEntry")
    own, unknown, inactive, by_id, _plain = kt.add_time_entries(
        [_time(f, f.fixed, date_performed=f"2026-10-{d:02d}") for d in (5, 6, 7, 8, 9)]
    )
    kt.set_custom_field_value("TimeEntry", own, field, "Data & AI")
    kt.set_custom_field_value("TimeEntry", unknown, field, "Marketing")
    kt.set_custom_field_value("TimeEntry", inactive, field, "Operations")
    kt.set_custom_field_value("TimeEntry", by_id, field, departments["Strategy"])  # its ERP id
    result = post_now("time")
    assert result["valid"] == 3 and result["quarantined_by_reason"] == {"time.cost_centre_invalid": 2}
    open_cases = {c["subject"]: c for c in f.hub.read(cases.list_cases, flow="post_approved_work")}
    assert set(open_cases) == {f"time/{unknown}", f"time/{inactive}"}
    assert "'Marketing'" in open_cases[f"time/{unknown}"]["message"]
    assert open_cases[f"time/{inactive}"]["owner"] == "finance"

    def departments_posted() -> dict[str, set[str]]:
        # Each journal's lines carry its cost centre: one journal per entry here (one a day).
        return {
            j["tranDate"]: {ln["department"]["id"] for ln in j["line"]["items"] if ln.get("department")}
            for j in _journals(f)
        }

    project_dept = str(f.fixed["department"])
    assert departments_posted() == {
        "2026-10-05": {departments["Data & AI"]},
        "2026-10-08": {departments["Strategy"]},
        "2026-10-09": {project_dept},  # no cost centre of its own: the project's
    }
    # Finance activates Operations; the entry booked to it posts there once resubmitted.
    ns.set_inactive("department", departments["Operations"], False)
    assert case_ops.resubmit(f.hub, open_cases[f"time/{inactive}"]["id"], actor="user:finance") is None
    again = post_now("time")
    assert again["valid"] == 1 and again["cases_resolved"] == 1
    assert departments_posted()["2026-10-07"] == {departments["Operations"]}
    assert [c["subject"] for c in f.hub.read(cases.list_cases, flow="post_approved_work")] == [
        f"time/{unknown}"
    ]


def test_internal_projects_post_to_their_cost_centre(make_hub: Callable[..., Hub], boxes: Sandboxes) -> None:
    kt = boxes.kantata
    bench = kt.add_workspace({"title": "Bench and training", "currency": "USD", "start_date": "2026-10-01"})
    hub = make_hub(
        internal_projects={bench: {"name": "Bench", "legal_entity": "US01", "cost_centre": "Technology"}}
    )
    users = {u["headline"]: str(u["id"]) for u in kt.records("users")}
    consultant = users.get("Consultant") or kt.add_user("Ada Lovelace", "ada@northwind.example", "Consultant")
    kt.add_time_entries(
        [
            {
                "workspace_id": bench,
                "user_id": consultant,
                "date_performed": "2026-10-15",
                "time_in_minutes": 240,
                "billable": False,
                "rate_in_cents": 0,
                "currency": "USD",
                "approved": True,
            }
        ]
    )
    result = post_now("time")
    assert result["valid"] == 1 and result["quarantined"] == 0, hub.read(cases.list_cases)
    [journal] = [j for j in boxes.netsuite.records("journalentry") if j.get("custbody_q2c_kind") == "time"]
    technology = next(d["id"] for d in boxes.netsuite.records("department") if d["name"] == "Technology")
    lines = journal["line"]["items"]
    assert {ln["department"]["id"] for ln in lines if ln.get("department")} == {technology}
    assert all("entity" not in ln for ln in lines)  # no client, no ERP project
    assert Decimal(journal["custbody_q2c_amount"]) == 4 * hub.config.cost_rates["USD"]["Consultant"]
    assert reconcile(hub, "time", "2026-10").breaks == []
