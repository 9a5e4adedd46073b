"""quote2cash — an integration hub linking CRM, PSA, ERP and billing for professional-services firms.

The public Python API: load a configuration, launch the hub, the error
taxonomy every flow and connector shares, and what a connector author needs:
the role ports, the connector registry and the settings base class
(see ``docs/connectors.md``).
"""

from quote2cash.config import HubConfig, load_config
from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    ConfigError,
    HubError,
    InDoubtError,
    MappingError,
    NotFoundError,
    ProbableDuplicateError,
    TransientError,
    UsageError,
    VendorPayloadError,
)
from quote2cash.flows import launch_hub
from quote2cash.ports import Billing, Capabilities, Crm, Erp, Psa
from quote2cash.registry import Connector, Limits, SystemSettings, register
from quote2cash.runtime.hub import Hub

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Billing",
    "BusinessRuleError",
    "Capabilities",
    "ConfigError",
    "Connector",
    "Crm",
    "Erp",
    "Hub",
    "HubConfig",
    "HubError",
    "InDoubtError",
    "Limits",
    "MappingError",
    "NotFoundError",
    "ProbableDuplicateError",
    "Psa",
    "SystemSettings",
    "TransientError",
    "UsageError",
    "VendorPayloadError",
    "__version__",
    "launch_hub",
    "load_config",
    "register",
]
