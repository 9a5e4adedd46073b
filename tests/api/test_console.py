"""The console in headless Chromium (the Debian ``chromium`` binary, nothing downloaded):
log in, read the KPI overview with its charts, open an exception, view the replay diff,
fix and resubmit it, and see the flow complete. Screenshots of each page are saved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from quote2cash.flows.intake import poll_closed_won
from tests.api.conftest import Api
from tests.flows.conftest import add_deal, wait_for_flows

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path(os.environ.get("Q2C_SCREENSHOTS", "test-screenshots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]


def test_log_in_read_the_overview_fix_a_case_and_see_the_flow_complete(api: Api, db_url: str) -> None:
    if "postgres" in db_url:
        pytest.skip("the console does not depend on the database; one run is enough")
    sync_api = pytest.importorskip("playwright.sync_api")
    for _ in range(2):
        add_deal(api.boxes)
    _, broken = add_deal(api.boxes, billing="")
    poll_closed_won(api.hub)
    wait_for_flows(api.hub, 3)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{api.url}/console/")
        assert page.url.endswith("/console/login?next=/console/")
        page.fill("input[name=token]", "q2c_nope_nope")
        page.click("button[type=submit]")
        assert "not valid" in page.inner_text("body")
        page.fill("input[name=token]", api.tokens["operate"])
        page.click("button[type=submit]")
        page.wait_for_selector("figure[data-chart=closed_won_to_project_seconds][data-drawn=yes] canvas")
        page.wait_for_selector("figure[data-chart=exceptions][data-drawn=yes] canvas")
        assert "1 open exception cases" in " ".join(page.inner_text(".tiles").split())
        # Samples of the last minutes are drawn on an axis of hours, not of years.
        span = page.get_attribute("figure[data-chart=closed_won_to_project_seconds]", "data-x-span-s")
        assert span is not None and 0 < int(span) <= 3 * 3600
        page.screenshot(path=str(SHOTS / "1-overview.png"), full_page=True)

        page.click("text=Exceptions")
        page.screenshot(path=str(SHOTS / "2-workbench.png"), full_page=True)
        page.click("#cases a")
        assert "mapping.required_field_missing" in page.inner_text("h1")
        api.boxes.salesforce.update(
            "Opportunity", broken, {"Billing_Model__c": "Fixed Fee"}
        )  # fixed at the source
        page.click("#show-diff")
        diff = page.inner_text("#replay-diff")
        assert "would go through" in diff and "custentity_q2c_billing_model" in diff and "fixed_fee" in diff
        page.screenshot(path=str(SHOTS / "3-replay-diff.png"), full_page=True)

        payload = page.input_value("textarea[name=payload]")
        page.fill("textarea[name=payload]", payload.replace('"Closed Won"', '"Closed Won" '))
        page.click("#resubmit")
        assert "Done: resubmitted" in page.inner_text(".flash")
        for _ in range(100):
            page.reload()
            if page.inner_text("#case-status") == "resolved":
                break
            page.wait_for_timeout(200)
        assert page.inner_text("#case-status") == "resolved"
        assert page.inner_text("#run-status") == "completed"
        page.screenshot(path=str(SHOTS / "4-case-resolved.png"), full_page=True)

        page.click("dd a")  # the run
        assert "completed" in page.inner_text("#run-status")
        assert "erp_project.written" in page.inner_text("table.timeline")
        page.screenshot(path=str(SHOTS / "5-run-timeline.png"), full_page=True)
        page.click("text=Reconciliation")
        page.screenshot(path=str(SHOTS / "6-reconciliation.png"), full_page=True)
        page.click("text=Audit trail")
        assert "Hash chain verified" in page.inner_text("#chain")
        page.screenshot(path=str(SHOTS / "7-audit.png"), full_page=True)
        browser.close()
    assert len(list(SHOTS.glob("*.png"))) == 7
