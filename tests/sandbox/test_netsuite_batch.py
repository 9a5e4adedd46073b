"""Contract tests: the batch-upsert RESTlet, driven through the connector over loopback HTTP."""

from __future__ import annotations

import json
import secrets
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import BatchResult, NetSuiteClient, TbaCredentials, restlet_base_url
from quote2cash.errors import AuthError, BusinessRuleError
from quote2cash.sandbox.netsuite import NetSuiteSandbox

from .netsuite_fixtures import CREDS, FAST, authorization_header, client, sandbox

__all__ = ["client", "sandbox"]  # fixtures used by the tests below
RESTLET = "/app/site/hosting/restlet.nl?script=customscript_q2c_batch_upsert&deploy=1"


def _seed(sandbox: NetSuiteSandbox) -> dict[str, str]:
    return {
        "us": sandbox.add_subsidiary("Acme Consulting Inc."),
        "uk": sandbox.add_subsidiary("Acme Consulting Ltd", currency="GBP", country="GB"),
        "jan": sandbox.add_period(2026, 1, closed=True),
        "feb": sandbox.add_period(2026, 2),
        "mar": sandbox.add_period(2026, 3),
    }


@pytest.fixture
def ids(sandbox: NetSuiteSandbox) -> dict[str, str]:
    """Two subsidiaries; January 2026 closed, February and March open."""
    return _seed(sandbox)


def journal(
    ids: dict[str, str],
    n: int,
    *,
    day: str = "2026-02-27",
    amount: Decimal = Decimal("150.00"),
    credit: Decimal | None = None,
    **body: Any,
) -> dict[str, Any]:
    """One summary-mode journal entry as the hub posts it."""
    fields = {
        "tranDate": day,
        "subsidiary": {"id": ids["us"]},
        "memo": f"Time P-{n % 7} / T-{n % 3} / 2026-02",
        "custbody_q2c_kind": "time",
        "custbody_q2c_project": f"P-{n % 7}",
        "custbody_q2c_hours": Decimal("1.5"),
        "custbody_q2c_amount": amount,
        "custbody_q2c_entries": 3,
        "custbody_q2c_source_ref": f"kantata:time:{n}",
        "line": {
            "items": [
                {"account": {"id": "500"}, "debit": amount, "custcol_q2c_task": f"T-{n % 3}"},
                {"account": {"id": "400"}, "credit": amount if credit is None else credit},
            ]
        },
        **body,
    }
    return {"type": "journalentry", "externalId": f"JE-{n}", "fields": fields}


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it (Decimals as text)."""
    return json.loads(json.dumps(value, default=str))


def raw(sandbox: NetSuiteSandbox, path: str, body: Any, *, sign_url: str | None = None) -> httpx.Response:
    """A signed POST whose response is returned as is; ``sign_url`` signs another URL (tampering)."""
    request = httpx.Request("POST", sandbox.url + path, json=plain(body))
    url = str(request.url) if sign_url is None else sign_url
    request.headers["Authorization"] = authorization_header(
        "POST", url, CREDS, nonce=secrets.token_hex(8), timestamp=int(time.time())
    )
    with httpx.Client() as http:
        return http.send(request)


def restlet_calls(sandbox: NetSuiteSandbox) -> int:
    return sandbox.calls("POST /app/site/hosting/restlet.nl")


# -- writing batches ------------------------------------------------------------------------------
class TestBatchUpsert:
    def test_450_journals_go_in_three_calls_with_results_in_request_order(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        records = [journal(ids, n) for n in range(450)]
        results = client.batch_upsert(records)
        assert restlet_calls(sandbox) == 3 and client.calls == 3
        assert [r.external_id for r in results] == [f"JE-{n}" for n in range(450)]
        assert all(r.success and r.created and r.code is None for r in results)
        assert len({r.id for r in results}) == 450
        stored = {doc["externalId"]: doc for doc in sandbox.records("journalentry")}
        assert len(stored) == 450
        assert stored["JE-7"]["id"] == results[7].id
        assert stored["JE-7"]["tranId"] == f"JE{results[7].id}"
        # The posting period is derived from the date, as for a single upsert.
        assert stored["JE-7"]["postingPeriod"] == {"id": ids["feb"]}

    def test_resending_the_same_batch_creates_nothing_new(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        records = [journal(ids, n) for n in range(250)]
        first = client.batch_upsert(records)
        again = client.batch_upsert(records)
        assert [r.id for r in again] == [r.id for r in first]
        assert all(r.success and r.created is False for r in again)
        assert len(sandbox.records("journalentry")) == 250
        # Lines are replaced, not appended, so the re-sent journal still has two lines.
        assert len(sandbox.records("journalentry")[0]["line"]["items"]) == 2

    @pytest.mark.parametrize(
        ("change", "code", "words", "path"),
        [
            ({"day": "2026-01-30"}, "INVALID_FLD_VALUE", "closed accounting period (Jan 2026)", "tranDate"),
            ({"credit": Decimal("149.99")}, "USER_ERROR", "not in balance", "line"),
            ({"subsidiary": {"id": "999"}}, "INVALID_VALUE", "'subsidiary'", "subsidiary"),
            ({"tranDate": None}, "USER_ERROR", "Please enter value(s) for: Date", "tranDate"),
            (
                {"day": "2027-06-30"},
                "INVALID_FLD_VALUE",
                "does not fall in any accounting period",
                "tranDate",
            ),
        ],
        ids=["closed-period", "unbalanced", "unknown-subsidiary", "missing-date", "no-period"],
    )
    def test_a_refused_record_fails_alone_exactly_as_a_single_upsert_would(
        self,
        client: NetSuiteClient,
        sandbox: NetSuiteSandbox,
        ids: dict[str, str],
        change: dict[str, Any],
        code: str,
        words: str,
        path: str,
    ) -> None:
        bad = journal(ids, 1, **change)
        results = client.batch_upsert([journal(ids, 0), bad, journal(ids, 2)])
        assert [r.success for r in results] == [True, False, True]
        refused = results[1]
        assert (refused.external_id, refused.id, refused.code, refused.path) == ("JE-1", None, code, path)
        assert refused.message is not None and words in refused.message
        assert sorted(d["externalId"] for d in sandbox.records("journalentry")) == ["JE-0", "JE-2"]
        # The same record through PUT /record/v1/journalentry/eid:JE-1 is refused identically.
        with pytest.raises(BusinessRuleError) as excinfo:
            client.upsert("journalentry", "JE-1", plain(bad["fields"]))
        assert (excinfo.value.details["vendor_code"], excinfo.value.message) == (code, refused.message)
        error = refused.error("journalentry")
        assert error is not None and error.details["vendor_code"] == code
        assert error.record == "journalentry/eid:JE-1" and error.details["path"] == path

    def test_custom_body_and_line_fields_are_kept(self, client: NetSuiteClient, ids: dict[str, str]) -> None:
        [result] = client.batch_upsert([journal(ids, 5, amount=Decimal("1234.56"))])
        assert result.id is not None
        record = client.get("journalentry", result.id)
        assert record["custbody_q2c_source_ref"] == "kantata:time:5"
        assert record["custbody_q2c_amount"] == "1234.56"  # Decimals travel as exact text
        assert record["custbody_q2c_entries"] == 3
        lines = record["line"]["items"]
        assert lines[0]["custcol_q2c_task"] == "T-2" and lines[0]["debit"] == "1234.56"

    def test_time_and_expense_detail_records_share_a_batch_in_request_order(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        records = [
            {"type": "timebill", "externalId": "TB-1", "fields": {"tranDate": "2026-02-03", "hours": "7.5"}},
            {
                "type": "expensereport",
                "externalId": "ER-1",
                "fields": {"tranDate": "2026-02-04", "expense": {"items": [{"amount": "42.10"}]}},
            },
            {"type": "customer", "externalId": "C-1", "fields": {"companyName": "Not here"}},
            {"type": "timebill", "externalId": "", "fields": {"tranDate": "2026-02-03"}},
            journal(ids, 9),
        ]
        results = client.batch_upsert(records)
        assert [(r.external_id, r.success) for r in results] == [
            ("TB-1", True),
            ("ER-1", True),
            ("C-1", False),
            ("", False),
            ("JE-9", True),
        ]
        assert results[2].code == "INVALID_RCRD_TYPE" and results[3].path == "externalId"
        assert sandbox.records("timebill")[0]["hours"] == "7.5"
        assert sandbox.records("expensereport")[0]["tranId"].startswith("ER")
        assert sandbox.records("customer") == []

    def test_the_same_external_id_twice_in_one_batch_is_one_record(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        results = client.batch_upsert([journal(ids, 3), journal(ids, 3, memo="corrected")])
        assert results[0].id == results[1].id
        assert (results[0].created, results[1].created) == (True, False)
        [stored] = sandbox.records("journalentry")
        assert stored["memo"] == "corrected"

    def test_a_batch_is_one_store_transaction_per_record_type(
        self,
        client: NetSuiteClient,
        sandbox: NetSuiteSandbox,
        ids: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        writes: list[tuple[str, int]] = []
        put_many = sandbox.store.put_many

        def spy(kind: str, items: Any) -> None:
            items = list(items)
            writes.append((kind, len(items)))
            put_many(kind, items)

        monkeypatch.setattr(sandbox.store, "put_many", spy)
        timebill = {"type": "timebill", "externalId": "TB-2", "fields": {"tranDate": "2026-03-02"}}
        client.batch_upsert([*(journal(ids, n) for n in range(199)), timebill])
        assert writes == [("journalentry", 199), ("timebill", 1)]

    def test_batches_survive_a_restart_on_the_same_file(self, tmp_path: Path) -> None:
        path = tmp_path / "ns.db"
        sb = NetSuiteSandbox(path)
        ids = _seed(sb)
        sb.start()
        try:
            with NetSuiteClient(sb.url, CREDS, retry=FAST) as c:
                first = c.batch_upsert([journal(ids, n) for n in range(30)])
        finally:
            sb.stop()
            sb.store.close()
        again_sb = NetSuiteSandbox(path)
        again_sb.start()
        try:
            with NetSuiteClient(again_sb.url, CREDS, retry=FAST) as c:
                again = c.batch_upsert([journal(ids, n) for n in range(30)])
                rows = list(c.suiteql("SELECT COUNT(*) AS n FROM journalentry"))
        finally:
            again_sb.stop()
            again_sb.store.close()
        assert [r.id for r in again] == [r.id for r in first]
        assert not any(r.created for r in again)
        assert rows == [{"n": "30"}]

    def test_chunk_must_be_between_1_and_200(self, client: NetSuiteClient) -> None:
        with pytest.raises(ValueError, match="chunk"):
            client.batch_upsert([], chunk=201)
        assert client.batch_upsert([]) == [] and client.calls == 0


# -- whole-call errors, faults and auth -----------------------------------------------------------
class TestBatchCallFailures:
    def test_concurrency_limit_answer_is_retried_to_success(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.concurrency_limit = 1
        sandbox.inject("latency", path="suiteql", seconds=1.0, count=1)
        with NetSuiteClient(sandbox.url, CREDS, retry=FAST) as slow:
            holder = threading.Thread(target=lambda: list(slow.suiteql("SELECT id FROM subsidiary")))
            holder.start()
            deadline = time.monotonic() + 2
            while sandbox.in_flight < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            refused = raw(sandbox, RESTLET, {"records": [journal(ids, 0)]})
            patient = RetryPolicy(max_attempts=12, initial_interval=0.05, max_interval=0.1)
            with NetSuiteClient(sandbox.url, CREDS, retry=patient) as c:
                results = c.batch_upsert([journal(ids, n) for n in range(10)])
                retries = c.retries
            holder.join()
        # NetSuite RESTlets say "over the limit" with 400 and their own error shape, not 429.
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "SSS_REQUEST_LIMIT_EXCEEDED"
        assert retries >= 1 and sandbox.rejections["concurrency"] >= 2
        assert all(r.success and r.created for r in results)
        assert len(sandbox.records("journalentry")) == 10

    def test_timeout_after_commit_is_retried_without_duplicates(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.inject("timeout_after_commit", path="restlet", seconds=1.0, count=1)
        records = [journal(ids, n) for n in range(40)]
        with NetSuiteClient(sandbox.url, CREDS, retry=FAST, timeout=0.5) as c:
            results = c.batch_upsert(records)
            assert c.calls == 2
        assert restlet_calls(sandbox) == 2
        # The lost first answer created them; the retry found them by external id.
        assert all(r.success and r.created is False for r in results)
        stored = sandbox.records("journalentry")
        assert len(stored) == 40
        assert {d["id"] for d in stored} == {r.id for r in results}

    def test_server_errors_answer_in_restlet_shape_and_are_retried(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.inject("error", path="restlet", status=503, count=2)
        answer = raw(sandbox, RESTLET, {"records": []})
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "UNEXPECTED_ERROR"
        [result] = client.batch_upsert([journal(ids, 0)])
        assert result.success and client.retries == 1

    def test_bad_signature_is_an_auth_error_and_writes_nothing(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        bad = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "not-the-secret")
        with NetSuiteClient(sandbox.url, bad, retry=FAST) as c, pytest.raises(AuthError) as excinfo:
            c.batch_upsert([journal(ids, 0)])
        assert excinfo.value.code == "vendor.auth_failed" and c.calls == 1
        assert sandbox.records("journalentry") == []
        unsigned = httpx.post(sandbox.url + RESTLET, json={"records": []})
        assert unsigned.status_code == 401
        assert unsigned.json() == {
            "error": {"code": "INVALID_LOGIN_ATTEMPT", "message": "Invalid login attempt."}
        }

    def test_the_signature_covers_script_and_deploy(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        without_query = sandbox.url + "/app/site/hosting/restlet.nl"
        assert raw(sandbox, RESTLET, {"records": []}, sign_url=without_query).status_code == 401
        other_deploy = sandbox.url + RESTLET.replace("deploy=1", "deploy=2")
        assert raw(sandbox, RESTLET, {"records": []}, sign_url=other_deploy).status_code == 401
        assert raw(sandbox, RESTLET, {"records": []}).json() == {"results": []}

    def test_more_than_200_records_in_one_call_is_invalid_batch_size(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        answer = raw(sandbox, RESTLET, {"records": [journal(ids, n) for n in range(201)]})
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "INVALID_BATCH_SIZE" and "201" in error["message"]
        assert sandbox.records("journalentry") == []

    def test_malformed_bodies_are_refused_as_a_whole(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        assert raw(sandbox, RESTLET, {"rows": []}).json()["error"]["code"] == "INVALID_REQUEST"
        request = httpx.Request("POST", sandbox.url + RESTLET, content=b"{not json")
        request.headers["Authorization"] = authorization_header(
            "POST", str(request.url), CREDS, nonce="nj", timestamp=int(time.time())
        )
        with httpx.Client() as http:
            answer = http.send(request)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "SYNTAX_ERROR"

    def test_unknown_script_or_deploy_is_a_business_error(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            client.batch_upsert([journal(ids, 0)], deploy="2")
        assert excinfo.value.details["vendor_code"] == "SSS_INVALID_SCRIPTLET_ID" and client.calls == 1
        assert excinfo.value.details["records_done"] == 0
        assert sandbox.records("journalentry") == []

    def test_script_and_deploy_are_configurable(self, tmp_path: Path) -> None:
        sb = NetSuiteSandbox(restlet_script="customscript_acme_batch", restlet_deploy="customdeploy_acme")
        ids = _seed(sb)
        sb.start()
        try:
            with NetSuiteClient(sb.url, CREDS, retry=FAST) as c:
                [ok] = c.batch_upsert(
                    [journal(ids, 0)], script="customscript_acme_batch", deploy="customdeploy_acme"
                )
                with pytest.raises(BusinessRuleError):
                    c.batch_upsert([journal(ids, 1)])
        finally:
            sb.stop()
        assert ok.success and [d["externalId"] for d in sb.records("journalentry")] == ["JE-0"]

    def test_restlet_domain_of_an_account(self) -> None:
        assert restlet_base_url("1234567_SB1") == "https://1234567-sb1.restlets.api.netsuite.com"
        with NetSuiteClient("https://x.test", CREDS, restlet_url=restlet_base_url("1234567_SB1")) as c:
            assert (
                c.restlet_url == "https://1234567-sb1.restlets.api.netsuite.com/app/site/hosting/restlet.nl"
            )


# -- reading postings back for reconciliation -----------------------------------------------------
class TestReconciliationQueries:
    @pytest.fixture
    def posted(self, client: NetSuiteClient, ids: dict[str, str]) -> list[BatchResult]:
        # Amounts chosen so that float addition would show (0.1 + 0.2 ...).
        records = [
            journal(
                ids,
                n,
                day="2026-02-27" if n % 4 else "2026-03-31",
                amount=Decimal("0.10") + Decimal(n) / 100,
                custbody_q2c_hours=Decimal("0.1"),
                custbody_q2c_kind="time" if n % 5 else "expense",
                subsidiary={"id": ids["us"] if n % 2 else ids["uk"]},
            )
            for n in range(300)
        ]
        return client.batch_upsert(records)

    def test_group_by_over_custom_body_fields_returns_exact_sums(
        self, client: NetSuiteClient, ids: dict[str, str], posted: list[BatchResult]
    ) -> None:
        q = (
            "SELECT custbody_q2c_project, subsidiary, postingperiod, SUM(custbody_q2c_hours), "
            "SUM(custbody_q2c_amount), SUM(custbody_q2c_entries), COUNT(*) FROM journalentry "
            f"WHERE custbody_q2c_kind = 'time' AND postingperiod = '{ids['feb']}' "
            "GROUP BY custbody_q2c_project, subsidiary, postingperiod ORDER BY custbody_q2c_project, subsidiary"
        )
        rows = list(client.suiteql(q))
        expected: dict[tuple[str, str], list[Decimal]] = {}
        for n in range(300):
            if n % 4 and n % 5:
                key = (f"P-{n % 7}", ids["us"] if n % 2 else ids["uk"])
                sums = expected.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
                sums[0] += Decimal("0.1")
                sums[1] += Decimal("0.10") + Decimal(n) / 100
                sums[2] += 1
        assert len(rows) == len(expected) == 14
        for row in rows:
            hours, amount, count = expected[row["custbody_q2c_project"], row["subsidiary"]]
            assert row["postingperiod"] == ids["feb"]
            # Text, and exact: 0.1 summed 17 times is "1.7", never 1.7000000000000002.
            assert row["expr1"] == format(hours.normalize(), "f")
            assert Decimal(row["expr2"]) == amount and row["expr3"] == str(3 * count)
            assert row["expr4"] == str(count)

    def test_detail_rows_read_custom_and_system_columns(
        self, client: NetSuiteClient, ids: dict[str, str], posted: list[BatchResult]
    ) -> None:
        q = (
            "SELECT id, externalid, tranid, trandate, postingperiod, subsidiary, custbody_q2c_source_ref, "
            "custbody_q2c_amount FROM journalentry WHERE custbody_q2c_source_ref IN "
            "('kantata:time:4', 'kantata:time:7') ORDER BY externalid"
        )
        rows = list(client.suiteql(q))
        assert rows == [
            {
                "id": posted[4].id,
                "externalid": "JE-4",
                "tranid": f"JE{posted[4].id}",
                "trandate": "2026-03-31",
                "postingperiod": ids["mar"],
                "subsidiary": ids["uk"],
                "custbody_q2c_source_ref": "kantata:time:4",
                "custbody_q2c_amount": "0.14",
            },
            {
                "id": posted[7].id,
                "externalid": "JE-7",
                "tranid": f"JE{posted[7].id}",
                "trandate": "2026-02-27",
                "postingperiod": ids["feb"],
                "subsidiary": ids["us"],
                "custbody_q2c_source_ref": "kantata:time:7",
                "custbody_q2c_amount": "0.17",
            },
        ]

    def test_line_custom_fields_are_readable_from_transactionline(
        self, client: NetSuiteClient, posted: list[BatchResult]
    ) -> None:
        q = (
            "SELECT custcol_q2c_task, SUM(debit), COUNT(*) FROM transactionline "
            "WHERE custcol_q2c_task IS NOT NULL GROUP BY custcol_q2c_task ORDER BY custcol_q2c_task"
        )
        rows = list(client.suiteql(q))
        assert [r["custcol_q2c_task"] for r in rows] == ["T-0", "T-1", "T-2"]
        assert sum(int(r["expr2"]) for r in rows) == 300
        total = sum(Decimal("0.10") + Decimal(n) / 100 for n in range(300))
        assert sum(Decimal(r["expr1"]) for r in rows) == total

    def test_planted_discrepancies_show_up_in_queries(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str], posted: list[BatchResult]
    ) -> None:
        first, second, third = (r.id for r in posted[1:4])
        assert first is not None and second is not None and third is not None
        copy = sandbox.duplicate_record("journalentry", first, "JE-1-dup")
        sandbox.set_field("journalentry", second, "custbody_q2c_amount", Decimal("999.99"))
        sandbox.close_period(2026, 2)
        sandbox.delete_record("journalentry", third)  # even in a closed period
        q = (
            "SELECT id, externalid, custbody_q2c_amount FROM journalentry "
            "WHERE custbody_q2c_source_ref IN ('kantata:time:1', 'kantata:time:2', 'kantata:time:3') ORDER BY id"
        )
        rows = list(client.suiteql(q))
        assert rows == [
            {"id": first, "externalid": "JE-1", "custbody_q2c_amount": "0.11"},
            {"id": second, "externalid": "JE-2", "custbody_q2c_amount": "999.99"},
            {"id": copy, "externalid": "JE-1-dup", "custbody_q2c_amount": "0.11"},
        ]
        duplicate = client.get_by_external_id("journalentry", "JE-1-dup")
        assert duplicate is not None and duplicate["tranId"] == f"JE{copy}"
        assert len(duplicate["line"]["items"]) == 2
