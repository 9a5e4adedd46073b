"""Settings of a Certinia PSA system: the Salesforce org it is installed in (OAuth 2.0 client credentials)."""

from __future__ import annotations

from typing import Literal

from quote2cash.registry import SystemSettings


class CertiniaSettings(SystemSettings):
    """A Salesforce org with the Certinia PSA package (the same auth as a Salesforce system).

    Attributes:
        base_url: the login host (``https://login.salesforce.com`` or the org's My Domain).
        client_id: the connected app's consumer key.
        client_secret_env: the environment variable holding its consumer secret.
        api_version: the REST API version.
        link_crm_records: the CRM is this same org, so a project links the CRM account and
            opportunity it was made from (``pse__Account__c``, ``pse__Opportunity__c``).
    """

    kind: Literal["certinia"] = "certinia"
    client_id: str
    client_secret_env: str
    api_version: str = "v62.0"
    link_crm_records: bool = True
