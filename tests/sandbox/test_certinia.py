"""The Certinia PSA objects of the Salesforce sandbox, driven by the unmodified ``simple-salesforce`` SDK.

simple-salesforce builds every URL as ``https://{instance}``, so the sandbox's
app is served here over TLS on loopback with a certificate made for the test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.salesforce import certinia as psa
from quote2cash.sandbox.salesforce.schema import OBJECTS

simple_salesforce = pytest.importorskip("simple_salesforce")
SalesforceMalformedRequest = simple_salesforce.exceptions.SalesforceMalformedRequest


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA the SDK's session trusts)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _TlsServer:
    """The sandbox's app under uvicorn with TLS, in a daemon thread."""

    def __init__(self, app: Any, cert: Path, key: Path) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "TLS sandbox did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = self.server.force_exit = True  # no wait for idle keep-alives
        self.thread.join(timeout=10)


@pytest.fixture
def box() -> SalesforceSandbox:
    return SalesforceSandbox()


@pytest.fixture
def sf(box: SalesforceSandbox, tmp_path: Path) -> Iterator[Any]:
    """A ``simple_salesforce.Salesforce`` on a token from the sandbox's client-credentials endpoint."""
    cert, key = _certificate(tmp_path)
    server = _TlsServer(box.app, cert, key)
    url = server.start()
    session = requests.Session()
    session.verify = str(cert)
    session.trust_env = False  # the test's CA, whatever the environment names
    token = session.post(
        f"{url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "q2c", "client_secret": "sandbox-secret"},
        timeout=5,
    ).json()
    yield simple_salesforce.Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
    )
    session.close()
    server.stop()


@pytest.fixture
def catalogue(box: SalesforceSandbox) -> dict[str, dict[str, str]]:
    return psa.seed_catalogue(
        box,
        regions=["North America"],
        practices=["Technology"],
        templates={"T&M Delivery": ["Discovery", "Delivery"]},
        consultants=[{"full_name": "Ada Lovelace", "headline": "Consultant", "email": "ada@example.com"}],
    )


def _error(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    content = exc.value.content
    assert isinstance(content, list)
    first: dict[str, Any] = content[0]
    return first


def test_sdk_creates_queries_and_updates_certinia_objects(
    sf: Any, catalogue: dict[str, dict[str, str]]
) -> None:
    region = catalogue["regions"]["North America"]
    created = sf.pse__Proj__c.create(
        {
            "Name": "Acme — Delivery",
            "CurrencyIsoCode": "GBP",
            "pse__Region__c": region,
            "pse__Billing_Type__c": "Time and Materials",
            "pse__Start_Date__c": "2026-12-01",
            "pse__Is_Active__c": True,
        }
    )
    assert created["success"] and created["id"].startswith("a0C")
    project = created["id"]
    sf.pse__Proj__c.update(project, {"pse__Stage__c": "In Progress"})
    record = sf.pse__Proj__c.get(project)
    assert record["pse__Stage__c"] == "In Progress" and record["pse__Project_ID__c"].startswith("PR-")
    rows = sf.query(
        "SELECT Id, Name, pse__Region__r.Name FROM pse__Proj__c WHERE pse__Is_Template__c = false "
        "AND pse__Billing_Type__c = 'Time and Materials'"
    )
    assert rows["totalSize"] == 1 and rows["records"][0]["pse__Region__r"]["Name"] == "North America"
    # A weekly timecard: its end date, total hours and approval flags come from the package.
    resource = catalogue["resources"]["Ada Lovelace"]
    hours = dict(zip(psa.HOURS_FIELDS, [8, 7.5, 0, 8, 4], strict=False))
    tc = sf.pse__Timecard_Header__c.create(
        {
            "pse__Project__c": project,
            "pse__Resource__c": resource,
            "pse__Start_Date__c": "2026-10-12",
            **hours,
        }
    )["id"]
    sf.pse__Timecard_Header__c.update(tc, {"pse__Status__c": "Approved", "pse__Billable__c": True})
    header = sf.query(
        "SELECT Name, pse__End_Date__c, pse__Total_Hours__c, pse__Approved__c, CurrencyIsoCode, "
        f"pse__Resource__r.Name FROM pse__Timecard_Header__c WHERE Id = '{tc}'"
    )["records"][0]
    assert header["Name"].startswith("TC-") and header["pse__End_Date__c"] == "2026-10-18"
    assert header["pse__Total_Hours__c"] == 27.5 and header["pse__Approved__c"] is True
    assert header["CurrencyIsoCode"] == "GBP"  # a timecard is in its project's currency
    assert header["pse__Resource__r"]["Name"] == "Ada Lovelace"
    expense = sf.pse__Expense__c.create(
        {
            "pse__Project__c": project,
            "pse__Resource__c": resource,
            "pse__Expense_Date__c": "2026-10-13",
            "pse__Amount__c": 42.5,
            "CurrencyIsoCode": "GBP",
            "pse__Type__c": "Travel",
            "pse__Billable__c": True,
        }
    )["id"]
    sf.pse__Expense__c.update(expense, {"pse__Status__c": "Approved"})
    approved = sf.query_all("SELECT Id, pse__Amount__c FROM pse__Expense__c WHERE pse__Approved__c = true")
    assert [r["Id"] for r in approved["records"]] == [expense]
    described = sf.pse__Resource_Request__c.describe()
    role = next(f for f in described["fields"] if f["name"] == "pse__Resource_Role__c")
    assert {v["value"] for v in role["picklistValues"]} == psa.RESOURCE_ROLES


def test_assignment_needs_its_schedule_first(
    sf: Any, box: SalesforceSandbox, catalogue: dict[str, Any]
) -> None:
    project = box.insert("pse__Proj__c", {"Name": "Staffed", "pse__Is_Active__c": True})
    resource = catalogue["resources"]["Ada Lovelace"]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.pse__Assignment__c.create({"pse__Project__c": project, "pse__Resource__c": resource})
    assert _error(refused) == {
        "errorCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [pse__Schedule__c]",
        "fields": ["pse__Schedule__c"],
    }
    assert box.records("pse__Assignment__c") == []
    schedule = sf.pse__Schedule__c.create(
        {
            "pse__Start_Date__c": "2026-10-05",
            "pse__End_Date__c": "2026-10-16",
            **dict.fromkeys(psa.HOURS_FIELDS[:5], 8),
        }
    )["id"]
    assignment = sf.pse__Assignment__c.create(
        {"pse__Project__c": project, "pse__Resource__c": resource, "pse__Schedule__c": schedule}
    )["id"]
    assert sf.pse__Assignment__c.get(assignment)["pse__Scheduled_Hours__c"] == 80.0  # two weeks of 5 × 8 h
    with pytest.raises(SalesforceMalformedRequest) as stale:
        sf.pse__Assignment__c.update(assignment, {"pse__Schedule__c": "a0GHp0000000999XXX"})
    assert _error(stale)["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_package_rules_refuse_what_certinia_refuses(
    sf: Any, box: SalesforceSandbox, catalogue: dict[str, Any]
) -> None:
    resource = catalogue["resources"]["Ada Lovelace"]
    template = catalogue["templates"]["T&M Delivery"]
    closed = box.insert("pse__Proj__c", {"Name": "Closed", "pse__Closed_for_Time_Entry__c": True})
    open_ = box.insert("pse__Proj__c", {"Name": "Open", "pse__Is_Active__c": True})
    card = {"pse__Resource__c": resource, "pse__Start_Date__c": "2026-10-12", "pse__Monday_Hours__c": 8}
    for project, message in (
        (closed, "Project Closed is closed for time entry"),
        (template, "closed for time"),
    ):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            sf.pse__Timecard_Header__c.create({**card, "pse__Project__c": project})
        assert _error(refused)["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert message in _error(refused)["message"]
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.pse__Timecard_Header__c.create({**card, "pse__Project__c": open_, "pse__Tuesday_Hours__c": 25})
    assert _error(too_many)["message"] == "Tuesday hours must be between 0 and 24"
    bench = box.insert("Contact", {"LastName": "Bench", "pse__Is_Resource__c": True})
    with pytest.raises(SalesforceMalformedRequest) as inactive:
        sf.pse__Timecard_Header__c.create({**card, "pse__Project__c": open_, "pse__Resource__c": bench})
    assert "is not an active resource" in _error(inactive)["message"]
    # An approved timecard is locked until its approval is taken back.
    tc = sf.pse__Timecard_Header__c.create({**card, "pse__Project__c": open_, "pse__Status__c": "Approved"})[
        "id"
    ]
    with pytest.raises(SalesforceMalformedRequest) as locked:
        sf.pse__Timecard_Header__c.update(tc, {"pse__Monday_Hours__c": 6})
    assert _error(locked)["errorCode"] == "ENTITY_IS_LOCKED"
    sf.pse__Timecard_Header__c.update(tc, {"pse__Status__c": "Saved", "pse__Monday_Hours__c": 6})
    assert box.get("pse__Timecard_Header__c", tc)["pse__Approved__c"] is False
    with pytest.raises(SalesforceMalformedRequest) as derived:
        sf.pse__Timecard_Header__c.update(tc, {"pse__Approved__c": True})
    assert _error(derived)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as role:
        sf.pse__Resource_Request__c.create(
            {
                "pse__Project__c": open_,
                "pse__Resource_Role__c": "Astronaut",
                "pse__Start_Date__c": "2026-12-01",
                "pse__End_Date__c": "2026-12-31",
            }
        )
    assert _error(role)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.query("SELECT pse__Warp_Factor__c FROM pse__Proj__c")
    assert _error(unknown)["errorCode"] == "INVALID_FIELD"


def test_deleting_a_project_takes_its_milestones_and_tasks(
    box: SalesforceSandbox, catalogue: dict[str, Any]
) -> None:
    template = catalogue["templates"]["T&M Delivery"]
    assert {m["Name"] for m in box.records("pse__Milestone__c")} == {"Discovery", "Delivery"}
    assert len(box.records("pse__Project_Task__c")) == 2
    box.delete("pse__Proj__c", template)
    assert box.records("pse__Milestone__c") == [] and box.records("pse__Project_Task__c") == []


def test_collections_upsert_by_the_hubs_reference_over_http(box: SalesforceSandbox) -> None:
    box.start()
    try:
        token = httpx.post(
            f"{box.url}/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "q2c", "client_secret": "sandbox-secret"},
        ).json()["access_token"]
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "pse__Proj__c"}, "Hub_Ext_Id__c": "opp-1", "Name": "One"},
                {"attributes": {"type": "pse__Proj__c"}, "Hub_Ext_Id__c": "opp-2"},
            ],
        }
        url = f"{box.url}/services/data/v62.0/composite/sobjects/pse__Proj__c/Hub_Ext_Id__c"
        headers = {"Authorization": f"Bearer {token}"}
        first = httpx.patch(url, json=body, headers=headers).json()
        assert first[0]["created"] is True and first[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
        again = httpx.patch(url, json=body, headers=headers).json()
        assert again[0] == {**first[0], "created": False}
        assert [p["Name"] for p in box.records("pse__Proj__c")] == ["One"]
    finally:
        box.stop()


def test_every_package_object_has_its_own_key_prefix() -> None:
    prefixes = [spec.prefix for spec in OBJECTS.values()]
    assert len(prefixes) == len(set(prefixes))
    assert {"pse__Proj__c", "pse__Timecard_Header__c", "pse__Schedule__c"} <= set(OBJECTS)
    assert OBJECTS["Contact"].field("pse__resource_role__c") is not None
