"""Business Central connector: the ERP port over API v2.0 (OData v4, ``$batch``), Entra ID tokens from msal."""

from quote2cash.connectors.business_central.adapter import (
    BusinessCentralErp,
    build,
    document_number,
    number_for,
)
from quote2cash.connectors.business_central.auth import MsalAuth
from quote2cash.connectors.business_central.client import BatchAnswer, BatchOperation, BusinessCentralClient
from quote2cash.connectors.business_central.settings import BusinessCentralSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="business_central", roles=("erp",), settings=BusinessCentralSettings, build=build)

__all__ = [
    "CONNECTOR",
    "BatchAnswer",
    "BatchOperation",
    "BusinessCentralClient",
    "BusinessCentralErp",
    "BusinessCentralSettings",
    "MsalAuth",
    "build",
    "document_number",
    "number_for",
]
