"""Contract tests: the Kantata connector against the Kantata sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.kantata import KantataClient
from quote2cash.errors import AuthError, BusinessRuleError, InDoubtError, TransientError
from quote2cash.sandbox.kantata import KantataError, KantataSandbox

TOKEN = "test-token"
FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)
TEMPLATE = [
    {"title": "Discovery", "story_type": "phase", "offset_days": 0, "duration_days": 9},
    {
        "title": "Workshops",
        "story_type": "task",
        "parent_title": "Discovery",
        "offset_days": 2,
        "duration_days": 3,
    },
    {"title": "Build", "story_type": "phase", "offset_days": 10, "duration_days": 20},
    {"title": "Go-live", "story_type": "milestone", "offset_days": 30, "duration_days": 0},
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[KantataSandbox]:
    box = KantataSandbox(tmp_path / "kantata.db", token=TOKEN)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def client(sandbox: KantataSandbox) -> Iterator[KantataClient]:
    with KantataClient(sandbox.url, TOKEN, timeout=2.0, retry=FAST) as c:
        yield c


@pytest.fixture
def project(sandbox: KantataSandbox) -> dict[str, str]:
    """A workspace with one task and one consultant."""
    user = sandbox.add_user("Ada Lovelace", "ada@example.com", "Senior Consultant")
    workspace = sandbox.add_workspace(
        {"title": "Acme rollout", "currency": "EUR", "start_date": "2025-01-06"}
    )
    story = sandbox.add_story({"workspace_id": workspace, "title": "Build", "story_type": "task"})
    return {"user": user, "workspace": workspace, "story": story}


def entry(project: dict[str, str], day: int = 1, minutes: int = 60) -> dict[str, object]:
    return {
        "workspace_id": project["workspace"],
        "story_id": project["story"],
        "user_id": project["user"],
        "date_performed": f"2025-01-{day:02d}",
        "time_in_minutes": minutes,
        "rate_in_cents": 15000,
    }


# -- projects ------------------------------------------------------------------------------
def test_workspace_from_template_gets_phases_tasks_and_milestones_dated_from_its_start(
    sandbox: KantataSandbox, client: KantataClient
) -> None:
    template = sandbox.add_template("Fixed fee", TEMPLATE)
    workspace = client.create(
        "workspaces",
        {
            "title": "Globex ERP",
            "start_date": "2025-03-03",
            "project_template_id": template,
            "status": "Active",
        },
    )
    assert workspace["status"]["message"] == "Active"
    stories = {s["title"]: s for s in client.list("stories", workspace_id=workspace["id"])}
    assert [stories[t]["story_type"] for t in ("Discovery", "Workshops", "Build", "Go-live")] == [
        "deliverable",
        "task",
        "deliverable",
        "milestone",
    ]
    assert stories["Workshops"]["parent_id"] == stories["Discovery"]["id"]
    assert (stories["Workshops"]["start_date"], stories["Workshops"]["due_date"]) == (
        "2025-03-05",
        "2025-03-08",
    )
    assert stories["Go-live"]["due_date"] == "2025-04-02"


def test_envelope_lists_results_in_order_and_side_loads_stories(
    sandbox: KantataSandbox, project: dict[str, str]
) -> None:
    response = httpx.get(
        f"{sandbox.url}/api/v1/workspaces.json",
        params={"include": "stories"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    body = response.json()
    assert body["count"] == 1
    assert body["results"] == [{"key": "workspaces", "id": project["workspace"]}]
    assert body["workspaces"][project["workspace"]]["story_ids"] == [project["story"]]
    assert body["stories"][project["story"]]["title"] == "Build"
    assert body["meta"] == {"count": 1, "page_count": 1, "page_number": 1}


def test_list_pages_until_done_in_id_order(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    ids = sandbox.add_time_entries([entry(project, day=1 + n % 28) for n in range(45)])
    listed = [e["id"] for e in client.list("time_entries", per_page=20, workspace_id=project["workspace"])]
    assert listed == ids
    assert sandbox.calls("GET /api/v1/time_entries.json") == 3


def test_limit_offset_and_only_filters(sandbox: KantataSandbox, project: dict[str, str]) -> None:
    ids = sandbox.add_time_entries([entry(project) for _ in range(5)])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{sandbox.url}/api/v1/time_entries.json"
    page = httpx.get(url, params={"limit": 2, "offset": 2}, headers=headers).json()
    assert [r["id"] for r in page["results"]] == ids[2:4]
    assert page["meta"] == {"count": 5, "page_count": 3, "page_number": 2}
    only = httpx.get(url, params={"only": f"{ids[4]},{ids[0]}"}, headers=headers).json()
    assert [r["id"] for r in only["results"]] == [ids[0], ids[4]]


def test_search_and_archived_workspaces(sandbox: KantataSandbox, client: KantataClient) -> None:
    sandbox.add_workspace({"title": "Initech migration"})
    archived = sandbox.add_workspace({"title": "Initech audit", "archived": True})
    assert [w["title"] for w in client.list("workspaces", search="initech")] == ["Initech migration"]
    assert len(list(client.list("workspaces", search="initech", include_archived=True))) == 2
    assert client.get("workspaces", archived)["archived"] is True


# -- time entries: the month-end poller ------------------------------------------------------
def test_cursor_on_updated_at_sees_each_approval_once(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    ids = sandbox.add_time_entries([entry(project, day=d) for d in range(1, 11)])
    sandbox.approve_time_entries(ids[:6])
    first = list(client.list("time_entries", per_page=4, approved=True, order="updated_at:asc"))
    assert sorted(e["id"] for e in first) == sorted(ids[:6])
    cursor = first[-1]["updated_at"]

    sandbox.approve_time_entries(ids[6:])
    sandbox.update_time_entry(ids[0], {"notes": "corrected"})
    second = list(
        client.list("time_entries", per_page=4, approved=True, order="updated_at:asc", updated_after=cursor)
    )
    assert [e["id"] for e in second] == [*ids[6:], ids[0]]
    assert second[-1]["notes"] == "corrected"
    stamps = [e["updated_at"] for e in first + second]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_cursor_paging_does_not_skip_records_updated_mid_walk(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    ids = sandbox.add_time_entries([entry(project) for _ in range(6)])
    seen: list[str] = []
    for obj in client.list("time_entries", per_page=2, order="updated_at:asc"):
        seen.append(obj["id"])
        if obj["id"] == ids[1]:
            sandbox.update_time_entry(ids[0], {"notes": "moved to the end"})
    assert set(seen) == set(ids)
    assert seen[-1] == ids[0]


def test_date_range_filter(sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]) -> None:
    sandbox.add_time_entries([entry(project, day=d) for d in (3, 10, 17, 24)])
    found = client.list("time_entries", date_performed_between="2025-01-09:2025-01-17")
    assert [e["date_performed"] for e in found] == ["2025-01-10", "2025-01-17"]


def test_deleted_entry_leaves_a_tombstone_for_pollers(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    created = client.create("time_entries", entry(project))
    client.delete("time_entries", created["id"])
    with pytest.raises(BusinessRuleError) as err:
        client.get("time_entries", created["id"])
    assert err.value.details["status"] == 404
    assert list(client.list("time_entries")) == []
    [tombstone] = client.list("time_entries", include_deleted=True, updated_after=created["updated_at"])
    assert tombstone["id"] == created["id"] and tombstone["deleted_at"] == tombstone["updated_at"]


def test_bulk_create_is_chunked_by_100(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    created = client.create_many("time_entries", [entry(project, day=1 + n % 28) for n in range(150)])
    assert len(created) == 150 and len({e["id"] for e in created}) == 150
    assert created[0]["currency"] == "EUR"  # the workspace's currency
    assert sandbox.calls("POST /api/v1/time_entries.json") == 2


def test_more_than_100_in_one_request_is_refused(sandbox: KantataSandbox, project: dict[str, str]) -> None:
    response = httpx.post(
        f"{sandbox.url}/api/v1/time_entries.json",
        json={"time_entries": [entry(project)] * 101},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "time_entries"
    assert sandbox.records("time_entries") == []


def test_expenses_follow_the_same_pattern(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    created = client.create_many(
        "expenses",
        [
            {
                "workspace_id": project["workspace"],
                "date": "2025-01-08",
                "amount_in_cents": 4250,
                "category": "Travel",
                "reimbursable": True,
            }
        ],
    )
    sandbox.approve_expenses([created[0]["id"]])
    [approved] = client.list("expenses", approved=True)
    assert (approved["amount_in_cents"], approved["currency"], approved["reimbursable"]) == (
        4250,
        "EUR",
        True,
    )


# -- business rejections -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_in_minutes": 0}, "time_in_minutes"),
        ({"workspace_id": "999999"}, "workspace_id"),
        ({"story_id": "999999"}, "story_id"),
        ({"date_performed": "2025-02-30"}, "date_performed"),
    ],
)
def test_invalid_time_entry_is_a_business_rule_error(
    client: KantataClient, project: dict[str, str], change: dict[str, object], field: str
) -> None:
    with pytest.raises(BusinessRuleError) as err:
        client.create("time_entries", {**entry(project), **change})
    assert err.value.details["vendor_code"] == "validation"
    assert err.value.details == {"fields": [field], "status": 422, "vendor_code": "validation"}
    assert field in err.value.message


def test_story_from_another_workspace_is_refused(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    other = sandbox.add_workspace({"title": "Other"})
    with pytest.raises(BusinessRuleError) as err:
        client.create("time_entries", {**entry(project), "workspace_id": other})
    assert err.value.details["fields"] == ["story_id"]
    assert "not in workspace" in err.value.message


def test_approved_entry_cannot_be_changed_over_http(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    [id_] = sandbox.add_time_entries([entry(project)])
    sandbox.approve_time_entries([id_])
    with pytest.raises(BusinessRuleError, match="approved"):
        client.update("time_entries", id_, {"time_in_minutes": 120})
    assert client.get("time_entries", id_)["time_in_minutes"] == 60


def test_workspace_with_time_cannot_be_deleted(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    sandbox.add_time_entries([entry(project)])
    with pytest.raises(BusinessRuleError, match="time entries"):
        client.delete("workspaces", project["workspace"])
    empty = client.create("workspaces", {"title": "Empty"})
    client.delete("workspaces", empty["id"])
    assert [w["id"] for w in client.list("workspaces")] == [project["workspace"]]


def test_missing_title_and_unknown_id(client: KantataClient) -> None:
    with pytest.raises(BusinessRuleError) as err:
        client.create("workspaces", {"description": "no title"})
    assert err.value.details["fields"] == ["title"]
    with pytest.raises(BusinessRuleError) as missing:
        client.get("workspaces", "424242")
    assert missing.value.details["vendor_code"] == "system" and missing.value.details["status"] == 404


def test_malformed_json_is_a_400(sandbox: KantataSandbox) -> None:
    response = httpx.post(
        f"{sandbox.url}/api/v1/workspaces.json",
        content=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["type"] == "system"


def test_wrong_token_is_an_auth_error(sandbox: KantataSandbox) -> None:
    with KantataClient(sandbox.url, "stolen", retry=FAST) as intruder, pytest.raises(AuthError):
        list(intruder.list("workspaces"))
    raw = httpx.get(f"{sandbox.url}/api/v1/workspaces.json")
    assert raw.status_code == 401 and raw.json()["errors"][0]["type"] == "authentication"


# -- staffing --------------------------------------------------------------------------------
def test_resource_requests_and_participations(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    role = sandbox.add_role("Solution Architect")
    request = client.create(
        "resource_requests",
        {
            "workspace_id": project["workspace"],
            "role_id": role,
            "start_date": "2025-02-01",
            "end_date": "2025-02-28",
            "hours": "7.5",
        },
    )
    assert (request["minutes"], request["status"]) == (450, "requested")
    with pytest.raises(BusinessRuleError) as err:
        client.create(
            "resource_requests",
            {
                "workspace_id": project["workspace"],
                "role_id": "999",
                "start_date": "2025-02-01",
                "end_date": "2025-02-28",
                "minutes": 60,
            },
        )
    assert err.value.details["fields"] == ["role_id"]
    client.create("participations", {"workspace_id": project["workspace"], "user_id": project["user"]})
    with pytest.raises(BusinessRuleError, match="already a participant"):
        client.create("participations", {"workspace_id": project["workspace"], "user_id": project["user"]})
    [user] = client.list("users")
    assert user["full_name"] == "Ada Lovelace"


# -- idempotent project creation via external references ------------------------------------
def test_external_reference_is_created_with_its_workspace_and_is_unique(client: KantataClient) -> None:
    ref = {"service_name": "salesforce", "service_model": "Opportunity", "service_model_ref": "006XYZ"}
    assert client.find_subject_by_reference("salesforce", "Opportunity", "006XYZ") is None
    created = client.create("workspaces", {"title": "Umbrella", "external_references": [ref]})
    assert client.find_subject_by_reference("salesforce", "Opportunity", "006XYZ") == created["id"]
    with pytest.raises(BusinessRuleError) as err:
        client.create("workspaces", {"title": "Umbrella again", "external_references": [ref]})
    assert err.value.details["fields"] == ["service_model_ref"]
    assert [w["title"] for w in client.list("workspaces")] == ["Umbrella"]
    with pytest.raises(BusinessRuleError):
        client.create(
            "external_references", {**ref, "subject_type": "Workspace", "subject_id": created["id"]}
        )


def test_timed_out_create_is_in_doubt_and_found_by_its_reference(
    sandbox: KantataSandbox, client: KantataClient
) -> None:
    sandbox.inject("timeout_after_commit", path=r"/workspaces\.json$", method="POST", seconds=3.0, count=1)
    ref = {"service_name": "salesforce", "service_model": "Opportunity", "service_model_ref": "006DOUBT"}
    with pytest.raises(TransientError) as err:
        client.create("workspaces", {"title": "Stark", "external_references": [ref]})
    assert isinstance(err.value, InDoubtError)
    found = client.find_subject_by_reference("salesforce", "Opportunity", "006DOUBT")
    assert found is not None and client.get("workspaces", found)["title"] == "Stark"
    assert sandbox.calls("POST /api/v1/workspaces.json") == 1


# -- transient faults ------------------------------------------------------------------------
def test_throttling_is_retried_after_retry_after(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    sandbox.inject("throttle", path=r"/workspaces\.json$", retry_after=0.01, count=2)
    assert [w["id"] for w in client.list("workspaces")] == [project["workspace"]]
    assert client.retries == 2


def test_server_error_on_read_is_retried(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    sandbox.inject("error", path=r"/workspaces/", status=503, count=1)
    assert client.get("workspaces", project["workspace"])["title"] == "Acme rollout"
    assert client.retries == 1


def test_update_applied_before_a_timeout_is_retried_without_a_duplicate(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    [id_] = sandbox.add_time_entries([entry(project)])
    sandbox.inject("timeout_after_commit", path=r"/time_entries/", method="PUT", seconds=3.0, count=1)
    updated = client.update("time_entries", id_, {"time_in_minutes": 90, "notes": "re-sent"})
    assert (updated["time_in_minutes"], updated["notes"]) == (90, "re-sent")
    assert sandbox.calls("PUT /api/v1/time_entries/") == 2
    assert [e["time_in_minutes"] for e in sandbox.records("time_entries")] == [90]


def test_delete_applied_before_a_timeout_counts_as_done(
    sandbox: KantataSandbox, client: KantataClient, project: dict[str, str]
) -> None:
    [id_] = sandbox.add_time_entries([entry(project)])
    sandbox.inject("timeout_after_commit", path=r"/time_entries/", method="DELETE", seconds=3.0, count=1)
    client.delete("time_entries", id_)
    assert sandbox.records("time_entries") == []


def test_injected_rejection_uses_the_kantata_error_format(
    sandbox: KantataSandbox, client: KantataClient
) -> None:
    sandbox.inject("reject", path=r"/stories\.json$", status=422, count=1)
    with pytest.raises(BusinessRuleError) as err:
        list(client.list("stories"))
    assert err.value.details["vendor_code"] == "validation" and "injected" in err.value.message


# -- persistence and Python-side helpers ----------------------------------------------------
def test_records_survive_a_restart_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "kantata.db"
    first = KantataSandbox(path, token=TOKEN)
    workspace = first.add_workspace(
        {
            "title": "Wayne",
            "external_references": [
                {"service_name": "netsuite", "service_model": "job", "service_model_ref": "J-1"}
            ],
        }
    )
    [old] = first.add_time_entries(
        [{"workspace_id": workspace, "date_performed": "2025-01-02", "time_in_minutes": 30}]
    )
    first.approve_time_entries([old])
    stamp = first.get("time_entries", old)["updated_at"]  # type: ignore[index]
    first.store.close()

    second = KantataSandbox(path, token=TOKEN)
    second.start()
    try:
        with KantataClient(second.url, TOKEN, retry=FAST) as client:
            assert client.find_subject_by_reference("netsuite", "job", "J-1") == workspace
            new = client.create(
                "time_entries",
                {"workspace_id": workspace, "date_performed": "2025-01-03", "time_in_minutes": 45},
            )
            assert int(new["id"]) > int(old) and new["updated_at"] > stamp
            [approved] = client.list("time_entries", approved=True, order="updated_at:asc")
            assert approved["id"] == old
    finally:
        second.stop()


def test_python_helpers_validate_like_the_api(sandbox: KantataSandbox, project: dict[str, str]) -> None:
    with pytest.raises(KantataError, match="time_in_minutes"):
        sandbox.add_time_entries([{**entry(project), "time_in_minutes": -5}])
    with pytest.raises(KantataError, match="parent_title"):
        sandbox.add_template("Broken", [{"title": "Task", "parent_title": "Missing phase"}])
    assert sandbox.records("time_entries") == []
