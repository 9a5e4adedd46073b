"""Kantata sandbox custom fields and their values, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quote2cash.sandbox.kantata import KantataError, KantataSandbox

TOKEN = "test-token"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[KantataSandbox]:
    box = KantataSandbox(tmp_path / "kantata.db", token=TOKEN)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def http(sandbox: KantataSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{sandbox.url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ) as client:
        yield client


@pytest.fixture
def project(sandbox: KantataSandbox) -> dict[str, str]:
    """A workspace with one consultant, one time entry and an invoice-number field on time entries."""
    user = sandbox.add_user("Ada Lovelace", "ada@example.com")
    workspace = sandbox.add_workspace({"title": "Acme rollout", "currency": "EUR"})
    [entry] = sandbox.add_time_entries(
        [{"workspace_id": workspace, "user_id": user, "date_performed": "2025-01-06", "time_in_minutes": 90}]
    )
    field = sandbox.add_custom_field("Invoice number", "TimeEntry")
    return {"user": user, "workspace": workspace, "entry": entry, "field": field}


def value_of(project: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "subject_type": "TimeEntry",
        "subject_id": project["entry"],
        "custom_field_id": project["field"],
        "value": "INV-0001",
        **fields,
    }


def create(http: httpx.Client, *values: dict[str, Any]) -> httpx.Response:
    return http.post("/custom_field_values.json", json={"custom_field_values": list(values)})


def feed(http: httpx.Client, after: str = "2000-01-01T00:00:00Z") -> dict[str, Any]:
    """The change-feed page the hub reads, with the values side-loaded."""
    response = http.get(
        "/time_entries.json",
        params={
            "page": 1,
            "per_page": 200,
            "updated_after": after,
            "order": "updated_at:asc",
            "include_deleted": "true",
            "include": "custom_field_values",
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: httpx.Response, status: int = 422) -> list[dict[str, str]]:
    assert response.status_code == status, response.text
    errors: list[dict[str, str]] = response.json()["errors"]
    return errors


# -- custom fields ---------------------------------------------------------------------------
def test_custom_fields_are_read_only_and_filtered_by_subject_types(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    expense_field = sandbox.add_custom_field("Cost centre", "Expense")
    workspace_field = sandbox.add_custom_field("Budget hours", "Workspace", type="number")

    listed = http.get("/custom_fields.json").json()
    assert listed["count"] == 3
    assert [r["id"] for r in listed["results"]] == [project["field"], expense_field, workspace_field]
    field = listed["custom_fields"][project["field"]]
    assert set(field) == {"id", "name", "subject_type", "type", "created_at", "updated_at"}
    assert (field["name"], field["subject_type"], field["type"]) == ("Invoice number", "TimeEntry", "string")

    narrowed = http.get("/custom_fields.json", params={"subject_types": "Expense,Workspace"}).json()
    assert [r["id"] for r in narrowed["results"]] == [expense_field, workspace_field]
    one = http.get(f"/custom_fields/{workspace_field}.json").json()
    assert one["custom_fields"][workspace_field]["type"] == "number"

    [refused] = error(http.post("/custom_fields.json", json={"custom_field": {"name": "X"}}), 405)
    assert refused["type"] == "system"
    with pytest.raises(KantataError, match="subject_type must be one of"):
        sandbox.add_custom_field("Nowhere", "Invoice")


# -- values ------------------------------------------------------------------------------------
def test_value_created_over_http_is_side_loaded_on_the_change_feed(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    before = feed(http)["time_entries"][project["entry"]]

    response = create(http, value_of(project))
    assert response.status_code == 200, response.text
    body = response.json()
    [result] = body["results"]
    assert result["key"] == "custom_field_values"
    value = body["custom_field_values"][result["id"]]
    assert value == {
        "id": result["id"],
        "subject_type": "TimeEntry",
        "subject_id": project["entry"],
        "custom_field_id": project["field"],
        "value": "INV-0001",
        "custom_field_name": "Invoice number",
        "display_value": "INV-0001",
        "created_at": value["created_at"],
        "updated_at": value["created_at"],
    }

    page = feed(http)
    entry = page["time_entries"][project["entry"]]
    assert entry["custom_field_value_ids"] == [value["id"]]
    assert page["custom_field_values"] == {value["id"]: value}
    assert entry["updated_at"] == before["updated_at"]  # a value is not a change of the entry
    # A poller past the entry's last change does not see it again.
    assert feed(http, after=before["updated_at"])["results"] == []


def test_include_works_on_expenses_and_workspaces_and_single_reads(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    [expense] = sandbox.add_expenses(
        [{"workspace_id": project["workspace"], "date": "2025-01-07", "amount_in_cents": 4200}]
    )
    cost_centre = sandbox.add_custom_field("Cost centre", "Expense")
    budget = sandbox.add_custom_field("Budget hours", "Workspace", type="number")
    on_expense = sandbox.set_custom_field_value("Expense", expense, cost_centre, "CC-7")
    on_workspace = sandbox.set_custom_field_value("Workspace", project["workspace"], budget, "120")

    expenses = http.get("/expenses.json", params={"include": "custom_field_values"}).json()
    assert expenses["expenses"][expense]["custom_field_value_ids"] == [on_expense]
    assert expenses["custom_field_values"][on_expense]["display_value"] == "CC-7"

    workspace = http.get(
        f"/workspaces/{project['workspace']}.json", params={"include": "custom_field_values"}
    ).json()
    assert workspace["workspaces"][project["workspace"]]["custom_field_value_ids"] == [on_workspace]
    stored = workspace["custom_field_values"][on_workspace]
    assert (stored["value"], stored["display_value"]) == (120, "120")

    entry = http.get(f"/time_entries/{project['entry']}.json", params={"include": "custom_field_values"})
    assert entry.json()["time_entries"][project["entry"]]["custom_field_value_ids"] == []
    assert entry.json()["custom_field_values"] == {}
    plain = http.get(f"/time_entries/{project['entry']}.json").json()
    assert "custom_field_value_ids" not in plain["time_entries"][project["entry"]]


def test_value_of_a_field_for_another_subject_type_is_refused(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    errors = error(create(http, value_of(project, subject_type="Expense")))
    assert errors == [
        {
            "type": "validation",
            "field": "subject_type",
            "message": f"subject_type must be TimeEntry, the subject type of custom field {project['field']}"
            " (Invoice number)",
        }
    ]
    assert sandbox.records("custom_field_values") == []


def test_unknown_field_subject_and_subject_type_are_refused(
    http: httpx.Client, project: dict[str, str]
) -> None:
    [field] = error(create(http, value_of(project, custom_field_id="999999")))
    assert field == {
        "type": "validation",
        "field": "custom_field_id",
        "message": "custom_field_id refers to an unknown custom field (999999)",
    }
    [subject] = error(create(http, value_of(project, subject_id="999999")))
    assert subject["field"] == "subject_id"
    assert subject["message"] == "subject_id refers to an unknown time entry (999999)"
    kinds = error(create(http, value_of(project, subject_type="Invoice")))
    assert kinds[0]["field"] == "subject_type" and "must be one of" in kinds[0]["message"]
    blank = error(create(http, value_of(project, value="")))
    assert blank == [{"type": "validation", "field": "value", "message": "value can't be blank"}]


def test_second_value_for_the_same_field_and_subject_is_refused(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    first = create(http, value_of(project)).json()["results"][0]["id"]
    errors = error(create(http, value_of(project, value="INV-0002")))
    assert errors == [
        {
            "type": "validation",
            "field": "custom_field_id",
            "message": f"custom_field_id has already been taken for TimeEntry {project['entry']}"
            f" (custom field value {first})",
        }
    ]
    # Two for the same pair in one request: the whole request is refused.
    [other] = sandbox.add_time_entries(
        [{"workspace_id": project["workspace"], "date_performed": "2025-01-07", "time_in_minutes": 30}]
    )
    twice = error(create(http, value_of(project, subject_id=other), value_of(project, subject_id=other)))
    assert [e["field"] for e in twice] == ["custom_field_id"]
    assert twice[0]["message"].startswith("custom_field_value 1: custom_field_id has already been taken")
    assert [v["id"] for v in sandbox.records("custom_field_values")] == [first]


def test_unknown_attribute_in_the_body_is_refused(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    errors = error(create(http, value_of(project, colour="red")))
    assert errors == [
        {
            "type": "validation",
            "field": "colour",
            "message": "colour is not an attribute of a custom field value",
        }
    ]
    created = create(http, value_of(project)).json()
    value_id = created["results"][0]["id"]
    put = http.put(f"/custom_field_values/{value_id}.json", json={"custom_field_value": {"valeu": "x"}})
    assert error(put)[0]["field"] == "valeu"
    # What a GET answered may be sent back: read-only fields are not unknown.
    echoed = {**created["custom_field_values"][value_id], "value": "INV-0009"}
    again = http.put(f"/custom_field_values/{value_id}.json", json={"custom_field_value": echoed})
    assert again.status_code == 200, again.text
    assert again.json()["custom_field_values"][value_id]["value"] == "INV-0009"


def test_update_changes_the_value_but_not_the_entry(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    entry_stamp = sandbox.get("time_entries", project["entry"])["updated_at"]  # type: ignore[index]
    created = create(http, value_of(project)).json()
    value_id = created["results"][0]["id"]
    old = created["custom_field_values"][value_id]

    response = http.put(
        f"/custom_field_values/{value_id}.json", json={"custom_field_value": {"value": "INV-7"}}
    )
    assert response.status_code == 200, response.text
    new = response.json()["custom_field_values"][value_id]
    assert (new["value"], new["display_value"]) == ("INV-7", "INV-7")
    assert new["created_at"] == old["created_at"] and new["updated_at"] > old["updated_at"]
    assert http.get(f"/custom_field_values/{value_id}.json").json()["custom_field_values"][value_id] == new

    [moved] = error(
        http.put(f"/custom_field_values/{value_id}.json", json={"custom_field_value": {"subject_id": "1"}})
    )
    assert moved == {"type": "validation", "field": "subject_id", "message": "subject_id can't be changed"}

    # The helper updates the existing value in place.
    assert (
        sandbox.set_custom_field_value("TimeEntry", project["entry"], project["field"], "INV-8") == value_id
    )
    assert sandbox.get("custom_field_values", value_id)["value"] == "INV-8"  # type: ignore[index]
    assert len(sandbox.records("custom_field_values")) == 1

    entry = feed(http)["time_entries"][project["entry"]]
    assert entry["updated_at"] == entry_stamp
    assert entry["custom_field_value_ids"] == [value_id]


def test_number_field_holds_a_number(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    hours = sandbox.add_custom_field("Billable hours", "TimeEntry", type="number")
    body = create(http, value_of(project, custom_field_id=hours, value="1.5")).json()
    [value] = body["custom_field_values"].values()
    assert (value["value"], value["display_value"], value["custom_field_name"]) == (
        1.5,
        "1.5",
        "Billable hours",
    )
    [bad] = error(
        http.put(f"/custom_field_values/{value['id']}.json", json={"custom_field_value": {"value": "lots"}})
    )
    assert bad == {"type": "validation", "field": "value", "message": "value must be a number"}


def test_values_are_filtered_by_subject_and_field(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    [second] = sandbox.add_time_entries(
        [{"workspace_id": project["workspace"], "date_performed": "2025-01-08", "time_in_minutes": 15}]
    )
    po = sandbox.add_custom_field("PO", "TimeEntry")
    created = create(
        http,
        value_of(project),
        value_of(project, subject_id=second, value="INV-0002"),
        value_of(project, custom_field_id=po, value="PO-1"),
    ).json()
    a, b, c = (r["id"] for r in created["results"])

    def ids(**params: str) -> list[str]:
        response = http.get("/custom_field_values.json", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [a, b, c]
    assert ids(subject_type="TimeEntry", subject_id=project["entry"]) == [a, c]
    assert ids(subject_id=second) == [b]
    assert ids(custom_field_id=po) == [c]
    assert ids(custom_field_id=project["field"], subject_type="TimeEntry", subject_id=second) == [b]
    assert ids(subject_type="Expense") == []

    with_field = http.get(f"/custom_field_values/{c}.json", params={"include": "custom_field,subject"}).json()
    assert with_field["custom_fields"][po]["name"] == "PO"
    assert with_field["time_entries"][project["entry"]]["time_in_minutes"] == 90


def test_deleting_the_subject_deletes_its_values(
    sandbox: KantataSandbox, http: httpx.Client, project: dict[str, str]
) -> None:
    value_id = create(http, value_of(project)).json()["results"][0]["id"]
    assert http.delete(f"/time_entries/{project['entry']}.json").status_code == 204

    page = feed(http)
    tombstone = page["time_entries"][project["entry"]]
    assert tombstone["deleted_at"] is not None
    assert tombstone["custom_field_value_ids"] == [] and page["custom_field_values"] == {}
    [gone] = error(http.get(f"/custom_field_values/{value_id}.json"), 404)
    assert gone["message"] == f"custom_field_value {value_id} was not found"
    assert http.get("/custom_field_values.json").json()["count"] == 0

    # A workspace's values go with it.
    empty = sandbox.add_workspace({"title": "Empty"})
    budget = sandbox.add_custom_field("Budget hours", "Workspace", type="number")
    sandbox.set_custom_field_value("Workspace", empty, budget, "10")
    assert http.delete(f"/workspaces/{empty}.json").status_code == 204
    assert sandbox.records("custom_field_values") == []


def test_a_value_can_be_deleted_over_http(http: httpx.Client, project: dict[str, str]) -> None:
    value_id = create(http, value_of(project)).json()["results"][0]["id"]
    assert http.delete(f"/custom_field_values/{value_id}.json").status_code == 204
    assert feed(http)["time_entries"][project["entry"]]["custom_field_value_ids"] == []
    # With the old value gone, the pair takes a new one.
    assert create(http, value_of(project, value="INV-0003")).status_code == 200


# -- persistence --------------------------------------------------------------------------------
def test_fields_and_values_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "kantata.db"
    first = KantataSandbox(path, token=TOKEN)
    workspace = first.add_workspace({"title": "Wayne"})
    kept, dropped = first.add_time_entries(
        [
            {"workspace_id": workspace, "date_performed": f"2025-01-0{d}", "time_in_minutes": 30}
            for d in (2, 3)
        ]
    )
    field = first.add_custom_field("Invoice number", "TimeEntry")
    value = first.set_custom_field_value("TimeEntry", kept, field, "INV-1")
    orphan = first.set_custom_field_value("TimeEntry", dropped, field, "INV-2")
    # As a crash between a delete and the purge of its values leaves it: the tombstone alone.
    tombstone = {**first.state.require("time_entries", dropped), "deleted_at": "2025-01-04T00:00:00.000000Z"}
    first.store.put("time_entries", dropped, tombstone)
    first.store.close()

    second = KantataSandbox(path, token=TOKEN)
    assert second.get("custom_field_values", orphan) is None
    second.start()
    try:
        with httpx.Client(
            base_url=f"{second.url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        ) as http:
            assert http.get(f"/custom_fields/{field}.json").json()["custom_fields"][field]["name"] == (
                "Invoice number"
            )
            page = feed(http)
            assert page["time_entries"][kept]["custom_field_value_ids"] == [value]
            assert page["custom_field_values"][value]["value"] == "INV-1"
            [taken] = error(create(http, {**value_of({"entry": kept, "field": field}), "value": "INV-3"}))
            assert taken["field"] == "custom_field_id"
            new_field = second.add_custom_field("PO", "TimeEntry")
            assert int(new_field) > int(field)
            fresh = create(http, value_of({"entry": kept, "field": new_field}))
            assert int(fresh.json()["results"][0]["id"]) > int(value)
    finally:
        second.stop()
