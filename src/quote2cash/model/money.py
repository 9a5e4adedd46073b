"""Money: a Decimal amount with an ISO 4217 currency, never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Minor units per currency; everything else has two.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]


class Money(BaseModel):
    """An amount in one currency. Arithmetic refuses to mix currencies."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: CurrencyCode

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError("money amounts must be given as Decimal, int or str, never float")
        return value

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        """Build from an amount and a currency code."""
        return cls(amount=Decimal(amount), currency=currency.upper())

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        """Build from an integer count of minor units (cents)."""
        places = _MINOR_UNITS.get(currency.upper(), 2)
        return cls(amount=Decimal(minor).scaleb(-places), currency=currency.upper())

    def to_minor(self) -> int:
        """The amount in integer minor units, rounded half-even."""
        places = _MINOR_UNITS.get(self.currency, 2)
        return int(self.amount.scaleb(places).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    def rounded(self) -> Money:
        """Rounded to the currency's minor unit."""
        places = _MINOR_UNITS.get(self.currency, 2)
        quantum = Decimal(1).scaleb(-places)
        return Money(amount=self.amount.quantize(quantum, rounding=ROUND_HALF_EVEN), currency=self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(amount=self.amount * Decimal(factor), currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.rounded().amount:,} {self.currency}"
