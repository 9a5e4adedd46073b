"""Contract tests: the Salesforce connector against the Salesforce sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.salesforce import ItemResult, SalesforceClient
from quote2cash.errors import AuthError, BusinessRuleError, InDoubtError, TransientError, VendorPayloadError
from quote2cash.sandbox.salesforce import SalesforceError, SalesforceSandbox

FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)
API = "/services/data/v62.0"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SalesforceSandbox]:
    sb = SalesforceSandbox(tmp_path / "salesforce.sqlite")
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


def make_client(sb: SalesforceSandbox, **kw: object) -> SalesforceClient:
    options: dict[str, object] = {"retry": FAST, "timeout": 5.0, **kw}
    return SalesforceClient(sb.url, "q2c", "sandbox-secret", **options)  # type: ignore[arg-type]


@pytest.fixture
def client(sandbox: SalesforceSandbox) -> Iterator[SalesforceClient]:
    c = make_client(sandbox)
    yield c
    c.close()


def raw(sb: SalesforceSandbox) -> httpx.Client:
    """A plain HTTP client with a valid token, to look at the wire format itself."""
    return httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {sb.issue_token()}"})


def opportunity(account_id: str, **fields: object) -> dict[str, object]:
    return {
        "AccountId": account_id,
        "Name": "Acme – Phase 1",
        "StageName": "Prospecting",
        "CloseDate": "2025-06-30",
        **fields,
    }


# -- authentication ------------------------------------------------------------------
def test_token_is_fetched_lazily_and_instance_url_is_used(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    sandbox.insert("Account", {"Name": "Acme LLP"})
    names = [r["Name"] for r in client.query("SELECT Name FROM Account")]
    assert names == ["Acme LLP"]
    assert client.instance_url == sandbox.url
    assert client.token_requests == 1


def test_wrong_client_secret_is_an_auth_error_and_not_retried(sandbox: SalesforceSandbox) -> None:
    with SalesforceClient(sandbox.url, "q2c", "wrong", retry=FAST) as bad, pytest.raises(AuthError) as err:
        bad.get("Account", "001Hp0000000001IAA")
    assert err.value.code == "vendor.auth_failed"
    assert "client id and secret" in err.value.message
    assert sandbox.calls("POST /services/oauth2/token") == 1


def test_token_endpoint_wire_format(sandbox: SalesforceSandbox) -> None:
    form = {"grant_type": "client_credentials", "client_id": "q2c", "client_secret": "sandbox-secret"}
    with httpx.Client(base_url=sandbox.url) as http:
        ok = http.post("/services/oauth2/token", data=form).json()
        bad = http.post("/services/oauth2/token", data={**form, "client_secret": "x"})
    assert ok["token_type"] == "Bearer" and ok["instance_url"] == sandbox.url
    assert {"access_token", "issued_at", "signature"} <= ok.keys()
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_api_without_a_valid_token_answers_invalid_session(sandbox: SalesforceSandbox) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        response = http.get(
            f"{API}/query", params={"q": "SELECT Id FROM Account"}, headers={"Authorization": "Bearer nope"}
        )
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_expired_session_is_renewed_once_and_the_call_repeated(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    account = client.create("Account", {"Name": "Acme LLP"})
    assert sandbox.expire_tokens() == 1
    assert client.get("Account", account)["Name"] == "Acme LLP"
    assert client.token_requests == 2


def test_limit_info_header_counts_api_calls(sandbox: SalesforceSandbox) -> None:
    with raw(sandbox) as http:
        first = http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"})
        second = http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"})
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/5000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/5000"


# -- single records ------------------------------------------------------------------
def test_stage_drives_is_won_is_closed_and_probability(client: SalesforceClient) -> None:
    account = client.create("Account", {"Name": "Acme LLP", "Hub_Ext_Id__c": "HUB-1"})
    opp = client.create("Opportunity", opportunity(account, Amount=120000))
    before = client.get("Opportunity", opp)
    assert (before["IsWon"], before["IsClosed"], before["Probability"]) == (False, False, 10)
    client.update("Opportunity", opp, {"StageName": "Closed Won"})
    after = client.get("Opportunity", opp)
    assert (after["IsWon"], after["IsClosed"], after["Probability"]) == (True, True, 100)
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]
    assert after["attributes"]["type"] == "Opportunity"
    assert len(opp) == 18 and opp.startswith("006")


def test_upsert_creates_then_updates_the_same_record(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    first = client.upsert("Account", "Hub_Ext_Id__c", "HUB-1001", {"Name": "Acme LLP"})
    second = client.upsert("Account", "Hub_Ext_Id__c", "HUB-1001", {"Name": "Acme LLP (UK)"})
    assert first[1] is True and second == (first[0], False)
    assert [a["Name"] for a in sandbox.records("Account")] == ["Acme LLP (UK)"]


def test_upsert_matching_two_records_names_them(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    ids = sandbox.insert_many("Account", [{"Name": "Acme", "Hub_Ext_Id__c": "DUP"}] * 2)
    with pytest.raises(BusinessRuleError) as err:
        client.upsert("Account", "Hub_Ext_Id__c", "DUP", {"Name": "Acme"})
    assert err.value.details["vendor_code"] == "MULTIPLE_MATCHES"
    assert err.value.details["ids"] == ids
    assert all(i in err.value.message for i in ids)


@pytest.mark.parametrize(
    ("sobject", "fields", "code", "bad_fields"),
    [
        ("Account", {"Website": "acme.example"}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ("Account", {"Name": "A", "Colour": "red"}, "INVALID_FIELD", []),
        (
            "Opportunity",
            {"Name": "D", "StageName": "Won-ish", "CloseDate": "2025-01-31"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["StageName"],
        ),
        (
            "Opportunity",
            {"Name": "D", "StageName": "Closed Won", "CloseDate": "2025-01-31", "IsWon": True},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["IsWon"],
        ),
        (
            "Opportunity",
            {
                "Name": "D",
                "StageName": "Closed Won",
                "CloseDate": "2025-01-31",
                "AccountId": "001Hp0000009999IAA",
            },
            "INVALID_CROSS_REFERENCE_KEY",
            ["AccountId"],
        ),
        (
            "Opportunity",
            {"Name": "D", "StageName": "Closed Won", "CloseDate": "31/01/2025"},
            "JSON_PARSER_ERROR",
            [],
        ),
    ],
)
def test_rejected_writes_carry_salesforce_codes(
    sandbox: SalesforceSandbox,
    client: SalesforceClient,
    sobject: str,
    fields: dict[str, object],
    code: str,
    bad_fields: list[str],
) -> None:
    with pytest.raises(BusinessRuleError) as err:
        client.create(sobject, fields)
    assert err.value.details["vendor_code"] == code
    assert err.value.details["fields"] == bad_fields
    assert err.value.details["status"] == 400
    assert sandbox.records(sobject) == []


def test_custom_fields_are_accepted_and_unknown_ids_are_not_found(client: SalesforceClient) -> None:
    account = client.create("Account", {"Name": "Acme", "ERP_Customer_Id__c": "C-42"})
    assert client.get("Account", account)["ERP_Customer_Id__c"] == "C-42"
    with pytest.raises(BusinessRuleError) as err:
        client.get("Account", "001Hp0000009999IAA")
    assert err.value.details["vendor_code"] == "NOT_FOUND" and err.value.details["status"] == 404


def test_undeclared_custom_fields_are_refused_everywhere(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    # Only the fields of the hub's package exist: a typo is INVALID_FIELD, as in a real org.
    with pytest.raises(BusinessRuleError) as err:
        client.create("Account", {"Name": "Acme", "ERP_Customer_ID_c": "C-1"})
    assert err.value.details["vendor_code"] == "INVALID_FIELD"
    with pytest.raises(BusinessRuleError) as err:
        client.create("Account", {"Name": "Acme", "Erp_Custmer_Id__c": "C-1"})
    assert err.value.details["vendor_code"] == "INVALID_FIELD"
    assert sandbox.records("Account") == []
    account = client.create("Account", {"Name": "Acme"})
    with pytest.raises(BusinessRuleError) as err:
        client.update("Account", account, {"Favourite_Colour__c": "green"})
    assert err.value.details["vendor_code"] == "INVALID_FIELD"
    with pytest.raises(BusinessRuleError) as err:
        list(client.query("SELECT Id, Favourite_Colour__c FROM Account"))
    assert err.value.details["vendor_code"] == "INVALID_FIELD"
    described = raw(sandbox).get(f"{API}/sobjects/Opportunity/describe").json()
    message = next(f for f in described["fields"] if f["name"] == "Integration_Message__c")
    assert message["custom"] is True and message["length"] == 255


def test_text_longer_than_the_field_is_refused_not_truncated(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    account = client.create("Account", {"Name": "Acme"})
    opp = client.create("Opportunity", opportunity(account))
    with pytest.raises(BusinessRuleError) as err:
        client.update("Opportunity", opp, {"Integration_Message__c": "x" * 256})
    assert err.value.details["vendor_code"] == "STRING_TOO_LONG"
    assert sandbox.records("Opportunity")[0].get("Integration_Message__c") is None


def test_line_items_roll_up_and_deletes_cascade(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    account = client.create("Account", {"Name": "Acme"})
    opp = client.create("Opportunity", opportunity(account))
    client.create("OpportunityLineItem", {"OpportunityId": opp, "Quantity": 10, "UnitPrice": 150.5})
    client.create("OpportunityLineItem", {"OpportunityId": opp, "Quantity": 2, "TotalPrice": 1000})
    rolled = client.get("Opportunity", opp)
    assert rolled["HasOpportunityLineItem"] is True and rolled["Amount"] == 2505.0
    client.delete("Account", account)
    assert sandbox.records("Opportunity") == [] and sandbox.records("OpportunityLineItem") == []
    deleted = list(client.query("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True))
    assert [r["IsDeleted"] for r in deleted] == [True]


def test_contract_end_date_is_derived(client: SalesforceClient) -> None:
    account = client.create("Account", {"Name": "Acme"})
    contract = client.create(
        "Contract", {"AccountId": account, "StartDate": "2025-01-15", "ContractTerm": 12}
    )
    assert client.get("Contract", contract)["EndDate"] == "2026-01-14"
    assert client.get("Contract", contract)["Status"] == "Draft"


# -- queries -------------------------------------------------------------------------
def test_query_pages_through_next_records_url(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    sandbox.insert_many("Account", [{"Name": f"Client {i:05d}"} for i in range(4500)])
    rows = list(client.query("SELECT Id, Name FROM Account ORDER BY Name", batch_size=1000))
    assert [r["Name"] for r in rows] == [f"Client {i:05d}" for i in range(4500)]
    assert len({r["Id"] for r in rows}) == 4500
    assert sandbox.calls(f"GET {API}/query/") == 4  # pages 2..5 of 1000, 1000, 1000, 1000, 500
    assert rows[0]["attributes"]["type"] == "Account"


def test_query_page_wire_format(sandbox: SalesforceSandbox) -> None:
    sandbox.insert_many("Account", [{"Name": f"A{i}"} for i in range(2500)])
    with raw(sandbox) as http:
        page = http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"}).json()
        rest = http.get(page["nextRecordsUrl"]).json()
    assert (page["totalSize"], page["done"], len(page["records"])) == (2500, False, 2000)
    assert page["nextRecordsUrl"].startswith(f"{API}/query/01g") and page["nextRecordsUrl"].endswith("-2000")
    assert (rest["done"], len(rest["records"]), "nextRecordsUrl" in rest) == (True, 500, False)


def test_soql_filters_sorts_limits_and_reads_parents(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    acme = sandbox.insert("Account", {"Name": "Acme LLP", "BillingCountry": "GB"})
    globex = sandbox.insert("Account", {"Name": "Globex", "BillingCountry": "US"})
    sandbox.insert_many(
        "Opportunity",
        [
            opportunity(acme, Name="Acme A", StageName="Closed Won", CloseDate="2025-01-31", Amount=5000),
            opportunity(acme, Name="Acme B", StageName="Closed Lost", CloseDate="2025-02-28", Amount=7000),
            opportunity(globex, Name="Globex A", StageName="Closed Won", CloseDate="2025-03-31", Amount=9000),
            opportunity(globex, Name="Globex B", StageName="Prospecting", CloseDate="2024-12-31"),
        ],
    )
    soql = (
        "SELECT Name, Amount, Account.Name FROM Opportunity "
        "WHERE (IsWon = true OR StageName IN ('Closed Lost')) AND CloseDate >= 2025-01-01 "
        "AND Account.BillingCountry != null ORDER BY Amount DESC LIMIT 2"
    )
    rows = list(client.query(soql))
    assert [(r["Name"], r["Account"]["Name"]) for r in rows] == [
        ("Globex A", "Globex"),
        ("Acme B", "Acme LLP"),
    ]
    like = list(client.query("SELECT Name FROM Opportunity WHERE Name LIKE 'acme%' ORDER BY Name"))
    assert [r["Name"] for r in like] == ["Acme A", "Acme B"]
    count = list(client.query("SELECT COUNT() FROM Opportunity WHERE Amount = null"))
    assert count == []


def test_modstamp_poller_never_misses_nor_repeats(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    # 300 inserts land within a few milliseconds; their stamps must still be distinct.
    ids = sandbox.insert_many("Account", [{"Name": f"A{i}"} for i in range(300)])
    cursor, seen = "2000-01-01T00:00:00.000Z", []
    for _ in range(20):
        page = list(
            client.query(
                f"SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > {cursor} "
                "ORDER BY SystemModstamp LIMIT 50"
            )
        )
        if not page:
            break
        seen += [r["Id"] for r in page]
        cursor = page[-1]["SystemModstamp"][:23] + "Z"
    assert seen == ids


@pytest.mark.parametrize(
    ("soql", "code", "says"),
    [
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected"),
        ("SELECT Colour FROM Account", "INVALID_FIELD", "No such column 'Colour'"),
        ("SELECT Id FROM Opportunity WHERE CloseDate = '2025-01-31'", "MALFORMED_QUERY", "type date"),
        ("SELECT Id FROM Invoice", "INVALID_TYPE", "sObject type 'Invoice'"),
    ],
)
def test_bad_soql_is_refused_with_its_code(client: SalesforceClient, soql: str, code: str, says: str) -> None:
    with pytest.raises(BusinessRuleError) as err:
        list(client.query(soql))
    assert err.value.details["vendor_code"] == code
    assert says in err.value.message


# -- collections ---------------------------------------------------------------------
def test_upsert_many_chunks_by_200_and_reports_each_record(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    records: list[dict[str, object]] = [
        {"Hub_Ext_Id__c": f"HUB-{i}", "Name": f"Client {i}"} for i in range(450)
    ]
    records[300] = {"Hub_Ext_Id__c": "HUB-300"}  # no Name: this one must fail alone
    results = client.upsert_many("Account", "Hub_Ext_Id__c", records)
    assert len(results) == 450 and sandbox.calls(f"PATCH {API}/composite/sobjects/Account/") == 3
    failed = [r for r in results if not r.success]
    assert failed == [
        ItemResult(
            None,
            False,
            None,
            [
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [Name]",
                    "fields": ["Name"],
                },
            ],
        )
    ]
    assert all(r.created is True and r.id for r in results if r.success)
    again = client.upsert_many("Account", "Hub_Ext_Id__c", records[:10])
    assert [r.created for r in again] == [False] * 10
    assert len(sandbox.records("Account")) == 449


def test_all_or_none_writes_nothing_when_one_record_fails(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    records = [
        {"Hub_Ext_Id__c": "A", "Name": "A"},
        {"Hub_Ext_Id__c": "B"},
        {"Hub_Ext_Id__c": "C", "Name": "C"},
    ]
    results = client.upsert_many("Account", "Hub_Ext_Id__c", records, all_or_none=True)
    codes = [r.errors[0]["statusCode"] for r in results]
    assert codes == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "REQUIRED_FIELD_MISSING",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert sandbox.records("Account") == []
    with pytest.raises(ValueError, match="at most 200"):
        client.upsert_many("Account", "Hub_Ext_Id__c", records * 100, all_or_none=True)


def test_update_many_moves_stages(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    account = sandbox.insert("Account", {"Name": "Acme"})
    opps = sandbox.insert_many("Opportunity", [opportunity(account, Name=f"D{i}") for i in range(250)])
    updates = [{"Id": i, "StageName": "Closed Won"} for i in opps] + [{"Id": "006Hp0000009999IAA"}]
    results = client.update_many("Opportunity", updates)
    assert all(r.success for r in results[:250]) and results[250].id == "006Hp0000009999IAA"
    assert not results[250].success
    assert all(o["IsWon"] for o in sandbox.records("Opportunity"))


def test_collections_refuse_more_than_200_records(sandbox: SalesforceSandbox) -> None:
    body = {"records": [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(201)]}
    with raw(sandbox) as http:
        response = http.post(f"{API}/composite/sobjects", json=body)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sandbox.records("Account") == []


# -- faults --------------------------------------------------------------------------
def test_throttling_is_retried_to_success(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    sandbox.insert("Account", {"Name": "Acme"})
    sandbox.inject("throttle", path="/query", count=2, retry_after=0.01)
    assert [r["Name"] for r in client.query("SELECT Name FROM Account")] == ["Acme"]
    assert client.retries == 2


def test_server_errors_are_retried_for_reads(sandbox: SalesforceSandbox, client: SalesforceClient) -> None:
    account = sandbox.insert("Account", {"Name": "Acme"})
    sandbox.inject("error", path="/sobjects/Account/", method="GET", status=503, count=2)
    assert client.get("Account", account)["Name"] == "Acme"
    assert client.retries == 2


def test_request_limit_exceeded_is_transient(sandbox: SalesforceSandbox) -> None:
    sandbox.inject("reject", path="/query", status=403)
    with (
        make_client(sandbox, retry=RetryPolicy(max_attempts=2, initial_interval=0.01)) as c,
        pytest.raises(TransientError) as err,
    ):
        list(c.query("SELECT Id FROM Account"))
    assert err.value.details["vendor_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert sandbox.calls(f"GET {API}/query") == 2


def test_unreadable_error_body_is_a_payload_error(
    sandbox: SalesforceSandbox, client: SalesforceClient
) -> None:
    sandbox.inject("reject", path="/query", status=400, body={"unexpected": "shape"})
    with pytest.raises(VendorPayloadError) as err:
        list(client.query("SELECT Id FROM Account"))
    assert err.value.details["status"] == 400


def test_upsert_timing_out_after_commit_is_retried_without_duplicate(sandbox: SalesforceSandbox) -> None:
    sandbox.inject(
        "timeout_after_commit", path="/sobjects/Account/Hub_Ext_Id__c/", method="PATCH", seconds=1.0, count=1
    )
    with make_client(sandbox, timeout=0.5) as c:
        id_, created = c.upsert("Account", "Hub_Ext_Id__c", "HUB-7", {"Name": "Acme"})
        assert c.retries == 1
    assert created is False  # the first, timed-out attempt had already created it
    assert [a["Id"] for a in sandbox.records("Account")] == [id_]


def test_create_timing_out_is_in_doubt_and_not_resent(sandbox: SalesforceSandbox) -> None:
    sandbox.inject("timeout_after_commit", path="/sobjects/Account$", method="POST", seconds=1.0, count=1)
    with make_client(sandbox, timeout=0.5) as c, pytest.raises(TransientError) as err:
        c.create("Account", {"Name": "Acme"})
    assert isinstance(err.value, InDoubtError)
    assert sandbox.calls(f"POST {API}/sobjects/Account") == 1
    assert [a["Name"] for a in sandbox.records("Account")] == ["Acme"]


# -- persistence and seeding ---------------------------------------------------------
def test_restart_on_the_same_file_keeps_records_tokens_and_sequences(tmp_path: Path) -> None:
    path = tmp_path / "org.sqlite"
    first = SalesforceSandbox(path)
    first.start()
    port = first._server.port if first._server else 0
    client = make_client(first)
    try:
        account = client.create("Account", {"Name": "Acme", "Hub_Ext_Id__c": "HUB-1"})
        stamp = client.get("Account", account)["SystemModstamp"]
        first.stop()
        first.store.close()
        second = SalesforceSandbox(path)
        second.start(port=port)
        try:
            # Same token, same instance: no new authentication is needed.
            assert client.get("Account", account)["Name"] == "Acme"
            assert client.token_requests == 1
            other = client.create("Account", {"Name": "Globex"})
            assert other != account and client.get("Account", other)["SystemModstamp"] > stamp
            assert client.upsert("Account", "Hub_Ext_Id__c", "HUB-1", {"Name": "Acme LLP"}) == (
                account,
                False,
            )
        finally:
            second.stop()
            second.store.close()
    finally:
        client.close()


def test_python_helpers_validate_like_the_api() -> None:
    sb = SalesforceSandbox()
    ids = sb.insert_many("Account", [{"Name": f"Client {i}"} for i in range(10_000)])
    assert len(ids) == len(set(ids)) == 10_000 and len(sb.records("Account")) == 10_000
    opp = sb.insert("Opportunity", opportunity(ids[0], StageName="Closed Won"))
    assert sb.get("Opportunity", opp)["IsWon"] is True
    sb.update("Opportunity", opp, {"StageName": "Closed Lost"})
    assert sb.get("Opportunity", opp)["IsWon"] is False
    with pytest.raises(SalesforceError) as err:
        sb.insert("Opportunity", {"Name": "No stage"})
    assert err.value.code == "REQUIRED_FIELD_MISSING"
    with pytest.raises(KeyError):
        sb.get("Account", "001Hp0000099999IAA")
