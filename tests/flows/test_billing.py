"""F6/F7 billing end to end: schedules from contracts, T&M, retainer, milestone and subscription
invoices through the Stripe sandbox, AR invoices in the NetSuite sandbox; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from decimal import Decimal

import sqlalchemy as sa

from quote2cash.flows.billing.milestones import poll_milestones
from quote2cash.flows.billing.periods import bill_now
from quote2cash.ops.billing import kpis
from quote2cash.store.tables import exception_case, invoiced_work

from .billing_fixtures import Cash


def _stripe_invoices(c: Cash, key: str) -> list[dict[str, object]]:
    return [i for i in c.stripe.objects("invoice") if (i.get("metadata") or {}).get("q2c_key") == key]


def _erp_invoice(c: Cash, billing_id: str) -> dict[str, object]:
    (found,) = [r for r in c.boxes.netsuite.records("invoice") if r.get("externalId") == billing_id]
    return found


def test_each_billing_model_bills_the_right_amounts_per_currency(cash: Cash) -> None:
    c = cash
    tm_usd = c.deal("Time & Materials")
    tm_jpy = c.deal("Time & Materials", currency="JPY", amount=5_000_000, entity="JP01", region="APAC")
    retainer = c.deal("Retainer", amount=12000.0, end="2027-03-31")  # 4 months: 3,000.00 a month
    milestone = c.deal("Milestone", currency="EUR", amount=10000.0, region="DACH")
    subscription = c.deal("Subscription", amount=2400.0, end="2027-11-30")  # 12 months: 200.00 a month
    projects = c.activate([tm_usd, tm_jpy, retainer, milestone, subscription])

    # Schedules: the retainer fee and the subscription price per month, milestones split evenly.
    assert c.schedule(retainer)["period_minor"] == 300000
    sub = c.schedule(subscription)
    assert sub["period_minor"] == 20000 and sub["subscription_id"]
    (stripe_sub,) = [s for s in c.stripe.objects("subscription") if s["id"] == sub["subscription_id"]]
    assert stripe_sub["items"]["data"][0]["price"]["unit_amount"] == 20000

    # T&M: 7.5 h of a Consultant (180.00/h) and 2 h of an Engagement Manager (320.00/h) in December.
    c.time(projects[tm_usd], "Consultant", 450, "2026-12-03")
    c.time(projects[tm_usd], "Engagement Manager", 120, "2026-12-04")
    # Yen: 1 h 20 min at 33,333/h rounds to whole yen; 3 h at 25,000/h.
    c.time(projects[tm_jpy], "Senior Consultant", 80, "2026-12-07")
    c.time(projects[tm_jpy], "Consultant", 180, "2026-12-08")
    # Retainer: 20 h of a Partner at 450.00 = 9,000.00 against a 3,000.00 fee: 6,000.00 overage.
    c.time(projects[retainer], "Partner", 1200, "2026-12-09")
    c.post_time()
    run = bill_now("2026-12")
    assert run["status"] == "completed" and run["failed"] == 0, run

    usd = c.invoices(tm_usd)
    assert [(i["status"], i["currency"], i["total_minor"]) for i in usd] == [("open", "USD", 135000 + 64000)]
    (stripe_usd,) = _stripe_invoices(c, usd[0]["key"])
    assert stripe_usd["status"] == "open" and stripe_usd["total"] == 199000
    assert sorted(line["amount"] for line in stripe_usd["lines"]["data"]) == [64000, 135000]
    erp = _erp_invoice(c, str(stripe_usd["id"]))
    assert Decimal(str(erp["custbody_q2c_total"])) == Decimal("1990.00")
    assert erp["otherRefNum"] == stripe_usd["number"]

    (jpy,) = c.invoices(tm_jpy)
    (stripe_jpy,) = _stripe_invoices(c, jpy["key"])
    assert stripe_jpy["currency"] == "jpy"
    assert stripe_jpy["total"] == 44444 + 75000  # 33,333 × 80 / 60 = 44,444 yen, no minor unit
    assert Decimal(str(_erp_invoice(c, str(stripe_jpy["id"]))["custbody_q2c_total"])) == Decimal("119444")

    (ret,) = c.invoices(retainer)
    (stripe_ret,) = _stripe_invoices(c, ret["key"])
    assert sorted(line["amount"] for line in stripe_ret["lines"]["data"]) == [300000, 600000]

    # Milestone: signed off in the PSA → invoiced (10,000.00 EUR over the template's 3 milestones).
    stones = [
        s
        for s in c.boxes.kantata.records("stories")
        if str(s["workspace_id"]) == str(projects[milestone]["psa_workspace_id"])
        and s["story_type"] == "milestone"
    ]
    assert len(stones) == 3
    c.boxes.kantata.update_story(str(stones[0]["id"]), {"state": "completed"})  # signed off in the PSA
    assert poll_milestones(c.hub) == 1
    assert poll_milestones(c.hub) == 0  # accepted once
    c.settle()
    (ms,) = c.invoices(milestone)
    (stripe_ms,) = _stripe_invoices(c, ms["key"])
    assert (stripe_ms["currency"], stripe_ms["total"], stripe_ms["status"]) == ("eur", 333333, "open")
    assert _erp_invoice(c, str(stripe_ms["id"]))["externalId"] == stripe_ms["id"]

    # Time is locked once invoiced: a second run bills nothing; time approved later goes to the next one.
    again = bill_now("2026-12")
    assert (again["invoices_planned"], again["entries_locked"]) == (0, 0)
    late = c.time(projects[tm_usd], "Consultant", 60, "2026-12-20")
    c.post_time()
    third = bill_now("2026-12")
    assert third["invoices_planned"] == 1 and third["entries_locked"] == 1
    locked = c.hub.read(
        lambda x: x.execute(sa.select(invoiced_work.c.source_id, invoiced_work.c.invoice_key)).all()
    )
    assert len({s for s, _ in locked}) == len(locked) == 6
    assert any(s == late and k.endswith("-2") for s, k in locked)
    assert len([i for i in c.stripe.objects("invoice") if (i.get("metadata") or {}).get("q2c_key")]) == 5

    # The figures an operator reads.
    deadline = time.monotonic() + 10
    figures = kpis(c.hub)
    while figures["invoice_cycle"]["invoices"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        figures = kpis(c.hub)
    assert figures["billed_by_currency"]["JPY"] == "119444"
    assert figures["invoice_cycle"]["invoices"] == 1
    billing_flows = ("schedule_billing", "invoice_milestone", "bill_period")
    open_cases = sa.select(exception_case.c.code).where(
        exception_case.c.status == "open", exception_case.c.flow.in_(billing_flows)
    )
    assert not c.hub.read(lambda x: x.execute(open_cases).all())


def test_billable_time_left_uninvoiced_after_its_month_is_leakage(cash: Cash) -> None:
    from datetime import date

    from quote2cash.ops.billing import leakage

    c = cash
    tm = c.deal("Time & Materials")
    project = c.activate([tm])[tm]
    # December is billed; two hours approved in January are not (that month's run has not been made).
    c.time(project, "Consultant", 120, "2026-12-10")
    c.time(project, "Consultant", 120, "2027-01-12")
    c.post_time()
    assert bill_now("2026-12")["status"] == "completed"

    # While January is open, nothing has leaked yet.
    assert c.hub.read(leakage, date(2027, 1, 20))["projects"] == []
    # Once January has closed, its uninvoiced hours are leakage, for the project and its client.
    report = c.hub.read(leakage, date(2027, 2, 3))
    [line] = report["projects"]
    assert (line["project"], line["currency"], line["entries"], line["hours"]) == (tm, "USD", 1, "2.0")
    assert report["by_currency"] == {"USD": "360.00"}  # 2 h at the Consultant's 180.00
    assert report["clients"] == {str(project["customer_id"]): {"USD": "360.00"}}
    # Billing January ends it.
    assert bill_now("2027-01")["status"] == "completed"
    assert c.hub.read(leakage, date(2027, 2, 3))["projects"] == []


def test_billing_and_project_reconciliation_find_each_planted_break(cash: Cash) -> None:
    from quote2cash.ops.billing import reconcile
    from quote2cash.store import cases

    c = cash
    tm, other = c.deal("Time & Materials"), c.deal("Time & Materials")
    projects = c.activate([tm, other])
    for opp in (tm, other):
        c.time(projects[opp], "Consultant", 60, "2026-12-10")
    c.post_time()
    assert bill_now("2026-12")["status"] == "completed"
    clean = reconcile(c.hub, "billing", "2026-12")
    assert clean.breaks == [] and sum(line.billing_count for line in clean.lines) == 2
    assert reconcile(c.hub, "projects", "2026-11").breaks == []

    # An AR invoice removed in the ERP, and a deal won in the CRM that never became a project.
    (gone,) = c.invoices(other)
    (ar,) = [r for r in c.boxes.netsuite.records("invoice") if r.get("externalId") == gone["billing_id"]]
    c.boxes.netsuite.delete_record("invoice", str(ar["id"]))
    stray = c.deal("Time & Materials")  # won, never delivered to the hub
    billing_report = reconcile(c.hub, "billing", "2026-12")
    assert [b.kind for b in billing_report.breaks] == ["invoice_not_in_erp"]
    projects_report = reconcile(c.hub, "projects", "2026-11")
    assert [(b.kind, b.record) for b in projects_report.breaks] == [("deal_without_project", stray)]
    codes = {case["code"] for case in c.hub.read(cases.list_cases)}
    assert {"recon.invoice_not_in_erp", "recon.deal_without_project"} <= codes
