"""What ``q2c kpis`` and ``q2c exceptions`` print for people (tables with units) and for machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quote2cash.flows.intake import poll_closed_won
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import Sandboxes
from tests.cli.conftest import q2c
from tests.flows.conftest import add_deal, wait_for_flows

CANADA: dict[str, Any] = {
    "region": "Canada",
    "currency": "CAD",
}  # its ERP subsidiary is inactive: a finance case


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("[", "{"))
    return json.loads("\n".join(lines[start:]))


def _row(output: str, label: str) -> list[str]:
    """The cells of the table row starting with ``label``."""
    for cells in _rows(output):
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{output}")


def _rows(output: str) -> list[list[str]]:
    """The cells of every table row (a cell folded over lines joined up)."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[0] or not rows:
            rows.append(cells)
        else:  # the continuation of the row above
            rows[-1] = [
                f"{a}{b}" if a.endswith(("(", "/")) or not a else f"{a} {b}".strip()
                for a, b in zip(rows[-1], cells, strict=False)
            ]
    return rows


def test_kpis_table_and_json(make_hub: Callable[..., Hub], boxes: Sandboxes, config_file: Path) -> None:
    hub = make_hub()
    add_deal(boxes, name="Maple Leaf Analytics Inc", **CANADA)
    add_deal(boxes)
    poll_closed_won(hub)
    assert sorted(wait_for_flows(hub, 2).values()) == ["completed", "exception"]

    figures = _json(q2c("kpis", "--json", "--config", config_file))
    assert set(figures) == {
        "closed_won_to_project",
        "time",
        "expense",
        "open_cases",
        "open_cases_by_owner",
        "ownership_refused_fields",
    }
    assert figures["time"] is None and figures["expense"] is None  # no posting run yet
    won = figures["closed_won_to_project"]
    assert won["deals"] == 1 and isinstance(won["deals"], int) and isinstance(won["p50_s"], float)
    assert figures["open_cases"] == 1 and figures["open_cases_by_owner"] == {
        "finance": {"customer.subsidiary_inactive": 1}
    }

    table = q2c("kpis", "--config", config_file)
    assert table.exit_code == 0, table.output
    assert _row(table.stdout, "Deals turned into projects")[1] == "1"
    assert _row(table.stdout, "Closed-won → project latency p50")[1] == f"{won['p50_s']:.3f} s"
    assert _row(table.stdout, "Time entries: last posting run")[1] == "none yet"
    assert _row(table.stdout, "Open exception cases")[1] == "1"
    assert _row(table.stdout, "owner finance: customer.subsidiary_inactive")[1] == "1"


def test_case_shows_its_project_and_history_and_a_failed_resubmit_says_so(
    make_hub: Callable[..., Hub], boxes: Sandboxes, config_file: Path
) -> None:
    hub = make_hub()
    _, opp = add_deal(boxes, name="Maple Leaf Analytics Inc", **CANADA)
    poll_closed_won(hub)
    assert list(wait_for_flows(hub, 1).values()) == ["exception"]
    hub.shutdown()  # the commands below start their own hub, as they would from a shell

    [case] = _json(q2c("exceptions", "list", "--json", "--config", config_file))
    deal = boxes.salesforce.get("Opportunity", opp)
    assert case["project"] == f"{deal['Name']} ({opp})"
    listed = q2c("exceptions", "list", "--config", config_file)
    assert listed.exit_code == 0 and "age (h)" in listed.stdout

    # Resubmitted without a fix: the run stops on the same rule, and the command says so.
    again = q2c("exceptions", "resubmit", case["id"], "--actor", "maria", "--config", config_file)
    assert again.exit_code == 1, again.output
    assert f"case {case['id']} resubmitted as" in again.stderr and "and failed again" in again.stderr
    assert "customer.subsidiary_inactive" in again.stderr

    ignored = q2c(
        "exceptions", "ignore", case["id"], "--reason", "re-booked in US01", "--actor", "li", "--config", config_file
    )  # fmt: skip
    assert ignored.exit_code == 0, ignored.output

    detail = _json(q2c("exceptions", "show", case["id"], "--json", "--config", config_file))
    events = [(e["event"], e["by"]) for e in detail["history"]]
    assert events == [
        ("opened", "flow:lead_to_project"),
        ("resubmitted", "user:maria"),
        ("failed again", "flow:lead_to_project"),
        ("ignored", "user:li"),
    ]
    assert detail["history"][-1]["note"] == "re-booked in US01"

    shown = q2c("exceptions", "show", case["id"], "--config", config_file)
    assert shown.exit_code == 0, shown.output
    assert _row(shown.stdout, "project")[1] == f"{deal['Name']} ({opp})"
    assert _row(shown.stdout, "status")[1] == "ignored"
    section = shown.stdout.split("History (oldest first)")[1].split("audit trail")[0]
    positions = [section.find(f" {event} ") for event in ("opened", "resubmitted", "failed again", "ignored")]
    assert -1 not in positions and positions == sorted(positions), section
