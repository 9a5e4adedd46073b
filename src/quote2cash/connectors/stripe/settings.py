"""Settings of a Stripe Billing account."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quote2cash.registry import SystemSettings


class StripeSettings(SystemSettings):
    """A Stripe account reached with a secret key. Its webhooks are taken by the HTTP API
    (``api.webhooks.stripe``, with the endpoint's ``whsec_`` signing secret).

    Attributes:
        base_url: the API host (``https://api.stripe.com``; a sandbox on loopback in tests).
        api_key_env: the environment variable holding the secret key (``sk_live_…``/``sk_test_…``).
        api_version: the ``Stripe-Version`` every request pins (None: the SDK's own).
        days_until_due: payment terms of invoices sent to customers, in days.
        statement_descriptor: what a customer's card statement shows (None: the account's).
    """

    kind: Literal["stripe"] = "stripe"
    base_url: str = Field(default="https://api.stripe.com", pattern=r"^https?://")
    api_key_env: str
    api_version: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
    days_until_due: int = Field(default=30, ge=0, le=3650)
    statement_descriptor: str | None = Field(default=None, max_length=22)
