"""Kantata time and expense approval, edit and un-approve over the sandbox's HTTP API, as in Kantata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quote2cash.sandbox.kantata import KantataSandbox


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    sandbox = KantataSandbox(tmp_path / "kantata.sqlite")
    ids = {
        "user": sandbox.add_user("Ada Lovelace", "ada@example.com", "Consultant"),
        "workspace": sandbox.add_workspace({"title": "Analytics", "currency": "USD"}),
        "other": sandbox.add_workspace({"title": "Elsewhere", "currency": "USD"}),
    }
    sandbox.start()
    with httpx.Client(
        base_url=f"{sandbox.url}/api/v1", headers={"Authorization": f"Bearer {sandbox.token}"}
    ) as client:
        yield client, ids
    sandbox.stop()


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _approved(client: httpx.Client, resource: str) -> set[str]:
    body = _ok(client.get(f"/{resource}.json", params={"approved": "true"}))
    return {r["id"] for r in body["results"]}


def test_time_is_submitted_approved_unapproved_edited_and_approved_again(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, ids = api
    entries = [
        {"workspace_id": ids["workspace"], "user_id": ids["user"], "date_performed": f"2026-10-0{d}",
         "time_in_minutes": 60 * d, "billable": True}
        for d in (1, 2)
    ]  # fmt: skip
    created = _ok(client.post("/time_entries.json", json={"time_entries": entries}))
    entry_ids = [r["id"] for r in created["results"]]
    assert _approved(client, "time_entries") == set()

    submission = _ok(
        client.post(
            "/timesheet_submissions.json",
            json={
                "timesheet_submission": {
                    "workspace_id": ids["workspace"],
                    "line_item_ids": entry_ids,
                    "title": "Oct",
                }
            },
        )
    )
    [sub_id] = [r["id"] for r in submission["results"]]
    assert submission["timesheet_submissions"][sub_id]["status"] == "pending"
    # The same entries cannot be on two live submissions.
    again = client.post(
        "/timesheet_submissions.json",
        json={"timesheet_submission": {"workspace_id": ids["workspace"], "line_item_ids": entry_ids[:1]}},
    )
    assert again.status_code == 422 and f"already on submission {sub_id}" in again.text

    approved = _ok(
        client.put(
            f"/timesheet_submissions/{sub_id}/approve.json", json={"resolution": {"description": "ok"}}
        )
    )
    assert approved["timesheet_submissions"][sub_id]["status"] == "approved"
    assert _approved(client, "time_entries") == set(entry_ids)
    locked = client.put(f"/time_entries/{entry_ids[0]}.json", json={"time_entry": {"time_in_minutes": 45}})
    assert locked.status_code == 422 and "is approved and can no longer be changed" in locked.text
    twice = client.put(f"/timesheet_submissions/{sub_id}/approve")
    assert twice.status_code == 422 and "is approved and cannot be approved" in twice.text

    # Un-approve: cancelling the approved submission; the entry can then be edited.
    canceled = _ok(client.put(f"/timesheet_submissions/{sub_id}/cancel.json"))
    assert canceled["timesheet_submissions"][sub_id]["status"] == "canceled"
    assert _approved(client, "time_entries") == set()
    edited = _ok(
        client.put(f"/time_entries/{entry_ids[0]}.json", json={"time_entry": {"time_in_minutes": 45}})
    )
    assert edited["time_entries"][entry_ids[0]]["time_in_minutes"] == 45

    # Submitted again, approved in bulk through /timesheet_approvals.
    second = _ok(
        client.post(
            "/timesheet_submissions.json",
            json={"timesheet_submission": {"workspace_id": ids["workspace"], "line_item_ids": entry_ids}},
        )
    )["results"][0]["id"]
    resolutions = _ok(
        client.post("/timesheet_approvals.json", json={"resolution": {"submission_ids": [second]}})
    )
    assert [r["type"] for r in resolutions["resolutions"].values()] == ["approval"]
    assert _approved(client, "time_entries") == set(entry_ids)
    listed = _ok(
        client.get("/timesheet_submissions.json", params={"status": "approved", "include": "time_entries"})
    )
    assert [r["id"] for r in listed["results"]] == [second]
    assert set(listed["time_entries"]) == set(entry_ids)


def test_submissions_are_checked(api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, ids = api
    entry = _ok(
        client.post(
            "/time_entries.json",
            json={
                "time_entry": {
                    "workspace_id": ids["other"],
                    "date_performed": "2026-10-01",
                    "time_in_minutes": 30,
                }
            },
        )
    )["results"][0]["id"]
    wrong = client.post(
        "/timesheet_submissions.json",
        json={"timesheet_submission": {"workspace_id": ids["workspace"], "line_item_ids": [entry]}},
    )
    assert (
        wrong.status_code == 422
        and f"time entry {entry} is not in workspace {ids['workspace']}" in wrong.text
    )
    assert client.put("/timesheet_submissions/999/approve.json").status_code == 404
    unauthenticated = httpx.put(str(client.base_url).rstrip("/") + "/timesheet_submissions/1/approve.json")
    assert unauthenticated.status_code == 401


def test_expenses_are_approved_rejected_and_unapproved(api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, ids = api
    expense = {"workspace_id": ids["workspace"], "user_id": ids["user"], "date": "2026-10-05",
               "category": "Travel", "amount_in_cents": 12000}  # fmt: skip
    first, second = (
        r["id"] for r in _ok(client.post("/expenses.json", json={"expenses": [expense, expense]}))["results"]
    )

    def submit(item: str) -> str:
        body = {"expense_report_submission": {"workspace_id": ids["workspace"], "line_item_ids": [item]}}
        return str(_ok(client.post("/expense_report_submissions.json", json=body))["results"][0]["id"])

    approved, rejected = submit(first), submit(second)
    _ok(client.put(f"/expense_report_submissions/{approved}/approve.json"))
    reject = _ok(
        client.put(
            f"/expense_report_submissions/{rejected}/reject.json",
            json={"resolution": {"description": "no receipt"}},
        )
    )
    assert reject["expense_report_submissions"][rejected]["resolutions"][-1]["description"] == "no receipt"
    assert _approved(client, "expenses") == {first}
    _ok(client.put(f"/expense_report_submissions/{approved}/cancel.json"))
    assert _approved(client, "expenses") == set()
