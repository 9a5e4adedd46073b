"""NetSuite connector: the ERP port over SuiteTalk REST records, SuiteQL and the batch RESTlet (TBA)."""

from quote2cash.connectors.netsuite.adapter import NetSuiteErp, build
from quote2cash.connectors.netsuite.auth import TbaCredentials, TokenAuth
from quote2cash.connectors.netsuite.batch import BatchResult
from quote2cash.connectors.netsuite.client import NetSuiteClient, restlet_base_url
from quote2cash.connectors.netsuite.settings import NetSuiteSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="netsuite", roles=("erp",), settings=NetSuiteSettings, build=build)

__all__ = [
    "CONNECTOR",
    "BatchResult",
    "NetSuiteClient",
    "NetSuiteErp",
    "NetSuiteSettings",
    "TbaCredentials",
    "TokenAuth",
    "restlet_base_url",
]
