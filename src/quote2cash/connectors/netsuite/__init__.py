"""NetSuite connector: SuiteTalk REST records, SuiteQL and the batch RESTlet with token-based auth."""

from quote2cash.connectors.netsuite.batch import BatchResult
from quote2cash.connectors.netsuite.client import NetSuiteClient, restlet_base_url
from quote2cash.connectors.netsuite.oauth1 import TbaCredentials

__all__ = ["BatchResult", "NetSuiteClient", "TbaCredentials", "restlet_base_url"]
