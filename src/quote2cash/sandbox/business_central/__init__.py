"""The Business Central sandbox: API v2.0 (OData v4, ``$batch``) and Entra ID client credentials on loopback."""

from quote2cash.sandbox.business_central.app import BusinessCentralSandbox
from quote2cash.sandbox.business_central.errors import BcError

__all__ = ["BcError", "BusinessCentralSandbox"]
