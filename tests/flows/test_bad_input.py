"""Malformed vendor payloads and bad configuration fail with a message that
names the field, and lose nothing: the cursor does not move past what was not read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quote2cash.cli import app
from quote2cash.errors import VendorPayloadError
from quote2cash.flows.intake import cursor_name, poll_closed_won
from quote2cash.flows.posting import post_now
from quote2cash.flows.posting.pull import feed_cursor
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from quote2cash.store import cases, repo

from .conftest import add_deal


def test_crm_record_without_its_change_stamp_is_refused_and_the_cursor_stays(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes)
    broken = {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": {"type": "Opportunity"}, "Id": opp, "IsWon": True}],
    }
    boxes.salesforce.inject("reject", path="/query", status=200, body=broken, count=1)
    with pytest.raises(VendorPayloadError, match="salesforce opportunity record is missing 'SystemModstamp'"):
        poll_closed_won(hub)
    assert hub.read(repo.get_cursor, cursor_name(hub)) is None
    # Once the CRM answers properly, the same deal is picked up: nothing was lost.
    assert poll_closed_won(hub).accepted == 1


def test_unreadable_psa_entry_is_dead_lettered_with_its_payload_and_the_feed_goes_on(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    record = {
        "id": "77",
        "workspace_id": "1",
        "updated_at": "2026-10-01T00:00:00.000001Z",
        "approved": True,
        "time_in_minutes": 60,
    }
    body = {
        "count": 1,
        "results": [{"key": "time_entries", "id": "77"}],
        "time_entries": {"77": record},
        "meta": {"count": 1, "page_count": 1, "page_number": 1},
    }
    boxes.kantata.inject("reject", path="/time_entries", status=200, body=body, count=1)
    assert post_now("time")["pulled"]["dead_lettered"] == 1
    [case] = hub.read(cases.list_cases, code="vendor.malformed_payload")
    assert "date_performed" in case["message"] and case["payload"] == record  # nothing lost
    assert hub.read(repo.get_cursor, feed_cursor("time", "psa")) == record["updated_at"]


def test_psa_entry_without_change_stamp_stops_the_pull_and_keeps_the_cursor(
    make_hub: Callable[..., Hub], boxes: Sandboxes
) -> None:
    hub = make_hub()
    body = {
        "count": 1,
        "results": [{"key": "time_entries", "id": "78"}],
        "time_entries": {"78": {"id": "78", "workspace_id": "1", "approved": True}},
        "meta": {"count": 1, "page_count": 1, "page_number": 1},
    }
    boxes.kantata.inject("reject", path="/time_entries", status=200, body=body, count=1)
    with pytest.raises(VendorPayloadError, match="updated_at"):
        post_now("time")
    assert hub.read(repo.get_cursor, feed_cursor("time", "psa")) is None


def test_cli_reports_a_bad_config_by_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "q2c.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"systems": {"crm": {"kind": "dynamics", "base_url": "https://x"}}, "legal_entities": {}}
        )
    )
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "systems.crm.kind" in result.output and "q2c.yaml" in result.output


def test_cli_reports_a_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["exceptions", "list", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no config file" in result.output
