"""A Stripe Billing emulator: customers, catalogue, invoices, subscriptions, credit notes, webhooks."""

from quote2cash.sandbox.stripe._webhooks import Attempt, Deliverer, sign
from quote2cash.sandbox.stripe._wire import StripeError
from quote2cash.sandbox.stripe.app import DEFAULT_KEY, Hold, StripeSandbox

__all__ = ["DEFAULT_KEY", "Attempt", "Deliverer", "Hold", "StripeError", "StripeSandbox", "sign"]
