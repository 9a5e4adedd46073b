"""Salesforce connector: the CRM port over SOQL, sObject writes and Collections."""

from quote2cash.connectors.salesforce.adapter import SalesforceCrm, build
from quote2cash.connectors.salesforce.client import ItemResult, SalesforceClient
from quote2cash.connectors.salesforce.settings import SalesforceSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="salesforce", roles=("crm",), settings=SalesforceSettings, build=build)

__all__ = ["CONNECTOR", "ItemResult", "SalesforceClient", "SalesforceCrm", "SalesforceSettings"]
