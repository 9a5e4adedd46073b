"""The Business Central connector against the Business Central sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.business_central import (
    CONNECTOR,
    BusinessCentralErp,
    BusinessCentralSettings,
    number_for,
)
from quote2cash.errors import NotFoundError
from quote2cash.model import Customer, FinancialDimensions, Money, Project
from quote2cash.ports import Accounts, Erp, ErpRefs, Posting
from quote2cash.registry import connector, register
from quote2cash.sandbox.business_central import BusinessCentralSandbox

FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[BusinessCentralSandbox]:
    """Two companies: US (local currency USD) and UK (GBP), each with terms, departments and periods."""
    sb = BusinessCentralSandbox(tmp_path / "bc.db", max_page=50, tls_folder=tmp_path / "tls")
    for name, foreign in (("CRONUS US", "EUR"), ("CRONUS UK", "USD")):
        c = sb.add_company(name)
        sb.add_currency(c, foreign)
        sb.add_payment_terms(c, "30 DAYS", "Net 30", 30)
        sb.add_dimension(c, "DEPARTMENT", "Department")
        sb.add_dimension_value(c, "DEPARTMENT", "TECH", "Technology")
        sb.add_dimension_value(c, "DEPARTMENT", "STRAT", "Strategy")
        sb.add_account(c, "13100", "Unbilled receivables", category="Assets")
        sb.add_account(c, "40100", "Consulting revenue")
        sb.add_period(c, 2026, 1, closed=name == "CRONUS US")
        sb.add_period(c, 2026, 2)
        sb.add_period(c, 2026, 3)
    sb.start()
    yield sb
    sb.stop()
    sb.store.close()


def settings(sb: BusinessCentralSandbox, **kw: object) -> BusinessCentralSettings:
    """Settings of the sandbox environment, as a hub configuration would give them."""
    return BusinessCentralSettings.model_validate(
        {
            "base_url": sb.url,
            "tenant": sb.tenant,
            "environment": sb.environment,
            "client_id": sb.client_id,
            "client_secret_env": "Q2C_BC_CLIENT_SECRET",
            "authority_host": sb.login_url,
            "ca_bundle": sb.ca_file,
            "local_currencies": {"CRONUS US": "USD", "CRONUS UK": "GBP"},
            "cache_seconds": 0,
            "secrets": {"client_secret": SecretStr(sb.client_secret)},
            **kw,
        }
    )


@pytest.fixture
def erp(sandbox: BusinessCentralSandbox) -> Iterator[BusinessCentralErp]:
    """The adapter, built through the connector as the hub builds it."""
    adapter = CONNECTOR.build("bc", settings(sandbox, timeout_seconds=1.0), None, FAST)
    assert isinstance(adapter, BusinessCentralErp)
    yield adapter
    adapter.close()


def company(sb: BusinessCentralSandbox, name: str) -> str:
    """The id of a company by name."""
    return next(str(c["id"]) for c in sb.records("companies") if c["name"] == name)


def customer(name: str = "Globex Ltd") -> Customer:
    """A canonical customer."""
    return Customer(
        source_system="crm", source_id="001A", name=name, website="https://globex.example", tax_id="GB123"
    )


def project(name: str = "ERP rollout") -> Project:
    """A canonical project."""
    return Project(
        source_system="psa",
        source_id="P-1",
        customer_id="001A",
        opportunity_id="006A",
        name=name,
        billing_model="time_and_materials",
        currency="USD",
        start_date=date(2026, 2, 1),
        dimensions=FinancialDimensions(legal_entity="US01"),
    )


def posting(sub: str, n: int, *, mode: str = "summary", day: date = date(2026, 2, 27)) -> Posting:
    """Posting ``n`` of 2026-02: ``n`` hours at 150.25 USD (a reversal for n divisible by 7)."""
    minutes = 60 * n
    amount = Money.of(Decimal("150.25") * n, "USD").to_minor() * (-1 if n % 7 == 0 else 1)
    return Posting(
        key=f"Q2C-T-{n:012x}-20260301T0000",
        kind="time",
        mode=mode,  # type: ignore[arg-type]
        project=f"P-{n % 3}",
        erp_project_id=None,
        task_id=None,
        legal_entity="US01",
        subsidiary=sub,
        department="TECH" if n % 2 else None,
        period="2026-02",
        tran_date=day,
        billable=True,
        minutes=minutes,
        amount_minor=amount,
        currency="USD",
        entries=n,
        accounts=Accounts(debit="13100", credit="40100"),
    )


def test_the_connector_is_an_erp_and_registers(erp: BusinessCentralErp) -> None:
    register(CONNECTOR)
    assert connector("business_central") is CONNECTOR
    assert isinstance(erp, Erp)
    assert erp.capabilities.bulk_size == 100 and erp.capabilities.upsert_by_external_id


def test_master_data_maps_companies_codes_and_periods(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us, uk = company(sandbox, "CRONUS US"), company(sandbox, "CRONUS UK")
    md = erp.master_data()
    assert md.subsidiaries == {us: True, uk: True}
    assert md.currencies == {"EUR": "EUR", "USD": "USD", "GBP": "GBP"}
    assert md.terms["Net 30"] == "30 DAYS"
    assert md.departments == {"Technology": "TECH", "Strategy": "STRAT"}
    assert md.active_departments == {"TECH", "STRAT"}
    assert [(p.start, p.end, p.closed) for p in md.periods] == [
        (date(2026, 1, 1), date(2026, 1, 31), True),
        (date(2026, 2, 1), date(2026, 2, 28), False),
        (date(2026, 3, 1), date(2026, 3, 31), False),
    ]
    assert sandbox.tokens_issued == 1  # one token for every call


def test_customer_upsert_twice_is_one_customer(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    uk = company(sandbox, "CRONUS UK")
    refs = ErpRefs(subsidiary=uk, currency="GBP", terms="30 DAYS")
    first = erp.upsert_customer(customer(), "Q2C-C-001A", refs)
    second = erp.upsert_customer(customer("Globex Limited"), "Q2C-C-001A", refs)
    assert first == second
    [stored] = sandbox.records("customers")
    assert stored["displayName"] == "Globex Limited"
    assert stored["number"] == number_for("Q2C", "Q2C-C-001A")
    assert stored["currencyCode"] == ""  # the company's local currency
    terms = {t["code"]: t["id"] for t in sandbox.records("paymentTerms", uk)}
    assert stored["paymentTermsId"] == terms["30 DAYS"]
    [record] = [c for c in erp.customers() if c.id == first]
    assert (record.external_id, record.subsidiary, record.tax_id) == ("Q2C-C-001A", uk, "GB123")
    foreign = erp.upsert_customer(customer("Initech"), "Q2C-C-002B", ErpRefs(subsidiary=uk, currency="USD"))
    assert sandbox.store.get("customers", foreign)["currencyCode"] == "USD"  # type: ignore[index]


def test_an_in_doubt_customer_create_is_found_not_repeated(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us = company(sandbox, "CRONUS US")
    sandbox.inject("timeout_after_commit", path=r"/customers$", method="POST", seconds=1.5, count=1)
    erp_id = erp.upsert_customer(customer(), "Q2C-C-001A", ErpRefs(subsidiary=us, currency="USD"))
    assert [c["id"] for c in sandbox.records("customers")] == [erp_id]


def test_project_upsert_twice_is_one_project_and_delete_is_idempotent(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us = company(sandbox, "CRONUS US")
    refs = ErpRefs(subsidiary=us, customer="c")
    first = erp.upsert_project(project(), "Q2C-P-006A", refs)
    assert erp.upsert_project(project("ERP rollout phase 1"), "Q2C-P-006A", refs) == first
    [stored] = sandbox.records("projects")
    assert stored["displayName"] == "ERP rollout phase 1"
    erp.delete_project(first)
    erp.delete_project(first)
    assert sandbox.records("projects") == []


def test_postings_go_in_batches_and_a_resend_adds_nothing(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us = company(sandbox, "CRONUS US")
    postings = [posting(us, n, mode="summary" if n % 2 else "detail") for n in range(1, 131)]
    results = erp.post(postings)
    assert [r.key for r in results] == [p.key for p in postings]
    assert all(r.erp_id and r.error is None for r in results)
    assert len(sandbox.records("journalLines")) == 130
    batches = sandbox.calls("POST /v2.0/")
    again = erp.post(postings)
    assert [r.erp_id for r in again] == [r.erp_id for r in results]
    assert len(sandbox.records("journalLines")) == 130
    assert sandbox.calls("POST /v2.0/") - batches == 2  # two look-up batches, nothing created
    posted = erp.posted("time", "2026-02")
    assert sorted(r.key for r in posted) == sorted(p.key for p in postings)
    expected = sum(Money.from_minor(p.amount_minor, "USD").amount for p in postings)
    assert sum(r.amount for r in posted) == expected
    assert sum(r.hours for r in posted) == Decimal(sum(range(1, 131)))
    assert sum(r.entries for r in posted) == sum(range(1, 131))
    assert erp.posted("time", "2026-03") == [] and erp.posted("expense", "2026-02") == []
    line = next(d for d in sandbox.records("journalLines") if d["externalDocumentNumber"] == postings[0].key)
    assert [d["valueCode"] for d in line["_dims"]] == ["TECH"]


def test_a_posting_resent_after_timeout_after_commit_is_one_line(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us = company(sandbox, "CRONUS US")
    postings = [posting(us, n) for n in range(1, 4)]
    sandbox.inject("timeout_after_commit", path=r"/\$batch$", method="POST", seconds=1.5, count=1)
    first = erp.post(postings)
    second = erp.post(postings)
    assert len(sandbox.records("journalLines")) == 3
    assert [r.erp_id for r in first] == [r.erp_id for r in second]
    assert all(r.erp_id for r in first)


def test_a_refused_line_is_a_result_the_others_post(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    us = company(sandbox, "CRONUS US")
    postings = [posting(us, 1), posting(us, 2, day=date(2026, 1, 30)), posting(us, 3)]
    results = erp.post(postings)
    assert [r.erp_id is not None for r in results] == [True, False, True]
    assert results[1].error is not None
    assert results[1].error["code"] == "erp.posting_rejected"
    assert results[1].error["vendor_code"] == "Application_DialogException"
    assert len(sandbox.records("journalLines")) == 2


def test_an_expired_token_is_replaced(sandbox: BusinessCentralSandbox, erp: BusinessCentralErp) -> None:
    erp.master_data()
    assert sandbox.expire_tokens() == 1
    md = erp.master_data(fresh=True)
    assert len(md.subsidiaries) == 2
    assert sandbox.tokens_issued == 2


def test_vendor_errors_keep_the_vendor_code(sandbox: BusinessCentralSandbox, erp: BusinessCentralErp) -> None:
    with pytest.raises(NotFoundError) as caught:
        erp.client.get("companies(00000000-0000-0000-0000-000000000001)")
    assert caught.value.details["vendor_code"] == "BadRequest_NotFound"
    assert caught.value.code == "vendor.record_not_found"


def test_throttling_is_retried_after_retry_after(
    sandbox: BusinessCentralSandbox, erp: BusinessCentralErp
) -> None:
    sandbox.inject("throttle", path=r"/companies$", method="GET", retry_after=0.05, count=2)
    assert len(erp.master_data().subsidiaries) == 2
    assert erp.retries == 2
