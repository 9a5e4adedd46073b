"""Personal data is minimised in what the hub stores, retention prunes old payloads, and a whole
demo run leaves no e-mail address and no secret in its database or its log."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from quote2cash.ops import retention
from quote2cash.runtime.logs import minimise
from quote2cash.sandbox.seed import SANDBOX_AUDIT_KEY, SANDBOX_ENV
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import audit_log, exception_case, inbox
from tests.security.chain import KEY, sealed_engine

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

#: A closed-won record as a webhook may deliver it: the deal, its owner and its contact.
DEAL: dict[str, Any] = {
    "Id": "006Hp0000000007IAA",
    "AccountId": "001Hp0000000007IAA",
    "Name": "Beacon Telecom — Technology 7 (ask jane.doe@beacon.example)",
    "Amount": 138440.0,
    "CloseDate": "2026-11-20",
    "CurrencyIsoCode": "EUR",
    "SystemModstamp": "2026-12-01T13:15:33.486+0000",
    "Owner": {
        "attributes": {"type": "User"},
        "Id": "005Hp0000000001IAA",
        "Name": "Sam Seller",
        "Email": "sam@firm.example",
    },
    "Contact": {
        "attributes": {"type": "Contact"},
        "Id": "003Hp0000000001IAA",
        "FirstName": "Jane",
        "LastName": "Doe",
        "Name": "Jane Doe",
        "Email": "jane.doe@beacon.example",
        "MobilePhone": "+44 20 7946 0958",
    },
    "Description": "call (555) 010-1234 before kick-off",
    "client_secret": "should-never-be-stored",
}


def test_minimise_keeps_what_a_replay_needs_and_masks_the_person() -> None:
    out = minimise(DEAL)
    for key in ("Id", "AccountId", "Amount", "CloseDate", "CurrencyIsoCode", "SystemModstamp"):
        assert out[key] == DEAL[key]
    assert out["Name"] == "Beacon Telecom — Technology 7 (ask [email])"  # a deal's name is business data
    assert out["Owner"] == {
        "attributes": {"type": "User"},
        "Id": "005Hp0000000001IAA",
        "Name": "[name]",
        "Email": "[email]",
    }
    contact = out["Contact"]
    assert contact["Id"] == "003Hp0000000001IAA"
    assert {contact[k] for k in ("FirstName", "LastName", "Name")} == {"[name]"}
    assert (contact["Email"], contact["MobilePhone"]) == ("[email]", "[phone]")
    assert out["Description"] == "call [phone] before kick-off"
    assert out["client_secret"] == "[redacted]"
    assert minimise(out) == out  # idempotent: a stored payload re-stored is unchanged


def _text(engine: sa.Engine) -> str:
    """Every value of the inbox, the cases and the audit trail, as one text."""
    with engine.connect() as conn:
        rows = [
            list(r) for table in (inbox, exception_case, audit_log) for r in conn.execute(sa.select(table))
        ]
    return json.dumps(rows, default=str)


def test_inbox_cases_and_audit_store_no_personal_data(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path)
    event = {"id": "e1", "type": "opportunity.closed_won", "payload": DEAL}
    with engine.begin() as conn:
        repo.inbox_accept(
            conn,
            {
                "source": "salesforce",
                "source_event_id": "Opportunity/006Hp0000000007IAA:closed_won",
                "event_id": "e1",
                "event_type": "opportunity.closed_won",
                "subject": "Opportunity/006Hp0000000007IAA",
                "correlation_id": "c1",
                "event_time": datetime.now(UTC),
                "payload": event,
            },
        )
        error = {
            "code": "customer.probable_duplicate",
            "message": "matches jane.doe@beacon.example, +44 20 7946 0958",
        }
        case = cases.open_case(
            conn, error, flow="lead_to_project", subject="Opportunity/1", correlation_id="c1", payload=event
        )
        cases.open_cases(conn, [(error, "post_approved_time", "time/1", None)])
        cases.set_status(conn, case, "resolved", {"by": "ops", "note": "spoke to jane.doe@beacon.example"})
        audit.append(
            conn, actor="flow:test", action="customer.created", subject="Account/1", after=event, before=DEAL
        )
    stored = _text(engine)
    assert (
        EMAIL.findall(stored) == [] and "7946 0958" not in stored and "should-never-be-stored" not in stored
    )
    assert "Jane" not in stored and "Sam Seller" not in stored
    for kept in ("006Hp0000000007IAA", "138440.0", "2026-11-20", "Beacon Telecom"):
        assert kept in stored
    with engine.connect() as conn:
        assert audit.verify(conn).ok  # the chain seals what was stored
    engine.dispose()


def test_retention_prunes_old_payloads_and_keeps_the_rows(db_url: str, tmp_path: Path) -> None:
    engine = sealed_engine(db_url, tmp_path)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=40), now - timedelta(days=2)
    with engine.begin() as conn:
        for n, (received, dispatched) in enumerate([(old, True), (old, False), (new, True)]):
            repo.insert_ignore(
                conn,
                inbox,
                {
                    "source": "salesforce",
                    "source_event_id": f"ev{n}",
                    "event_id": f"e{n}",
                    "event_type": "opportunity.closed_won",
                    "subject": f"Opportunity/{n}",
                    "correlation_id": f"c{n}",
                    "event_time": received,
                    "received_at": received,
                    "payload": {"id": f"e{n}", "payload": {"Amount": 10}},
                    "duplicates": 0,
                    "dispatched_at": received if dispatched else None,
                },
            )
        for n, (touched, status) in enumerate(
            [(old, "resolved"), (old, "open"), (new, "ignored"), (old, "ignored")]
        ):
            case = cases.open_case(
                conn,
                {"code": "deal.malformed", "message": "m"},
                flow="f",
                subject=f"S/{n}",
                correlation_id=None,
                payload={"n": n},
            )
            conn.execute(
                sa.update(exception_case)
                .where(exception_case.c.id == case)
                .values(status=status, updated_at=touched)
            )
    report = retention.prune(engine, days=30)
    assert (report.inbox_payloads, report.case_payloads) == (1, 2)
    assert retention.prune(engine, days=30).inbox_payloads == 0  # already pruned
    with engine.connect() as conn:
        payloads = dict(conn.execute(sa.select(inbox.c.source_event_id, inbox.c.payload)).all())
        kept_cases = dict(conn.execute(sa.select(exception_case.c.subject, exception_case.c.payload)).all())
    assert (
        set(payloads["ev0"]) == {"pruned_at"}
        and payloads["ev1"]["id"] == "e1"
        and payloads["ev2"]["id"] == "e2"
    )
    assert kept_cases == {"S/0": None, "S/1": {"n": 1}, "S/2": {"n": 2}, "S/3": None}
    engine.dispose()


def test_a_demo_run_leaves_no_email_and_no_secret_in_its_database_and_log(tmp_path: Path) -> None:
    from quote2cash.cli.demo import run_demo

    workdir = tmp_path / "demo"
    summary = run_demo(
        deals=8, seed_value=7, workdir=workdir, console=Console(file=io.StringIO()), quiet=True, faults=False
    )
    assert summary["audit_chain_verified"] and summary["flows_completed"] > 0
    secrets = [
        *SANDBOX_ENV.values(),
        SANDBOX_AUDIT_KEY,
        (workdir / "hub.sqlite.audit-key").read_text().strip(),
        KEY.decode(),
    ]
    engine = sa.create_engine(f"sqlite:///{workdir / 'hub.sqlite'}")
    found: list[str] = []
    scanned = 0
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                text = " ".join(str(v) for v in row if v is not None)
                scanned += 1
                found += [f"{table}: {m}" for m in EMAIL.findall(text)]
                found += [f"{table}: a secret" for s in secrets if s in text]
    engine.dispose()
    log = (workdir / "hub.log").read_text()
    found += [f"log: {m}" for m in EMAIL.findall(log)] + ["log: a secret" for s in secrets if s in log]
    assert scanned > 100 and log  # the scan read a real run
    assert found == []
    # The scanner itself sees an address where there is one.
    assert EMAIL.findall(json.dumps(DEAL)) != []
