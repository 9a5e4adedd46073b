"""Stripe connector: the billing port over the official ``stripe`` SDK."""

from quote2cash.connectors.stripe.adapter import StripeBilling, build
from quote2cash.connectors.stripe.client import LimitedHttpClient, StripeApi, idempotency_key
from quote2cash.connectors.stripe.settings import StripeSettings
from quote2cash.connectors.stripe.webhooks import billing_event, verify
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="stripe", roles=("billing",), settings=StripeSettings, build=build)

__all__ = [
    "CONNECTOR",
    "LimitedHttpClient",
    "StripeApi",
    "StripeBilling",
    "StripeSettings",
    "billing_event",
    "idempotency_key",
    "verify",
]
