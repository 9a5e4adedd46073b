"""Settings of a Business Central system (API v2.0, Entra ID client credentials)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quote2cash.registry import SystemSettings


class BusinessCentralSettings(SystemSettings):
    """A Business Central environment, reached as an Entra ID app (service-to-service).

    Attributes:
        base_url: the API host, ``https://api.businesscentral.dynamics.com``.
        tenant: the Entra ID tenant (GUID or domain) of the environment.
        environment: the environment name (``production``, ``sandbox``).
        client_id: the app registration's application (client) id.
        client_secret_env: the environment variable holding the app's client secret.
        authority_host: the Entra ID host; the authority is ``{authority_host}/{tenant}``.
        scope: the scope of the token asked for.
        ca_bundle: a PEM file of certificate authorities to trust for the identity host
            (and the API host), for private or test deployments; None: the system's.
        department_dimension: the dimension whose values are the departments (cost centres).
        class_dimension: the dimension whose values are reporting classes (None: no classes).
        local_currencies: company id or name -> ISO code of its local currency, which
            Business Central leaves blank on customers and does not list among currencies.
        time_journal / expense_journal: the general journal batch (``Code[10]``) the hub
            writes its time and expense lines to, in each company (created when missing).
    """

    kind: Literal["business_central"] = "business_central"
    base_url: str = Field(default="https://api.businesscentral.dynamics.com", pattern=r"^https?://")
    tenant: str
    environment: str = "production"
    client_id: str
    client_secret_env: str
    authority_host: str = Field(default="https://login.microsoftonline.com", pattern=r"^https://")
    scope: str = "https://api.businesscentral.dynamics.com/.default"
    ca_bundle: str | None = None
    department_dimension: str = "DEPARTMENT"
    class_dimension: str | None = None
    local_currencies: dict[str, str] = Field(default_factory=dict)
    time_journal: str = Field(default="Q2CTIME", max_length=10)
    expense_journal: str = Field(default="Q2CEXP", max_length=10)
