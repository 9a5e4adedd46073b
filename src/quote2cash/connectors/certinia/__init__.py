"""Certinia PSA connector: the PSA port over the ``pse__`` objects of a Salesforce org.

It speaks through the Salesforce connector's client (OAuth client credentials,
SOQL paging, sObject Collections); only the objects and their meaning differ.
"""

from quote2cash.connectors.certinia.adapter import CertiniaPsa, build
from quote2cash.connectors.certinia.settings import CertiniaSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="certinia", roles=("psa",), settings=CertiniaSettings, build=build)

__all__ = ["CONNECTOR", "CertiniaPsa", "CertiniaSettings"]
