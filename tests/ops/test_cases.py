"""The exception queue through ``q2c exceptions`` and :mod:`quote2cash.ops.cases`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quote2cash.cli import app
from quote2cash.errors import UsageError
from quote2cash.flows.intake import poll_closed_won
from quote2cash.ops import audit, cases
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from tests.flows.conftest import add_deal, result_of, wait_for_flows

CANADA = {"region": "Canada", "currency": "CAD"}  # its ERP subsidiary is inactive: a finance case


def _q2c(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def _json(result: Any) -> Any:
    """The JSON a command printed (flows running in the background may log lines before it)."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("[", "{", "[]", "{}"))
    return json.loads("\n".join(lines[start:]))


def _cases_of(hub: Hub, boxes: Sandboxes, n: int, **deal: Any) -> list[dict[str, Any]]:
    """``n`` closed-won deals that each stop on an exception case; their cases."""
    for _ in range(n):
        add_deal(boxes, **deal)
    poll_closed_won(hub)
    assert set(wait_for_flows(hub, n).values()) == {"exception"}
    found = cases.list_cases(hub)
    assert len(found) == n, found
    return found


def test_ignore_needs_a_reason_and_an_existing_case(
    make_hub: Callable[..., Hub], boxes: Sandboxes, config_file: Path
) -> None:
    hub = make_hub()
    [case] = _cases_of(hub, boxes, 1, **CANADA)

    for no_reason in ([], ["--reason", "   "]):
        result = _q2c("exceptions", "ignore", case["id"], "--config", config_file, *no_reason)
        assert result.exit_code == 2, result.output
        assert f"ignoring case {case['id']} needs a reason" in result.output
        assert "case.reason_missing" in result.output
    assert cases.show_case(hub, case["id"]).case["status"] == "open"

    for command in (["ignore", "999999", "--reason", "duplicate"], ["show", "999999"]):
        result = _q2c("exceptions", *command, "--config", config_file)
        assert result.exit_code == 2, result.output
        assert "no exception case 999999" in result.output and "case.not_found" in result.output


def test_ignore_closes_the_case_with_its_reason_in_the_audit_trail(
    make_hub: Callable[..., Hub], boxes: Sandboxes, config_file: Path
) -> None:
    hub = make_hub()
    [case] = _cases_of(hub, boxes, 1, **CANADA)

    result = _q2c(
        "exceptions", "ignore", case["id"], "--reason", "deal re-booked in US01", "--actor", "maria",
        "--config", config_file,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"case {case['id']} ignored" in result.output

    [ignored] = _json(_q2c("exceptions", "list", "--status", "ignored", "--json", "--config", config_file))
    assert ignored["id"] == case["id"]
    assert ignored["resolution"] == {"by": "user:maria", "reason": "deal re-booked in US01"}
    assert _json(_q2c("exceptions", "list", "--json", "--config", config_file)) == []

    entry = next(e for e in cases.show_case(hub, case["id"]).audit if e["action"] == "case.ignored")
    assert entry["actor"] == "user:maria" and entry["after"]["reason"] == "deal re-booked in US01"
    assert audit.verify(hub).ok

    again = _q2c("exceptions", "ignore", case["id"], "--reason", "twice", "--config", config_file)
    assert again.exit_code == 2 and "case.not_open" in again.output and "is ignored" in again.output


def test_show_says_which_systems_were_already_written(
    make_hub: Callable[..., Hub], boxes: Sandboxes, config_file: Path
) -> None:
    hub = make_hub()
    [case] = _cases_of(hub, boxes, 1, lines=[("Quantum Whisperer", 40)])  # a role the PSA does not know
    assert case["code"] == "psa.role_unknown"

    detail = _json(_q2c("exceptions", "show", case["id"], "--json", "--config", config_file))
    written = {s["step"]: s for s in detail["written"]}
    assert set(written) == {"erp_customer", "erp_project", "psa_workspace"}
    assert all(s["system"] and s["id"] for s in written.values())
    assert (
        written["erp_customer"]["system"]
        == written["erp_project"]["system"]
        != written["psa_workspace"]["system"]
    )
    [job] = boxes.netsuite.records("job")
    assert written["erp_project"]["id"] == str(job["id"])
    assert detail["run"]["status"] == "exception"
    assert {"erp_project.written", "psa_workspace.written", "flow.exception"} <= {
        e["action"] for e in detail["audit"]
    }

    text = _q2c("exceptions", "show", case["id"], "--config", config_file)
    assert text.exit_code == 0, text.output
    assert "already written" in text.output
    for step in written.values():
        assert f"{step['system']}: {step['step']} id {step['id']}" in text.output
    assert "psa.role_unknown" in text.output


def test_bulk_resubmit_by_code_runs_every_open_case_again(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    found = _cases_of(hub, boxes, 2, **CANADA)
    assert {c["code"] for c in found} == {"customer.subsidiary_inactive"}
    boxes.netsuite.set_inactive("subsidiary", "5", False)  # finance reactivates the subsidiary

    outcomes = cases.resubmit_many(hub, actor="user:finance", code="customer.subsidiary_inactive")
    assert sorted(o.case_id for o in outcomes) == sorted(c["id"] for c in found)
    assert all(o.ok and o.workflow_id for o in outcomes)
    assert [result_of(str(o.workflow_id))["status"] for o in outcomes] == ["completed", "completed"]
    assert len(boxes.netsuite.records("customer")) == 2
    assert [c["status"] for c in cases.list_cases(hub, status="all")] == ["resolved", "resolved"]
    # Nothing open is left: a second bulk run has nothing to do.
    assert cases.resubmit_many(hub, actor="user:finance", code="customer.subsidiary_inactive") == []
    with pytest.raises(UsageError, match="say which cases"):
        cases.resubmit_many(hub, actor="user:finance")


def test_bulk_resubmit_goes_on_past_a_case_that_cannot_be_resubmitted(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    first, second, third = (c["id"] for c in _cases_of(hub, boxes, 3, **CANADA))
    cases.ignore(hub, third, actor="user:finance", reason="booked twice")
    boxes.netsuite.set_inactive("subsidiary", "5", False)

    outcomes = cases.resubmit_many(hub, actor="user:finance", case_ids=[first, 999999, third, second])
    assert [(o.case_id, o.ok) for o in outcomes] == [
        (first, True),
        (999999, False),
        (third, False),
        (second, True),
    ]
    assert outcomes[1].error is not None and outcomes[1].error["code"] == "case.not_found"
    assert outcomes[2].error is not None and outcomes[2].error["code"] == "case.not_open"
    for o in (outcomes[0], outcomes[3]):
        assert result_of(str(o.workflow_id))["status"] == "completed"
    statuses = {c["id"]: c["status"] for c in cases.list_cases(hub, status="all")}
    assert statuses == {first: "resolved", second: "resolved", third: "ignored"}


def test_resubmit_refuses_decisions_that_do_not_fit_the_case(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    [case] = _cases_of(hub, boxes, 1, **CANADA)
    with pytest.raises(UsageError, match="not an identity match") as not_duplicate:
        cases.resubmit(hub, case["id"], actor="user:x", link_to="42")
    assert not_duplicate.value.code == "case.decision"
    with pytest.raises(UsageError) as both:
        cases.resubmit(hub, case["id"], actor="user:x", link_to="42", create_new=True)
    assert both.value.code == "case.decision"
    with pytest.raises(UsageError) as status:
        cases.list_cases(hub, status="pending")
    assert status.value.code == "usage.invalid_argument"
    assert cases.show_case(hub, case["id"]).case["status"] == "open"  # nothing was recorded
