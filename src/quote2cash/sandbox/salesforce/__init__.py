"""A Salesforce REST emulator: OAuth client credentials, SOQL, sObjects, Collections."""

from quote2cash.sandbox.salesforce.app import SalesforceSandbox
from quote2cash.sandbox.salesforce.errors import SalesforceError

__all__ = ["SalesforceError", "SalesforceSandbox"]
