"""A generated month written to Certinia as weekly timecards: the hours a consultant booked add
up by day on one timecard per project, milestone, billing and week, and each planted bad entry
is still there to be caught."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from quote2cash.sandbox.firm import ENTITIES, PRACTICES, TEMPLATES, rate_cards
from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.salesforce import certinia as pse
from quote2cash.sandbox.salesforce.certinia import HOURS_FIELDS
from quote2cash.sandbox.salesforce.timecards import seed_month, timecards, week_start


def _entry(day: str, minutes: int, **kw: Any) -> dict[str, Any]:
    return {
        "workspace_id": "P1",
        "story_id": "M1",
        "user_id": "U1",
        "date_performed": day,
        "time_in_minutes": minutes,
        "billable": True,
        "rate_in_cents": 18000,
        **kw,
    }


def test_entries_become_one_timecard_per_week_with_their_hours_by_day() -> None:
    headers = timecards(
        [
            _entry("2026-09-30", 90),  # Wednesday of the week spanning the month end
            _entry("2026-10-01", 120),
            _entry("2026-10-01", 60),  # the same day again: the hours add up
            _entry("2026-10-05", 240),  # the next week
            _entry("2026-10-05", 60, rate_in_cents=20500),  # another bill rate: its own timecard
            _entry("2026-10-05", 60, billable=False, rate_in_cents=0),
        ]
    )
    assert [(h["pse__Start_Date__c"], h["pse__Bill_Rate__c"], h["pse__Billable__c"]) for h in headers] == [
        ("2026-09-28", 180.0, True),
        ("2026-10-05", 180.0, True),
        ("2026-10-05", 205.0, True),
        ("2026-10-05", None, False),
    ]
    first = headers[0]
    assert (first["pse__Wednesday_Hours__c"], first["pse__Thursday_Hours__c"]) == (1.5, 3.0)
    assert not any(
        first.get(f) for f in HOURS_FIELDS if f not in ("pse__Wednesday_Hours__c", "pse__Thursday_Hours__c")
    )
    assert {h["pse__Status__c"] for h in headers} == {"Approved"}
    assert week_start(date(2026, 10, 4)) == date(2026, 9, 28)  # a Sunday belongs to the week before


def _org() -> tuple[SalesforceSandbox, list[str]]:
    """An org with the firm's catalogue, twelve resources and nine projects (and one not the hub's)."""
    box = SalesforceSandbox()
    pse.seed_catalogue(
        box,
        regions=[e.region for e in ENTITIES],
        practices=PRACTICES,
        templates=TEMPLATES,
        consultants=[
            {"full_name": f"Person {n}", "headline": role, "email": f"p{n}@northwind.example"}
            for n, role in enumerate(["Consultant", "Engagement Manager", "Partner", "Analyst"] * 3)
        ],
    )
    box.insert("pse__Proj__c", {"Name": "Internal", "CurrencyIsoCode": "USD"})
    projects = []
    for n, template in enumerate(["T&M Delivery", "Fixed-Fee Delivery", "Milestone Delivery"] * 3):
        project = box.insert(
            "pse__Proj__c",
            {
                "Name": f"Project {n}",
                "CurrencyIsoCode": "USD",
                "pse__Billing_Type__c": pse.TEMPLATE_BILLING_TYPES[template],
                "Hub_Ext_Id__c": f"deal-{n}",
            },
        )
        box.insert_many(
            "pse__Milestone__c",
            [
                {
                    "Name": phase,
                    "pse__Project__c": project,
                    "pse__Target_Date__c": (date(2026, 11, 27) + timedelta(days=30 * k)).isoformat(),
                }
                for k, phase in enumerate(TEMPLATES[template])
            ],
        )
        projects.append(project)
    return box, projects


def test_a_month_on_the_orgs_projects_keeps_its_planted_bad_entries() -> None:
    box, projects = _org()
    month = seed_month(box, rate_cards(), 2026, 10, seed=3, projects=set(projects))

    held = box.records("pse__Timecard_Header__c")
    assert len(held) == len(month.headers) > 0 and len(box.records("pse__Expense__c")) == len(month.expenses)
    assert {h["pse__Project__c"] for h in held} <= set(projects)  # none on the project not the hub's
    assert all(date.fromisoformat(h["pse__Start_Date__c"]).weekday() == 0 for h in held)
    days = [(h, f) for h in held for f in HOURS_FIELDS if h.get(f)]
    assert month.days == len(days) and all(0 < h[f] <= 24 for h, f in days)
    assert sum(month.planted.values()) > 0
    assert set(month.planted) <= {
        "erp.period_closed",
        "time.task_closed",
        "time.rate_mismatch",
        "time.billable_mismatch",
        "expense.category_missing",
    }
    # Each planted fault is on days of its own, where the hub's rules will find it.
    t_and_m = {
        p["Id"] for p in box.records("pse__Proj__c") if p.get("pse__Billing_Type__c") == "Time and Materials"
    }
    roles = {c["Id"]: c["pse__Resource_Role__c"] for c in box.records("Contact")}
    closed = {m["Id"] for m in box.records("pse__Milestone__c") if m.get("pse__Closed_for_Time_Entry__c")}

    def card(h: dict[str, Any]) -> float:
        return float(rate_cards()["USD"][roles[h["pse__Resource__c"]]])

    found = {
        "erp.period_closed": sum(
            1 for h, f in days if h["pse__Start_Date__c"] == "2026-09-28" and f == HOURS_FIELDS[2]
        ),
        "time.task_closed": sum(1 for h, _ in days if h["pse__Milestone__c"] in closed),
        "time.rate_mismatch": sum(
            1 for h, _ in days if h["pse__Project__c"] in t_and_m and h["pse__Bill_Rate__c"] == card(h) + 25
        ),
        "time.billable_mismatch": sum(
            1 for h, _ in days if h["pse__Billable__c"] and h["pse__Project__c"] not in t_and_m
        ),
        "expense.category_missing": sum(
            1 for e in box.records("pse__Expense__c") if e["pse__Type__c"] is None
        ),
    }
    assert found == {reason: month.planted.get(reason, 0) for reason in found}
    # Billable time elsewhere is at the rate card of the resource's role.
    fair = [h for h in held if h["pse__Billable__c"] and h["pse__Project__c"] in t_and_m]
    assert fair and all(h["pse__Bill_Rate__c"] in (card(h), card(h) + 25) for h in fair)
    # The same seed on the same org gives the same month.
    other, other_projects = _org()
    assert seed_month(other, rate_cards(), 2026, 10, seed=3, projects=set(other_projects)) == month
