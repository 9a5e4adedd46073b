"""The whole error taxonomy of quote2cash.

Retry decisions are made on the *type* of an error, never by parsing its
message::

    HubError                      code, message, system, record, owner
    ├── TransientError            retried with backoff + jitter (timeouts, 429, 5xx)
    ├── BusinessRuleError         goes to a person via the exception queue, never retried blindly
    │   └── ProbableDuplicateError  identity match against an existing record
    ├── VendorPayloadError        a vendor answered something we cannot read (poison: dead-letter)
    ├── AuthError                 credentials rejected; a configuration problem, not retried
    └── ConfigError               configuration or mapping file is invalid (names the file and field)
        └── MappingError          a declarative mapping is invalid or cannot map a value

Every error serialises the same way (``to_dict``) into the exception queue,
the API (RFC 9457 problem details) and the audit log.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Owner(StrEnum):
    """The team that acts on an exception case."""

    SALES_OPS = "sales_ops"
    PMO = "pmo"
    FINANCE = "finance"
    INTEGRATION = "integration"


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    code: str = "hub.error"
    owner: Owner = Owner.INTEGRATION
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        system: str | None = None,
        record: str | None = None,
        owner: Owner | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if owner is not None:
            self.owner = owner
        self.system = system
        self.record = record
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """Serialise for the exception queue, the audit log and problem details."""
        return {
            "code": self.code,
            "message": self.message,
            "kind": type(self).__name__,
            "retryable": self.retryable,
            "owner": str(self.owner),
            "system": self.system,
            "record": self.record,
            "details": self.details,
        }

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.system, self.record) if p)
        return f"[{self.code}] {self.message}" + (f" ({where})" if where else "")


class TransientError(HubError):
    """A failure that may succeed if retried: timeout, throttling, server error."""

    code = "transient.error"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BusinessRuleError(HubError):
    """A record breaks a business rule; a person must fix it, retrying cannot help."""

    code = "business.rule"


class ProbableDuplicateError(BusinessRuleError):
    """The record probably already exists in the target under another id."""

    code = "customer.probable_duplicate"
    owner = Owner.SALES_OPS


class VendorPayloadError(HubError):
    """A vendor answered with a body we cannot interpret; the payload is kept."""

    code = "vendor.malformed_payload"


class AuthError(HubError):
    """A vendor rejected the hub's credentials."""

    code = "vendor.auth_failed"


class ConfigError(HubError):
    """Configuration is invalid; the message names the file and the field."""

    code = "config.invalid"


class MappingError(ConfigError):
    """A mapping file is invalid or a value has no mapping."""

    code = "mapping.invalid"


__all__ = [
    "AuthError",
    "BusinessRuleError",
    "ConfigError",
    "HubError",
    "MappingError",
    "Owner",
    "ProbableDuplicateError",
    "TransientError",
    "VendorPayloadError",
]
