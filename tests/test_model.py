"""Canonical model: money never floats, events are timezone-aware, schemas are written."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from quote2cash.cli import app
from quote2cash.model import BusinessEvent, Invoice, InvoiceLine, Money, from_minor, to_minor


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(ValidationError, match="never float"):
        Money(amount=0.1, currency="USD")  # type: ignore[arg-type]
    total = Money.of("0.10", "USD") + Money.of("0.20", "USD")
    assert total.amount == Decimal("0.30")
    with pytest.raises(ValueError, match="cannot combine USD with EUR"):
        _ = total + Money.of(1, "EUR")
    assert Money.from_minor(12345, "USD").amount == Decimal("123.45")
    assert Money.of("1.005", "USD").to_minor() == 100  # half-even


def test_event_time_must_be_aware() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        BusinessEvent(
            type="opportunity.closed_won", source="salesforce", subject="x", time=datetime(2026, 1, 1)
        )


def test_schema_command_writes_json_schemas(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_path.iterdir()}
    assert {"Customer.schema.json", "Opportunity.schema.json", "BusinessEvent.schema.json"} <= names
    assert '"currency"' in (tmp_path / "Money.schema.json").read_text()


@pytest.mark.parametrize(
    ("currency", "amount", "minor", "rounded"),
    [
        ("JPY", "1234.5", 1234, "1234"),  # zero decimals: half-even to the yen
        ("JPY", "1235.5", 1236, "1236"),
        ("USD", "10.005", 1000, "10.00"),
        ("USD", "10.015", 1002, "10.02"),
        ("BHD", "1.2345", 1234, "1.234"),  # three decimals: fils
        ("BHD", "1.2355", 1236, "1.236"),
    ],
)
def test_money_rounds_by_the_currency_minor_unit(
    currency: str, amount: str, minor: int, rounded: str
) -> None:
    money = Money.of(amount, currency)
    assert money.to_minor() == minor
    assert str(money.rounded().amount) == rounded
    assert Money.from_minor(minor, currency).amount == Decimal(rounded)
    assert to_minor(Decimal(amount), currency) == minor and from_minor(minor, currency) == Decimal(rounded)


def test_an_invoice_totals_its_lines_in_its_currency_minor_unit() -> None:
    invoice = Invoice(
        source_system="quote2cash",
        source_id="INV-1",
        customer_id="001",
        currency="JPY",
        lines=[
            InvoiceLine(description="Milestone 1", unit_amount=Money.of("150000.4", "JPY")),
            InvoiceLine(description="T&M", quantity=Decimal("2.5"), unit_amount=Money.of("20000", "JPY")),
        ],
    )
    assert invoice.total() == Money.of("200000", "JPY")
    with pytest.raises(ValidationError):
        Invoice(source_system="q", source_id="INV-2", customer_id="001", currency="USD", lines=[])
