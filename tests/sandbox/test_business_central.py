"""The Business Central sandbox over loopback HTTP: Entra ID tokens (msal), OData, ETags, ``$batch``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal  # type: ignore[import-untyped]
import pytest

from quote2cash.sandbox.business_central import BusinessCentralSandbox

SCOPE = "https://api.businesscentral.dynamics.com/.default"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[BusinessCentralSandbox]:
    """The sandbox on loopback, persisted in the test's folder, three entities a page."""
    sb = BusinessCentralSandbox(tmp_path / "bc.db", max_page=3, tls_folder=tmp_path / "tls")
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


@pytest.fixture
def company(sandbox: BusinessCentralSandbox) -> str:
    """A company with a currency, a G/L account pair, a department and an open and a closed month."""
    c = sandbox.add_company("CRONUS US")
    sandbox.add_currency(c, "EUR")
    sandbox.add_account(c, "40100", "Consulting revenue")
    sandbox.add_account(c, "13100", "Unbilled receivables", category="Assets")
    sandbox.add_dimension(c, "DEPARTMENT", "Department")
    sandbox.add_dimension_value(c, "DEPARTMENT", "TECH", "Technology")
    sandbox.add_period(c, 2026, 1, closed=True)
    sandbox.add_period(c, 2026, 2)
    return c


def app(sandbox: BusinessCentralSandbox, secret: str | None = None) -> Any:
    """An unmodified msal confidential client pointed at the sandbox's identity endpoint."""
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=secret or sandbox.client_secret,
        authority=sandbox.authority,
        instance_discovery=False,
        validate_authority=False,
        verify=sandbox.ca_file,
    )


@pytest.fixture
def token(sandbox: BusinessCentralSandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    """An access token msal obtained from the sandbox."""
    # requests lets these variables override a session's ``verify`` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    result = app(sandbox).acquire_token_for_client([SCOPE])
    assert "access_token" in result, result
    return str(result["access_token"])


def call(sandbox: BusinessCentralSandbox, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """One API request with the bearer token; ``path`` is relative to ``api/v2.0/``."""
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    url = path if path.startswith("http") else f"{sandbox.api_url}/{path}"
    return httpx.request(method, url, headers=headers, timeout=5.0, **kw)


def code(response: httpx.Response) -> str:
    """The OData error code of an error answer."""
    return str(response.json()["error"]["code"])


def test_msal_gets_a_token_over_tls_that_the_api_accepts(
    sandbox: BusinessCentralSandbox, company: str, token: str
) -> None:
    response = call(sandbox, token, "GET", "companies")
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["value"]] == ["CRONUS US"]
    assert sandbox.tokens_issued == 1


def test_msal_reports_a_wrong_secret_as_invalid_client(
    sandbox: BusinessCentralSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    result = app(sandbox, secret="wrong").acquire_token_for_client([SCOPE])
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]
    assert sandbox.tokens_issued == 0


def test_api_refuses_a_missing_unknown_or_expired_token(
    sandbox: BusinessCentralSandbox, company: str, token: str
) -> None:
    assert httpx.get(f"{sandbox.api_url}/companies").status_code == 401
    unknown = call(sandbox, "not-a-token", "GET", "companies")
    assert (unknown.status_code, code(unknown)) == (401, "Authentication_InvalidCredentials")
    assert call(sandbox, token, "GET", "companies").status_code == 200
    sandbox.expire_tokens()
    assert call(sandbox, token, "GET", "companies").status_code == 401


def test_filter_select_orderby_and_server_paging(
    sandbox: BusinessCentralSandbox, company: str, token: str
) -> None:
    customers = f"companies({company})/customers"
    for i in range(8):
        body = {"displayName": f"{'Acme' if i % 2 else 'Globex'} {i}", "creditLimit": i * 1000}
        assert call(sandbox, token, "POST", customers, json=body).status_code == 201
    params = {
        "$filter": "(contains(displayName,'acme') or startswith(displayName,'Globex 0')) and creditLimit ge 1000",
        "$select": "number,displayName",
        "$orderby": "creditLimit desc",
    }
    page = call(sandbox, token, "GET", customers, params=params).json()
    names = [c["displayName"] for c in page["value"]]
    assert set(page["value"][0]) == {"@odata.etag", "number", "displayName"}
    pages = 1
    while "@odata.nextLink" in page:
        page = call(sandbox, token, "GET", page["@odata.nextLink"]).json()
        names += [c["displayName"] for c in page["value"]]
        pages += 1
    assert names == ["Acme 7", "Acme 5", "Acme 3", "Acme 1"]
    assert pages == 2
    top = call(sandbox, token, "GET", customers, params={"$orderby": "number", "$skip": "2", "$top": "2"})
    assert [c["displayName"] for c in top.json()["value"]] == ["Globex 2", "Acme 3"]
    assert "@odata.nextLink" not in top.json()


def test_unknown_fields_are_refused(sandbox: BusinessCentralSandbox, company: str, token: str) -> None:
    customers = f"companies({company})/customers"
    created = call(sandbox, token, "POST", customers, json={"displayName": "Acme", "externalId": "X-1"})
    assert (created.status_code, code(created)) == (400, "BadRequest_PropertyNotFound")
    assert "externalId" in created.json()["error"]["message"]
    filtered = call(sandbox, token, "GET", customers, params={"$filter": "externalId eq 'X-1'"})
    assert (filtered.status_code, code(filtered)) == (400, "BadRequest_PropertyNotFound")
    too_long = call(sandbox, token, "POST", customers, json={"number": "N" * 21, "displayName": "Acme"})
    assert code(too_long) == "Application_StringExceededLength"
    assert sandbox.records("customers") == []


def test_a_taken_number_is_refused(sandbox: BusinessCentralSandbox, company: str, token: str) -> None:
    customers = f"companies({company})/customers"
    assert (
        call(sandbox, token, "POST", customers, json={"number": "q2c1", "displayName": "A"}).status_code
        == 201
    )
    again = call(sandbox, token, "POST", customers, json={"number": "Q2C1", "displayName": "B"})
    assert (again.status_code, code(again)) == (400, "Internal_EntityWithSameKeyExists")
    assert [c["number"] for c in sandbox.records("customers")] == ["Q2C1"]


def test_patch_and_delete_need_the_current_etag(
    sandbox: BusinessCentralSandbox, company: str, token: str
) -> None:
    created = call(sandbox, token, "POST", f"companies({company})/projects", json={"displayName": "Rollout"})
    path = f"companies({company})/projects({created.json()['id']})"
    first = created.json()["@odata.etag"]
    missing = call(sandbox, token, "PATCH", path, json={"displayName": "Rollout 2"})
    assert (missing.status_code, code(missing)) == (400, "BadRequest")
    changed = call(
        sandbox, token, "PATCH", path, json={"displayName": "Rollout 2"}, headers={"If-Match": first}
    )
    assert changed.status_code == 200 and changed.json()["@odata.etag"] != first
    stale = call(
        sandbox, token, "PATCH", path, json={"displayName": "Rollout 3"}, headers={"If-Match": first}
    )
    assert (stale.status_code, code(stale)) == (412, "Request_EntityChanged")
    assert call(sandbox, token, "DELETE", path, headers={"If-Match": first}).status_code == 412
    current = changed.json()["@odata.etag"]
    assert call(sandbox, token, "DELETE", path, headers={"If-Match": current}).status_code == 204
    gone = call(sandbox, token, "GET", path)
    assert (gone.status_code, code(gone)) == (404, "BadRequest_NotFound")


def test_batch_of_100_answers_each_request(sandbox: BusinessCentralSandbox, company: str, token: str) -> None:
    journal = call(sandbox, token, "POST", f"companies({company})/journals", json={"code": "q2ctime"}).json()
    lines = f"companies({company})/journals({journal['id']})/journalLines"
    requests = []
    for i in range(100):
        body: dict[str, Any] = {
            "accountType": "G/L Account",
            "accountNumber": "13100",
            "balanceAccountType": "G/L Account",
            "balancingAccountNumber": "40100",
            "postingDate": "2026-02-27",
            "documentNumber": f"DOC{i}",
            "amount": 100.25,
            "dimensionSetLines": [{"code": "DEPARTMENT", "valueCode": "TECH"}],
        }
        if i == 41:
            body["postingDate"] = "2026-01-31"  # a closed month
        requests.append({"id": f"r{i}", "method": "POST", "url": lines, "body": body})
    answer = call(sandbox, token, "POST", "$batch", json={"requests": requests})
    assert answer.status_code == 200
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert [responses[f"r{i}"]["status"] for i in range(100)].count(201) == 99
    assert responses["r41"]["status"] == 400
    assert responses["r41"]["body"]["error"]["code"] == "Application_DialogException"
    stored = sandbox.records("journalLines")
    assert len(stored) == 99 and {d["journalDisplayName"] for d in stored} == {"Q2CTIME"}
    expanded = call(sandbox, token, "GET", lines, params={"$top": "1", "$expand": "dimensionSetLines"}).json()
    assert expanded["value"][0]["dimensionSetLines"][0]["valueCode"] == "TECH"
    assert expanded["value"][0]["amount"] == 100.25
    too_many = call(
        sandbox, token, "POST", "$batch", json={"requests": [*requests, {**requests[0], "id": "x"}]}
    )
    assert too_many.status_code == 400
    assert len(sandbox.records("journalLines")) == 99


def test_journal_lines_check_accounts(sandbox: BusinessCentralSandbox, company: str, token: str) -> None:
    journal = call(sandbox, token, "POST", f"companies({company})/journals", json={"code": "GEN"}).json()
    lines = f"companies({company})/journals({journal['id']})/journalLines"
    body = {"accountType": "G/L Account", "accountNumber": "99999", "postingDate": "2026-02-01", "amount": 1}
    refused = call(sandbox, token, "POST", lines, json=body)
    assert (refused.status_code, code(refused)) == (400, "Application_FieldValidationException")
    assert sandbox.records("journalLines") == []


def test_throttled_client_gets_429_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = BusinessCentralSandbox(rate_limit=3, rate_window=60, tls_folder=tmp_path / "tls")
    sb.start()
    try:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        token = app(sb).acquire_token_for_client([SCOPE])["access_token"]
        statuses = [call(sb, token, "GET", "companies").status_code for _ in range(4)]
        limited = call(sb, token, "GET", "companies")
    finally:
        sb.stop()
    assert statuses == [200, 200, 200, 429]
    assert code(limited) == "Application_TooManyRequests"
    assert 1 <= float(limited.headers["Retry-After"]) <= 60


def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = BusinessCentralSandbox(tmp_path / "bc.db", tls_folder=tmp_path / "tls")
    c = first.add_company("CRONUS UK")
    first.add_currency(c, "USD")
    first.store.close()
    again = BusinessCentralSandbox(tmp_path / "bc.db", tls_folder=tmp_path / "tls")
    assert [d["code"] for d in again.records("currencies", c)] == ["USD"]
    again.store.close()
