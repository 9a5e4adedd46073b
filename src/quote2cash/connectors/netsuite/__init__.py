"""NetSuite connector: SuiteTalk REST records and SuiteQL with token-based auth."""

from quote2cash.connectors.netsuite.client import NetSuiteClient
from quote2cash.connectors.netsuite.oauth1 import TbaCredentials

__all__ = ["NetSuiteClient", "TbaCredentials"]
