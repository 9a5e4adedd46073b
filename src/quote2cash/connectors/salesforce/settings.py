"""Settings of a Salesforce system (OAuth 2.0 client credentials)."""

from __future__ import annotations

from typing import Literal

from quote2cash.registry import SystemSettings


class SalesforceSettings(SystemSettings):
    """A Salesforce org.

    Attributes:
        base_url: the login host (``https://login.salesforce.com`` or the org's My Domain).
        client_id: the connected app's consumer key.
        client_secret_env: the environment variable holding its consumer secret.
        api_version: the REST API version.
    """

    kind: Literal["salesforce"] = "salesforce"
    client_id: str
    client_secret_env: str
    api_version: str = "v62.0"
