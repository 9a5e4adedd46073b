"""Amounts as Stripe counts them, which is not always ISO 4217's minor unit.

Stripe counts most currencies in hundredths, its zero-decimal currencies
(JPY, KRW, …) in whole units, and five three-decimal currencies (BHD, JOD,
KWD, OMR, TND) in thousandths, of which it accepts only multiples of ten.
ISK is zero-decimal in ISO 4217 but Stripe still counts it in hundredths
(whole krónur only). Converting through :func:`to_stripe` and
:func:`from_stripe` keeps the hub's ``Decimal`` amounts exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
#: Smallest amount Stripe accepts, in its own units, where it is more than one.
_STEP = {**dict.fromkeys(THREE_DECIMAL, 10), "ISK": 100}


def exponent(currency: str) -> int:
    """Decimal places of Stripe's unit for a currency (JPY 0, USD 2, BHD 3)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def to_stripe(amount: Decimal, currency: str) -> int:
    """An amount in Stripe's integer units, rounded half-even to the smallest unit Stripe accepts."""
    step = _STEP.get(currency.upper(), 1)
    units = amount.scaleb(exponent(currency)) / step
    return int(units.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)) * step


def from_stripe(units: int | str | Decimal, currency: str) -> Decimal:
    """Stripe's units (an integer, or a decimal string such as ``unit_amount_decimal``) as an amount."""
    return Decimal(str(units)).scaleb(-exponent(currency))


def exact(amount: Decimal, currency: str) -> bool:
    """Whether Stripe can carry the amount without rounding."""
    return from_stripe(to_stripe(amount, currency), currency) == amount


__all__ = ["THREE_DECIMAL", "ZERO_DECIMAL", "exact", "exponent", "from_stripe", "to_stripe"]
