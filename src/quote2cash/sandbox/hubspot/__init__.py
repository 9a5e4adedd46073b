"""A HubSpot CRM v3 emulator: objects, properties, search, batches, associations v4, signed webhooks."""

from quote2cash.sandbox.hubspot.app import HubSpotSandbox
from quote2cash.sandbox.hubspot.errors import HubSpotError
from quote2cash.sandbox.hubspot.webhooks import Subscription, sign_v3

__all__ = ["HubSpotError", "HubSpotSandbox", "Subscription", "sign_v3"]
