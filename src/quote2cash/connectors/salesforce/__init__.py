"""Salesforce REST connector: SOQL queries, sObject writes, upserts by external id, Collections."""

from quote2cash.connectors.salesforce.client import ItemResult, SalesforceClient

__all__ = ["ItemResult", "SalesforceClient"]
