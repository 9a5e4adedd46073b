"""quote2cash — an integration hub linking CRM, PSA, ERP and billing for professional-services firms.

The public Python API: load a configuration, launch the hub, and the error
taxonomy every flow and connector shares.
"""

from quote2cash.config import HubConfig, load_config
from quote2cash.errors import (
    AuthError,
    BusinessRuleError,
    ConfigError,
    HubError,
    MappingError,
    ProbableDuplicateError,
    TransientError,
    VendorPayloadError,
)
from quote2cash.flows import launch_hub
from quote2cash.runtime.hub import Hub

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BusinessRuleError",
    "ConfigError",
    "Hub",
    "HubConfig",
    "HubError",
    "MappingError",
    "ProbableDuplicateError",
    "TransientError",
    "VendorPayloadError",
    "__version__",
    "launch_hub",
    "load_config",
]
