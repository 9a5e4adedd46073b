"""HubSpot connector: the CRM port over the official ``hubspot-api-client`` SDK."""

from quote2cash.connectors.hubspot.adapter import (
    FIRM_PROPERTIES,
    WRITE_BACK_PROPERTIES,
    HubSpotCrm,
    build,
)
from quote2cash.connectors.hubspot.client import HubSpotClient
from quote2cash.connectors.hubspot.settings import HubSpotSettings
from quote2cash.connectors.hubspot.webhooks import verify_v3
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="hubspot", roles=("crm",), settings=HubSpotSettings, build=build)

__all__ = [
    "CONNECTOR",
    "FIRM_PROPERTIES",
    "WRITE_BACK_PROPERTIES",
    "HubSpotClient",
    "HubSpotCrm",
    "HubSpotSettings",
    "verify_v3",
]
