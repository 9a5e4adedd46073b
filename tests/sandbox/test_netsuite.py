"""Contract tests: the NetSuite connector against the NetSuite sandbox over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials, TokenAuth
from quote2cash.errors import AuthError, BusinessRuleError, InDoubtError, TransientError, VendorPayloadError
from quote2cash.sandbox.netsuite import NetSuiteSandbox
from quote2cash.sandbox.netsuite.oauth import TbaVerifier

from .netsuite_fixtures import CREDS, FAST, authorization_header, client, sandbox

__all__ = ["client", "sandbox"]  # fixtures used by the tests below


def _seed(sandbox: NetSuiteSandbox) -> dict[str, str]:
    ids = {
        "usd": sandbox.add_currency("USD"),
        "gbp": sandbox.add_currency("GBP"),
        "us": sandbox.add_subsidiary("Acme Consulting Inc."),
        "uk": sandbox.add_subsidiary("Acme Consulting Ltd", currency="GBP", country="GB"),
        "dormant": sandbox.add_subsidiary("Old Holdings", inactive=True),
        "net30": sandbox.add_term("Net 30", 30),
        "delivery": sandbox.add_department("Delivery"),
        "consulting": sandbox.add_classification("Consulting"),
        "london": sandbox.add_location("London"),
    }
    ids["jan"] = sandbox.add_period(2026, 1, closed=True)
    ids["feb"] = sandbox.add_period(2026, 2)
    ids["mar"] = sandbox.add_period(2026, 3)
    return ids


@pytest.fixture
def ids(sandbox: NetSuiteSandbox) -> dict[str, str]:
    """Master data: currencies, subsidiaries, terms, dimensions, Jan 2026 closed, Feb-Mar open."""
    return _seed(sandbox)


def raw(sandbox: NetSuiteSandbox, method: str, path: str, **kw: Any) -> httpx.Response:
    """A correctly signed request whose response is returned as is."""
    request = httpx.Request(method, sandbox.url + path, **kw)
    request.headers["Authorization"] = authorization_header(
        method, str(request.url), CREDS, nonce=secrets.token_hex(8), timestamp=int(time.time())
    )
    with httpx.Client() as http:
        return http.send(request)


UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def pct(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then every octet but an unreserved character as ``%XX`` (upper case)."""
    return "".join(c if c in UNRESERVED else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def rfc5849_signature(
    method: str, base_uri: str, params: list[tuple[str, str]], consumer_secret: str, token_secret: str
) -> tuple[str, str]:
    """(base string, HMAC-SHA256 signature) computed from RFC 5849 §3.4, independently of oauthlib."""
    # §3.4.1.3.2: encode names and values, sort by name then value, join with "=" and "&".
    normalized = "&".join(f"{k}={v}" for k, v in sorted((pct(k), pct(v)) for k, v in params))
    # §3.4.1.1: method, base string URI and normalized parameters, each encoded, joined by "&".
    base_string = f"{method}&{pct(base_uri)}&{pct(normalized)}"
    # §3.4.2: key = encoded client secret "&" encoded token secret; base64 of the digest.
    key = f"{pct(consumer_secret)}&{pct(token_secret)}".encode()
    digest = hmac.new(key, base_string.encode(), hashlib.sha256).digest()
    return base_string, base64.b64encode(digest).decode("ascii")


def oauth_fields(header: str) -> dict[str, str]:
    """The decoded ``k="v"`` pairs of an ``OAuth ...`` Authorization header (§3.5.1)."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "OAuth"
    fields: dict[str, str] = {}
    for item in rest.split(", "):
        key, _, quoted = item.partition("=")
        assert quoted.startswith('"') and quoted.endswith('"'), item
        fields[key] = unquote(quoted[1:-1])
    return fields


def customer(ids: dict[str, str], name: str = "Globex LLP", **extra: Any) -> dict[str, Any]:
    return {"companyName": name, "subsidiary": {"id": ids["us"]}, **extra}


def business_error(excinfo: pytest.ExceptionInfo[BusinessRuleError]) -> tuple[str, str, Any]:
    exc = excinfo.value
    return f"netsuite.{exc.details.get('vendor_code')}", exc.message, exc.details.get("path")


# -- OAuth 1.0a: signer and verifier agree ---------------------------------------------------
class TestTokenBasedAuth:
    URL = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer?limit=5&offset=0"

    def verifier(self, now: float) -> TbaVerifier:
        return TbaVerifier(
            realm="1234567_SB1",
            consumer_key="q2c-ck",
            consumer_secret="q2c-cs",
            token_id="q2c-tid",
            token_secret="q2c-ts",
            clock=lambda: now,
        )

    def test_signature_from_the_connector_is_accepted_once(self) -> None:
        header = authorization_header("GET", self.URL, CREDS, nonce="abc123", timestamp=1_700_000_000)
        verifier = self.verifier(1_700_000_100)
        assert 'realm="1234567_SB1"' in header and 'oauth_signature_method="HMAC-SHA256"' in header
        assert verifier.verify("GET", self.URL, header) is None
        assert verifier.verify("GET", self.URL, header) == "nonce already used"

    @pytest.mark.parametrize(
        ("method", "url", "why"),
        [
            ("POST", URL, "signature mismatch"),
            ("GET", URL.replace("limit=5", "limit=6"), "signature mismatch"),
            ("GET", URL.replace("/customer", "/job"), "signature mismatch"),
        ],
    )
    def test_tampered_request_is_rejected(self, method: str, url: str, why: str) -> None:
        header = authorization_header("GET", self.URL, CREDS, nonce="n1", timestamp=1_700_000_000)
        assert self.verifier(1_700_000_000).verify(method, url, header) == why

    def test_wrong_secret_and_stale_timestamp_are_rejected(self) -> None:
        other = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "leaked-but-wrong")
        wrong = authorization_header("GET", self.URL, other, nonce="n2", timestamp=1_700_000_000)
        assert self.verifier(1_700_000_000).verify("GET", self.URL, wrong) == "signature mismatch"
        stale = authorization_header("GET", self.URL, CREDS, nonce="n3", timestamp=1_700_000_000)
        assert (
            self.verifier(1_700_000_301).verify("GET", self.URL, stale)
            == "timestamp outside the allowed window"
        )

    def test_signature_matches_an_rfc5849_computation_step_by_step(self) -> None:
        # Secrets, key, token and query with characters that must be percent-encoded.
        creds = TbaCredentials("1234567_SB1", "ck 1", "c/s+ecret=", "tid~2", "t&s%3")
        auth = TokenAuth(creds, nonce=lambda: "fjaLirsIcCGVZWzBX0pg", timestamp=lambda: 1_700_000_000)
        request = httpx.Request(
            "POST",
            "HTTPS://1234567-SB1.SuiteTalk.api.netsuite.com:443/services/rest/query/v1/suiteql",
            params={"limit": 1000, "offset": 0, "note": "a b&c=d/é"},
            json={"q": "SELECT id FROM transaction WHERE type = 'CustInvc'"},
            headers={"Prefer": "transient"},
        )
        auth.sign(request)
        header = request.headers["Authorization"]
        oauth = {
            "oauth_consumer_key": "ck 1",
            "oauth_nonce": "fjaLirsIcCGVZWzBX0pg",
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": "1700000000",
            "oauth_token": "tid~2",
            "oauth_version": "1.0",
        }
        # §3.4.1.2: scheme and host lower case, the default port dropped, no query.
        base_uri = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/query/v1/suiteql"
        # §3.4.1.3.1: the query and the oauth_* parameters; not realm, not the JSON body.
        params = [*oauth.items(), ("limit", "1000"), ("offset", "0"), ("note", "a b&c=d/é")]
        base_string, expected = rfc5849_signature("POST", base_uri, params, "c/s+ecret=", "t&s%3")
        assert base_string == (
            "POST&https%3A%2F%2F1234567-sb1.suitetalk.api.netsuite.com%2Fservices%2Frest%2Fquery%2Fv1"
            "%2Fsuiteql&limit%3D1000%26note%3Da%2520b%2526c%253Dd%252F%25C3%25A9%26oauth_consumer_key"
            "%3Dck%25201%26oauth_nonce%3DfjaLirsIcCGVZWzBX0pg%26oauth_signature_method%3DHMAC-SHA256"
            "%26oauth_timestamp%3D1700000000%26oauth_token%3Dtid~2%26oauth_version%3D1.0%26offset%3D0"
        )
        fields = oauth_fields(header)
        assert fields.pop("oauth_signature") == expected
        # Nothing else is sent: in particular no oauth_body_hash for the JSON body.
        assert fields == {"realm": "1234567_SB1", **oauth}
        assert header.startswith('OAuth realm="1234567_SB1", ')

    def test_only_a_form_body_is_part_of_the_signature(self) -> None:
        def signature(**kw: Any) -> str:
            request = httpx.Request("POST", self.URL, **kw)
            TokenAuth(CREDS, nonce=lambda: "n0nce1", timestamp=lambda: 1_700_000_000).sign(request)
            return oauth_fields(request.headers["Authorization"])["oauth_signature"]

        bare = signature()
        assert signature(json={"q": "SELECT id FROM customer"}) == bare
        # A JSON body that would parse as a form is still not signed (and not refused).
        assert signature(content=b"a=b", headers={"Content-Type": "application/json"}) == bare
        assert signature(content=b"null", headers={"Content-Type": "application/json"}) == bare
        oauth = [
            ("oauth_consumer_key", "q2c-ck"),
            ("oauth_nonce", "n0nce1"),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_timestamp", "1700000000"),
            ("oauth_token", "q2c-tid"),
            ("oauth_version", "1.0"),
        ]
        base_uri = self.URL.partition("?")[0]
        query = [("limit", "5"), ("offset", "0")]
        assert bare == rfc5849_signature("POST", base_uri, [*oauth, *query], "q2c-cs", "q2c-ts")[1]
        form = [*oauth, *query, ("memo", "a b")]
        assert (
            signature(data={"memo": "a b"})
            == rfc5849_signature("POST", base_uri, form, "q2c-cs", "q2c-ts")[1]
        )

    @pytest.mark.parametrize("account", ["1234567_SB1", "1234567_sb1", "1234567-sb1"])
    def test_realm_is_the_account_id_upper_case_with_underscore(self, account: str) -> None:
        creds = TbaCredentials(account, "q2c-ck", "q2c-cs", "q2c-tid", "q2c-ts")
        header = authorization_header("GET", self.URL, creds, nonce="n", timestamp=1_700_000_000)
        assert oauth_fields(header)["realm"] == "1234567_SB1"
        assert self.verifier(1_700_000_000).verify("GET", self.URL, header) is None

    def test_sandbox_refuses_a_wrong_token_secret_with_netsuites_error_body(
        self, sandbox: NetSuiteSandbox
    ) -> None:
        bad = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "not-the-token-secret")
        with httpx.Client(base_url=sandbox.url, auth=TokenAuth(bad)) as http:
            response = http.get("/services/rest/record/v1/customer", params={"limit": 5, "offset": 0})
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("application/vnd.oracle.resource+json")
        assert response.json() == {
            "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
            "title": "Unauthorized",
            "status": 401,
            "o:errorDetails": [
                {
                    "detail": "Invalid login attempt. For more details, see the Login Audit Trail in the "
                    "NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
                    "o:errorCode": "INVALID_LOGIN",
                }
            ],
        }
        assert sandbox.rejections == {"auth: signature mismatch": 1}

    def test_get_with_paging_parameters_is_accepted_and_its_query_is_signed(
        self, sandbox: NetSuiteSandbox
    ) -> None:
        ids = [sandbox.add_department(f"Cost centre {n}") for n in range(5)]
        path = "/services/rest/record/v1/department"
        with httpx.Client(base_url=sandbox.url, auth=TokenAuth(CREDS)) as http:
            response = http.get(path, params={"limit": 2, "offset": 2})
            assert response.status_code == 200, response.text
            page = response.json()
            assert [item["id"] for item in page["items"]] == ids[2:4]
            assert page["offset"] == 2 and page["hasMore"] is True
        # The same header on another page (sent unsigned): the signature covers limit and offset.
        header = response.request.headers["Authorization"]
        replayed = httpx.get(
            sandbox.url + path, params={"limit": 2, "offset": 4}, headers={"Authorization": header}
        )
        assert replayed.status_code == 401
        assert sandbox.rejections == {"auth: signature mismatch": 1}

    def test_credentials_repr_hides_secrets(self) -> None:
        text = repr(CREDS)
        assert "q2c-cs" not in text and "q2c-ts" not in text
        assert "q2c-ck" in text and "1234567_SB1" in text

    def test_bad_credentials_raise_auth_error_without_retrying(self, sandbox: NetSuiteSandbox) -> None:
        bad = TbaCredentials("1234567_SB1", "q2c-ck", "q2c-cs", "q2c-tid", "wrong")
        with NetSuiteClient(sandbox.url, bad, retry=FAST) as c, pytest.raises(AuthError) as excinfo:
            c.get("customer", "1001")
        assert excinfo.value.code == "vendor.auth_failed"
        assert c.calls == 1

    def test_unsigned_and_replayed_requests_get_invalid_login(self, sandbox: NetSuiteSandbox) -> None:
        unsigned = httpx.get(sandbox.url + "/services/rest/record/v1/customer")
        assert unsigned.status_code == 401
        assert unsigned.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
        url = sandbox.url + "/services/rest/record/v1/customer?limit=5"
        header = authorization_header("GET", url, CREDS, nonce="once", timestamp=int(time.time()))
        assert httpx.get(url, headers={"Authorization": header}).status_code == 200
        assert httpx.get(url, headers={"Authorization": header}).status_code == 401
        stale = authorization_header("GET", url, CREDS, nonce="old", timestamp=int(time.time()) - 1000)
        assert httpx.get(url, headers={"Authorization": stale}).status_code == 401


# -- records -----------------------------------------------------------------------------------
class TestRecords:
    def test_only_the_custom_fields_of_the_hubs_bundle_exist(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        body = {**customer(ids), "custentity_q2c_billing_modle": "fixed_fee"}  # a typo
        with pytest.raises(BusinessRuleError) as err:
            client.create("customer", body)
        assert err.value.details["vendor_code"] == "INVALID_CONTENT"
        assert "custentity_q2c_billing_modle does not exist" in err.value.message
        assert sandbox.records("customer") == []
        parent = client.create("customer", customer(ids))
        job = client.create(
            "job",
            {"companyName": "Rollout", "parent": {"id": parent}, "custentity_q2c_billing_model": "milestone"},
        )
        assert client.get("job", job)["custentity_q2c_billing_model"] == "milestone"

    def test_create_returns_the_id_from_location_and_get_expands_references(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        id_ = client.create("customer", customer(ids, terms={"id": ids["net30"]}, email="ap@globex.test"))
        record = client.get("customer", id_)
        assert record["id"] == id_
        assert record["companyName"] == "Globex LLP"
        assert record["subsidiary"]["id"] == ids["us"]
        assert record["subsidiary"]["refName"] == "Acme Consulting Inc."
        assert record["terms"]["refName"] == "Net 30"
        # The customer's currency defaults to the subsidiary's base currency.
        assert record["currency"]["refName"] == "USD"
        assert record["links"][0]["href"].endswith(f"/services/rest/record/v1/customer/{id_}")
        assert [r["id"] for r in sandbox.records("customer")] == [id_]

    def test_raw_create_answers_204_with_location_and_no_body(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        response = raw(sandbox, "POST", "/services/rest/record/v1/customer", json=customer(ids))
        assert response.status_code == 204
        assert response.content == b""
        assert response.headers["Location"].startswith(sandbox.url + "/services/rest/record/v1/customer/")

    def test_upsert_by_external_id_is_idempotent(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        first = client.upsert("customer", "HUB-1001", customer(ids, "Initech"))
        second = client.upsert("customer", "HUB-1001", customer(ids, "Initech Ltd"))
        assert first == second
        assert len(sandbox.records("customer")) == 1
        found = client.get_by_external_id("customer", "HUB-1001")
        assert found is not None
        assert found["companyName"] == "Initech Ltd"
        assert found["externalId"] == "HUB-1001"
        assert client.get_by_external_id("customer", "HUB-404") is None

    def test_external_ids_with_reserved_characters_round_trip(
        self, client: NetSuiteClient, ids: dict[str, str]
    ) -> None:
        id_ = client.upsert("customer", "sf:001/Acme & Co", customer(ids, "Acme & Co"))
        found = client.get_by_external_id("customer", "sf:001/Acme & Co")
        assert found is not None and found["id"] == id_

    def test_project_references_its_customer_by_external_id_and_inherits_the_subsidiary(
        self, client: NetSuiteClient, ids: dict[str, str]
    ) -> None:
        parent = client.upsert("customer", "HUB-7", customer(ids, "Umbrella", subsidiary={"id": ids["uk"]}))
        job = client.upsert(
            "job", "PRJ-7", {"companyName": "Umbrella ERP rollout", "parent": {"externalId": "HUB-7"}}
        )
        record = client.get("job", job)
        assert record["parent"] == {
            "links": record["parent"]["links"],
            "id": parent,
            "refName": "Umbrella",
        }
        assert record["subsidiary"]["refName"] == "Acme Consulting Ltd"

    def test_update_and_delete(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        id_ = client.create("customer", customer(ids))
        client.update(
            "customer", id_, {"email": "billing@globex.test", "department": {"id": ids["delivery"]}}
        )
        record = client.get("customer", id_)
        assert record["email"] == "billing@globex.test"
        assert record["department"]["refName"] == "Delivery"
        client.delete("customer", id_)
        assert sandbox.records("customer") == []
        with pytest.raises(BusinessRuleError) as excinfo:
            client.get("customer", id_)
        assert excinfo.value.details["vendor_code"] == "NONEXISTENT_ID"
        assert excinfo.value.details["status"] == 404

    def test_patch_of_a_sublist_replaces_it_so_a_retry_cannot_double_lines(
        self, client: NetSuiteClient, ids: dict[str, str]
    ) -> None:
        lines = {"items": [{"account": {"id": "10"}, "debit": 50}, {"account": {"id": "20"}, "credit": 50}]}
        je = client.create(
            "journalentry", {"tranDate": "2026-02-10", "subsidiary": {"id": ids["us"]}, "line": lines}
        )
        client.update("journalentry", je, {"line": lines, "memo": "accrual"})
        client.update("journalentry", je, {"line": lines})
        record = client.get("journalentry", je)
        assert record["memo"] == "accrual"
        assert record["line"]["totalResults"] == 2
        assert record["postingPeriod"]["refName"] == "Feb 2026"

    def test_list_ids_pages_through_every_record(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox
    ) -> None:
        for n in range(2050):
            sandbox.add_department(f"Cost centre {n}")
        listed = list(client.list_ids("department"))
        assert len(listed) == 2051  # plus "Delivery" from the seed
        assert listed == sorted(listed, key=int)
        assert len(set(listed)) == len(listed)
        assert sandbox.calls("GET /services/rest/record/v1/department") == 3


# -- business validation -----------------------------------------------------------------------
class TestBusinessRules:
    def test_inactive_subsidiary_is_an_invalid_value(
        self, client: NetSuiteClient, ids: dict[str, str]
    ) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create("customer", customer(ids, subsidiary={"id": ids["dormant"]}))
        code, message, path = business_error(excinfo)
        assert code == "netsuite.INVALID_VALUE"
        assert path == "subsidiary"
        assert message.startswith("Invalid value for the resource or sub-resource field 'subsidiary'.")
        assert "Old Holdings" in message

    @pytest.mark.parametrize(
        ("type_", "body", "path"),
        [
            ("customer", {"companyName": "X", "subsidiary": {"id": "999"}}, "subsidiary"),
            (
                "customer",
                {"companyName": "X", "subsidiary": {"id": "1"}, "currency": {"id": "999"}},
                "currency",
            ),
            (
                "customer",
                {"companyName": "X", "subsidiary": {"id": "1"}, "terms": {"externalId": "NET-99"}},
                "terms",
            ),
            ("customer", {"companyName": "X", "subsidiary": {"id": "1"}, "class": {"id": "999"}}, "class"),
            (
                "customer",
                {"companyName": "X", "subsidiary": {"id": "1"}, "location": {"id": "999"}},
                "location",
            ),
            ("job", {"companyName": "P", "parent": {"externalId": "HUB-MISSING"}}, "parent"),
        ],
    )
    def test_unknown_references_are_rejected(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, type_: str, body: dict[str, Any], path: str
    ) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create(type_, body)
        assert business_error(excinfo)[0::2] == ("netsuite.INVALID_VALUE", path)
        assert sandbox.records(type_) == []

    @pytest.mark.parametrize(
        ("type_", "body", "message"),
        [
            ("customer", {"email": "a@b.test"}, "Please enter value(s) for: Company Name, Subsidiary"),
            ("job", {"companyName": "Project"}, "Please enter value(s) for: Customer"),
            ("timebill", {"hours": 2}, "Please enter value(s) for: Date"),
        ],
    )
    def test_missing_mandatory_fields(
        self, client: NetSuiteClient, type_: str, body: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create(type_, body)
        assert business_error(excinfo)[:2] == ("netsuite.USER_ERROR", message)

    def test_closed_period_rejects_time_until_it_is_reopened(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        entry = {"tranDate": "2026-01-15", "hours": 7.5, "department": {"id": ids["delivery"]}}
        with pytest.raises(BusinessRuleError) as excinfo:
            client.upsert("timebill", "TE-1", entry)
        assert business_error(excinfo) == (
            "netsuite.INVALID_FLD_VALUE",
            "The transaction date 2026-01-15 falls in a closed accounting period (Jan 2026).",
            "tranDate",
        )
        sandbox.reopen_period(2026, 1)
        id_ = client.upsert("timebill", "TE-1", entry)
        assert client.get("timebill", id_)["postingPeriod"]["refName"] == "Jan 2026"
        # Once the period closes again the posted entry can no longer be changed.
        sandbox.close_period(2026, 1)
        with pytest.raises(BusinessRuleError) as excinfo:
            client.update("timebill", id_, {"hours": 8})
        assert excinfo.value.details["vendor_code"] == "INVALID_FLD_VALUE"

    def test_date_outside_every_period_and_bad_date_are_rejected(self, client: NetSuiteClient) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create("invoice", {"tranDate": "2027-06-01"})
        assert "does not fall in any accounting period" in excinfo.value.message
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create("invoice", {"trandate": "01/02/2026"})
        assert business_error(excinfo)[0::2] == ("netsuite.INVALID_FLD_VALUE", "tranDate")

    def test_unbalanced_journal_is_rejected(self, client: NetSuiteClient, sandbox: NetSuiteSandbox) -> None:
        lines = {
            "items": [
                {"account": {"id": "10"}, "debit": "100.00"},
                {"account": {"id": "20"}, "credit": 99.99},
            ]
        }
        with pytest.raises(BusinessRuleError) as excinfo:
            client.create("journalentry", {"tranDate": "2026-02-28", "line": lines})
        assert excinfo.value.details["vendor_code"] == "USER_ERROR"
        assert "not in balance" in excinfo.value.message
        assert sandbox.records("journalentry") == []

    def test_error_body_has_the_netsuite_shape(self, sandbox: NetSuiteSandbox) -> None:
        response = raw(
            sandbox, "POST", "/services/rest/record/v1/customer", json={"companyName": "No subsidiary"}
        )
        assert response.status_code == 400
        body = response.json()
        assert body["type"] == "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1"
        assert body["title"] == "Bad Request" and body["status"] == 400
        assert body["o:errorDetails"] == [
            {
                "detail": "Please enter value(s) for: Subsidiary",
                "o:errorCode": "USER_ERROR",
                "o:errorPath": "subsidiary",
            }
        ]

    def test_unknown_type_is_404_and_malformed_json_is_400(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox
    ) -> None:
        missing = raw(sandbox, "GET", "/services/rest/record/v1/spaceship/1")
        assert missing.status_code == 404
        assert missing.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_RCRD_TYPE"
        with pytest.raises(BusinessRuleError) as excinfo:
            client.request(
                "POST",
                "/services/rest/record/v1/customer",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            )
        assert excinfo.value.details["vendor_code"] == "INVALID_CONTENT"
        assert excinfo.value.details["status"] == 400


# -- SuiteQL -------------------------------------------------------------------------------------
class TestSuiteQL:
    @pytest.fixture
    def time_entries(self, client: NetSuiteClient, ids: dict[str, str]) -> dict[str, str]:
        a = client.upsert(
            "job",
            "PRJ-A",
            {"companyName": "Alpha", "parent": {"id": client.create("customer", customer(ids))}},
        )
        b = client.upsert(
            "job",
            "PRJ-B",
            {"companyName": "Beta", "parent": {"id": client.create("customer", customer(ids, "Hooli"))}},
        )
        for n, (job, day, hours) in enumerate(
            [
                (a, "2026-02-02", 7.5),
                (a, "2026-02-03", 8),
                (a, "2026-03-02", 1.25),
                (b, "2026-02-02", 4),
                (b, "2026-03-09", 6),
            ]
        ):
            client.upsert("timebill", f"TE-{n}", {"tranDate": day, "hours": hours, "customer": {"id": job}})
        return {"a": a, "b": b}

    def test_where_order_and_paging(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, time_entries: dict[str, str]
    ) -> None:
        rows = list(
            client.suiteql(
                f"SELECT externalid, hours, trandate FROM timebill WHERE customer = '{time_entries['a']}' "
                "AND trandate >= TO_DATE('2026-02-03', 'YYYY-MM-DD') ORDER BY trandate DESC",
                page_size=1,
            )
        )
        assert rows == [
            {"externalid": "TE-2", "hours": "1.25", "trandate": "2026-03-02"},
            {"externalid": "TE-1", "hours": "8", "trandate": "2026-02-03"},
        ]
        assert sandbox.calls("POST /services/rest/query/v1/suiteql") == 2

    def test_aggregates_for_reconciliation(
        self, client: NetSuiteClient, time_entries: dict[str, str]
    ) -> None:
        rows = list(
            client.suiteql(
                "SELECT customer, postingperiod, COUNT(*) AS entries, SUM(hours) AS hours FROM timebill "
                "GROUP BY customer, postingperiod ORDER BY customer, postingperiod"
            )
        )
        a, b = time_entries["a"], time_entries["b"]
        assert [(r["customer"], r["entries"], r["hours"]) for r in rows] == [
            (a, "2", "15.5"),
            (a, "1", "1.25"),
            (b, "1", "4"),
            (b, "1", "6"),
        ]
        assert list(
            client.suiteql("SELECT COUNT(*) FROM timebill WHERE hours IN (4, 6) OR externalid LIKE 'TE-0'")
        ) == [{"expr1": "3"}]

    def test_transaction_table_and_checkbox_values(self, client: NetSuiteClient, ids: dict[str, str]) -> None:
        inv = client.create(
            "invoice", {"tranDate": "2026-02-27", "entity": {"id": client.create("customer", customer(ids))}}
        )
        assert list(client.suiteql("SELECT id, tranid FROM transaction WHERE type = 'CustInvc'")) == [
            {"id": inv, "tranid": f"INV{inv}"}
        ]
        names = [
            r["name"]
            for r in client.suiteql("SELECT name FROM subsidiary WHERE isinactive = 'F' ORDER BY name")
        ]
        assert names == ["Acme Consulting Inc.", "Acme Consulting Ltd"]

    def test_bad_query_and_missing_prefer_header(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox
    ) -> None:
        with pytest.raises(BusinessRuleError) as excinfo:
            list(client.suiteql("SELECT FROM WHERE"))
        assert excinfo.value.details["vendor_code"] == "INVALID_PARAMETER"
        with pytest.raises(BusinessRuleError) as excinfo:
            list(client.suiteql("SELECT id FROM spaceship"))
        assert "spaceship" in excinfo.value.message
        response = raw(
            sandbox, "POST", "/services/rest/query/v1/suiteql", json={"q": "SELECT id FROM customer"}
        )
        assert response.status_code == 400
        assert response.json()["o:errorDetails"][0]["o:errorHeader"] == "Prefer"


# -- faults, retries and the concurrency limit ---------------------------------------------------
class TestFaults:
    def test_throttle_with_retry_after_is_retried_to_success(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.inject("throttle", path="/record/v1/customer", count=2, retry_after=0.01)
        id_ = client.upsert("customer", "HUB-T", customer(ids))
        assert client.retries == 2
        assert [r["id"] for r in sandbox.records("customer")] == [id_]

    def test_server_error_is_retried(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        id_ = client.upsert("customer", "HUB-5", customer(ids))
        sandbox.inject("error", method="GET", status=503, count=1)
        assert client.get("customer", id_)["id"] == id_
        assert client.retries == 1

    def test_injected_errors_use_the_netsuite_format(
        self, client: NetSuiteClient, sandbox: NetSuiteSandbox
    ) -> None:
        sandbox.inject("reject", status=403, count=1)
        with pytest.raises(BusinessRuleError) as excinfo:
            list(client.list_ids("customer"))
        assert excinfo.value.details["vendor_code"] == "INSUFFICIENT_PERMISSION"

    def test_upsert_timing_out_after_commit_is_retried_without_a_duplicate(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.inject("timeout_after_commit", method="PUT", seconds=1.0, count=1)
        with NetSuiteClient(sandbox.url, CREDS, retry=FAST, timeout=0.5) as c:
            id_ = c.upsert("customer", "HUB-9", customer(ids))
            assert c.retries == 1
        assert [r["id"] for r in sandbox.records("customer")] == [id_]

    def test_create_timing_out_is_in_doubt_and_not_resent(
        self, sandbox: NetSuiteSandbox, ids: dict[str, str]
    ) -> None:
        sandbox.inject("timeout_after_commit", method="POST", seconds=1.0, count=1)
        with NetSuiteClient(sandbox.url, CREDS, retry=FAST, timeout=0.5) as c:
            with pytest.raises(TransientError) as excinfo:
                c.create("customer", customer(ids, externalId="HUB-DOUBT"))
            assert isinstance(excinfo.value, InDoubtError)
            assert c.calls == 1
            # The caller's recovery: look the record up before creating it again.
            assert c.get_by_external_id("customer", "HUB-DOUBT") is not None
        assert len(sandbox.records("customer")) == 1

    def test_concurrency_limit_answers_429_and_retries_get_through(self, tmp_path: Path) -> None:
        sb = NetSuiteSandbox(concurrency_limit=3)
        sb.inject("latency", method="GET", seconds=1.0)  # long enough to overlap under load
        sb.start()
        outcomes: list[str] = []
        lock = threading.Lock()

        def fetch(retry: RetryPolicy) -> None:
            with NetSuiteClient(sb.url, CREDS, retry=retry, timeout=5.0) as c:
                try:
                    list(c.list_ids("customer"))
                    result = "ok"
                except TransientError as exc:
                    result = exc.code
            with lock:
                outcomes.append(result)

        def burst(retry: RetryPolicy) -> None:
            threads = [threading.Thread(target=fetch, args=(retry,)) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        try:
            burst(RetryPolicy(max_attempts=1))
            assert "vendor.throttled" in outcomes
            assert outcomes.count("ok") <= 3
            assert sb.rejections["concurrency"] >= 3
            assert sb.peak_in_flight == 3
            body = raw_over_limit(sb)
            assert body["status"] == 429
            assert body["o:errorDetails"][0]["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
            outcomes.clear()
            burst(RetryPolicy(max_attempts=20, initial_interval=0.05, max_interval=0.2))
            assert outcomes == ["ok"] * 6
        finally:
            sb.stop()


def raw_over_limit(sb: NetSuiteSandbox) -> dict[str, Any]:
    """The body of a request sent while the limit is held by slow requests."""
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: results.append(raw(sb, "GET", "/services/rest/record/v1/customer")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throttled = [r for r in results if r.status_code == 429]
    assert throttled, [r.status_code for r in results]
    body: dict[str, Any] = throttled[0].json()
    return body


# -- persistence -----------------------------------------------------------------------------------
def test_records_survive_a_restart_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "ns.db"
    first = NetSuiteSandbox(path)
    ids = _seed(first)
    first.start()
    with NetSuiteClient(first.url, CREDS, retry=FAST) as c:
        kept = c.upsert("customer", "HUB-KEEP", customer(ids, "Persistent Partners"))
    first.stop()
    first.store.close()

    second = NetSuiteSandbox(path)
    second.start()
    try:
        with NetSuiteClient(second.url, CREDS, retry=FAST) as c:
            found = c.get_by_external_id("customer", "HUB-KEEP")
            assert found is not None and found["id"] == kept
            assert found["subsidiary"]["refName"] == "Acme Consulting Inc."
            fresh = c.create("customer", customer(ids, "Newcomer"))
            assert int(fresh) > int(kept)
            with pytest.raises(BusinessRuleError) as excinfo:
                c.create("timebill", {"tranDate": "2026-01-05", "hours": 1})
            assert excinfo.value.details["vendor_code"] == "INVALID_FLD_VALUE"  # January is still closed
    finally:
        second.stop()
        second.store.close()


# -- what the connector does with answers it cannot read --------------------------------------
def test_missing_location_and_unreadable_errors_are_payload_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(204)
        return httpx.Response(400, text="<html>proxy error</html>")

    transport = httpx.MockTransport(handler)
    with NetSuiteClient("https://1234567-sb1.suitetalk.api.netsuite.com", CREDS, transport=transport) as c:
        with pytest.raises(VendorPayloadError) as excinfo:
            c.create("customer", {"companyName": "X"})
        assert "Location" in excinfo.value.message
        with pytest.raises(VendorPayloadError):
            c.get("customer", "1")
