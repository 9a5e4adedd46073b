"""Hostile values put into SOQL and SuiteQL are escaped, and the sandboxes return exactly the right rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.netsuite import NetSuiteClient
from quote2cash.connectors.netsuite.client import suiteql_string
from quote2cash.connectors.salesforce import SalesforceClient
from quote2cash.connectors.salesforce.client import soql_string
from quote2cash.sandbox.netsuite import NetSuiteSandbox
from quote2cash.sandbox.salesforce import SalesforceSandbox
from tests.sandbox.netsuite_fixtures import CREDS

FAST = RetryPolicy(initial_interval=0.01, max_interval=0.05, max_attempts=2)

HOSTILE = [
    "O'Brien & Sons",
    "x' OR Name != 'x",
    "x' OR companyname <> 'x",
    "back\\slash\\' OR 'a'='a",
    'say "hello"',
    "tab\tand\nnewline\rand\fform\bfeed",
    "trailing backslash \\",
    "100% _wild_ card",
    "'; DELETE FROM Account; --",
    "Ünïcødé — 株式会社 '",
]


def test_soql_string_follows_salesforces_escaping_rules() -> None:
    assert soql_string("O'Brien") == "'O\\'Brien'"
    assert soql_string('a\\b"c') == "'a\\\\b\\\"c'"
    assert soql_string("l1\nl2\tx\r\b\f") == "'l1\\nl2\\tx\\r\\b\\f'"
    assert soql_string("100% _x_") == "'100% _x_'"  # not special outside LIKE


def test_suiteql_string_doubles_quotes_and_refuses_nul() -> None:
    assert suiteql_string("O'Brien \\ x") == "'O''Brien \\ x'"
    with pytest.raises(ValueError):
        suiteql_string("a\x00b")


@pytest.fixture
def salesforce(tmp_path: Path) -> Iterator[tuple[SalesforceSandbox, SalesforceClient]]:
    sb = SalesforceSandbox(tmp_path / "salesforce.sqlite")
    sb.start()
    client = SalesforceClient(sb.url, "q2c", "sandbox-secret", retry=FAST, timeout=5.0)
    yield sb, client
    client.close()
    sb.stop()
    sb.store.close()


def test_hostile_values_in_soql_find_exactly_their_record(
    salesforce: tuple[SalesforceSandbox, SalesforceClient],
) -> None:
    sb, client = salesforce
    ids = {name: sb.insert("Account", {"Name": name}) for name in [*HOSTILE, "x", "Innocent Ltd"]}
    for name in HOSTILE:
        rows = list(client.query(f"SELECT Id, Name FROM Account WHERE Name = {soql_string(name)}"))
        assert [(r["Id"], r["Name"]) for r in rows] == [(ids[name], name)], name
    # In an IN list and negated, the literal still means exactly itself.
    listed = ", ".join(soql_string(n) for n in HOSTILE[:3])
    rows = list(client.query(f"SELECT Id FROM Account WHERE Name IN ({listed})"))
    assert {r["Id"] for r in rows} == {ids[n] for n in HOSTILE[:3]}
    rows = list(client.query(f"SELECT Id FROM Account WHERE Name != {soql_string(HOSTILE[1])}"))
    assert len(rows) == len(ids) - 1
    # What the escaping prevents: the same value quoted naively widens the query to every account.
    naive = list(client.query(f"SELECT Id FROM Account WHERE Name = '{HOSTILE[1]}'"))
    assert len(naive) == len(ids)


@pytest.fixture
def netsuite(tmp_path: Path) -> Iterator[tuple[NetSuiteSandbox, NetSuiteClient]]:
    sb = NetSuiteSandbox(tmp_path / "netsuite.sqlite")
    sb.start()
    client = NetSuiteClient(sb.url, CREDS, retry=FAST, timeout=5.0)
    yield sb, client
    client.close()
    sb.stop()
    sb.store.close()


def test_hostile_values_in_suiteql_find_exactly_their_record(
    netsuite: tuple[NetSuiteSandbox, NetSuiteClient],
) -> None:
    sb, client = netsuite
    usd = sb.add_currency("USD")
    sub = sb.add_subsidiary("Acme Consulting Inc.")
    names = [n for n in [*HOSTILE, "x", "Innocent Ltd"] if "\x00" not in n]
    ids = {
        name: str(
            sb.add_customer(
                {"companyName": name, "subsidiary": {"id": str(sub)}, "currency": {"id": str(usd)}}
            )
        )
        for name in names
    }
    for name in HOSTILE:
        rows = list(
            client.suiteql(f"SELECT id, companyname FROM customer WHERE companyname = {suiteql_string(name)}")
        )
        assert [(str(r["id"]), r["companyname"]) for r in rows] == [(ids[name], name)], name
    # What the escaping prevents: the same value quoted naively widens the query to every customer.
    naive = list(client.suiteql(f"SELECT id FROM customer WHERE companyname = '{HOSTILE[2]}'"))
    assert len(naive) == len(ids)
