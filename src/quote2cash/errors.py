"""The whole error taxonomy of quote2cash, and the catalogue of stable codes.

Retry decisions are made on the *type* of an error, never by parsing its
message or its code::

    HubError                      code, message, system, record, owner
    ├── TransientError            retried with backoff + jitter (timeouts, 429, 5xx)
    │   └── InDoubtError          a write may have been applied: look it up before sending again
    ├── BusinessRuleError         goes to a person via the exception queue, never retried blindly
    │   ├── ProbableDuplicateError  identity match against an existing record
    │   └── NotFoundError         what was asked for does not exist (a case, a vendor record)
    ├── VendorPayloadError        a vendor sent data we cannot read (poison: kept for replay)
    ├── AuthError                 credentials rejected; a configuration problem, not retried
    ├── UsageError                a command or API call was given invalid arguments
    └── ConfigError               configuration or mapping file is invalid (names the file and field)
        └── MappingError          a declarative mapping is invalid or cannot map a value

Every code a hub error can carry is in :data:`CATALOGUE`, with the team that
owns it, whether it is retryable, the HTTP status the API answers with, and
a sentence a finance or PMO user understands. Vendor codes (``INVALID_KEY_OR_REF``,
``FIELD_CUSTOM_VALIDATION_EXCEPTION``) never become hub codes: they are kept
in ``details["vendor_code"]``.

Every error serialises the same way (``to_dict``) into the exception queue,
the API (RFC 9457 problem details) and the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Owner(StrEnum):
    """The team that acts on an exception case."""

    SALES_OPS = "sales_ops"
    PMO = "pmo"
    FINANCE = "finance"
    INTEGRATION = "integration"


@dataclass(frozen=True)
class ErrorCode:
    """One stable code of the catalogue.

    Attributes:
        code: the dotted code shared by cases, the API, the console and the audit log.
        owner: the team that acts on it.
        retryable: whether retrying can help (only transient failures).
        http_status: the status of an API answer that carries it.
        meaning: what it means and what to do, for the owning team.
    """

    code: str
    owner: Owner
    retryable: bool
    http_status: int
    meaning: str


_S, _P, _F, _I = Owner.SALES_OPS, Owner.PMO, Owner.FINANCE, Owner.INTEGRATION

CATALOGUE: dict[str, ErrorCode] = {
    e.code: e
    for e in [
        # -- vendors, transport --------------------------------------------------------
        ErrorCode(
            "vendor.unreachable", _I, True, 503, "The system could not be reached; retried automatically."
        ),
        ErrorCode(
            "vendor.timeout", _I, True, 504, "The system did not answer in time; retried automatically."
        ),
        ErrorCode("vendor.throttled", _I, True, 503, "The system asked the hub to slow down (HTTP 429)."),
        ErrorCode("vendor.server_error", _I, True, 502, "The system failed with a server error (5xx)."),
        ErrorCode(
            "vendor.write_in_doubt",
            _I,
            True,
            504,
            "A write got no answer; the hub looks the record up before it sends it again.",
        ),
        ErrorCode(
            "vendor.retries_exhausted",
            _I,
            False,
            503,
            "The system kept failing after every retry. Resubmit the case once it is reachable.",
        ),
        ErrorCode(
            "vendor.auth_failed",
            _I,
            False,
            502,
            "The system rejected the hub's credentials. Check the token or keys configured for it.",
        ),
        ErrorCode(
            "vendor.malformed_payload",
            _I,
            False,
            502,
            "The system sent data the hub cannot read; the payload is kept. Fix the record at the source.",
        ),
        ErrorCode(
            "vendor.rejected",
            _I,
            False,
            422,
            "The system refused the write; its own code and message are in the details.",
        ),
        ErrorCode("vendor.record_not_found", _I, False, 404, "The record does not exist in the system."),
        ErrorCode(
            "vendor.ambiguous_match",
            _I,
            False,
            409,
            "More than one record in the system carries the hub's external id. Remove the duplicate.",
        ),
        ErrorCode(
            "vendor.reader_failed",
            _I,
            True,
            502,
            "Reading the PSA's changes failed part-way; the next run continues from the cursor.",
        ),
        # -- flows -----------------------------------------------------------------------
        ErrorCode(
            "flow.unexpected_error",
            _I,
            False,
            500,
            "The flow stopped on an error the hub did not expect. The case keeps the input for replay.",
        ),
        ErrorCode(
            "deal.malformed",
            _S,
            False,
            422,
            "The deal holds a value the hub cannot read (e.g. a non-numeric amount). Correct it in the CRM.",
        ),
        ErrorCode(
            "deal.not_closed_won",
            _S,
            False,
            422,
            "The deal is no longer closed-won with approved terms.",
        ),
        ErrorCode(
            "deal.currency_not_allowed",
            _S,
            False,
            422,
            "The deal is in a currency its legal entity does not invoice in. Correct the deal in the CRM.",
        ),
        # -- customer master (F1) ----------------------------------------------------------
        ErrorCode(
            "customer.unknown_legal_entity", _S, False, 422, "The account names no known legal entity."
        ),
        ErrorCode(
            "customer.subsidiary_inactive", _F, False, 422, "The legal entity's ERP subsidiary is inactive."
        ),
        ErrorCode(
            "customer.currency_not_allowed",
            _F,
            False,
            422,
            "The currency is not allowed for the legal entity.",
        ),
        ErrorCode("customer.payment_terms_invalid", _F, False, 422, "The payment terms are not allowed."),
        ErrorCode(
            "customer.tax_region_invalid", _F, False, 422, "The tax region is not valid for the entity."
        ),
        ErrorCode(
            "customer.currency_unknown_in_erp", _F, False, 422, "The currency is not set up in the ERP."
        ),
        ErrorCode(
            "customer.payment_terms_unknown_in_erp",
            _F,
            False,
            422,
            "The payment terms do not exist in the ERP.",
        ),
        ErrorCode(
            "customer.probable_duplicate",
            _S,
            False,
            409,
            "The account looks like an existing ERP customer. Link it, or create a new customer.",
        ),
        ErrorCode(
            "customer.other_entity_match",
            _F,
            False,
            409,
            "The account matches an ERP customer of another legal entity, which is never re-used across "
            "entities. Create this entity's customer, link it to a customer of this entity, or fix the CRM.",
        ),
        # -- governance ----------------------------------------------------------------------
        ErrorCode(
            "input.too_long",
            _S,
            False,
            422,
            "A value is longer than the target system's field holds; it was not truncated. Shorten it.",
        ),
        ErrorCode(
            "input.out_of_range",
            _F,
            False,
            422,
            "An amount or quantity is outside what the target system or the currency allows.",
        ),
        # -- PSA -----------------------------------------------------------------------------
        ErrorCode(
            "psa.template_missing", _P, False, 422, "The PSA has no project template for the billing model."
        ),
        ErrorCode("psa.role_unknown", _P, False, 422, "The deal asks for a role the PSA does not know."),
        ErrorCode(
            "psa.currency_mismatch",
            _F,
            False,
            422,
            "An amount for the PSA project is in another currency than the project; it was not written.",
        ),
        # -- time and expenses (F4, F5) --------------------------------------------------
        *[
            ErrorCode(f"{kind}.{code}", owner, False, 422, meaning)
            for kind in ("time", "expense")
            for code, owner, meaning in (
                ("project_unknown", _P, "The entry is booked on a workspace with no ERP project."),
                ("project_closed", _P, "The entry is booked on a project closed for it."),
                ("legal_entity_invalid", _F, "The project's legal entity or ERP subsidiary is not active."),
                ("cost_centre_invalid", _F, "The project's cost centre is not an active ERP department."),
            )
        ],
        ErrorCode("time.task_unknown", _P, False, 422, "The time entry is booked on an unknown task."),
        ErrorCode("time.task_closed", _P, False, 422, "The time entry is booked on a closed task."),
        ErrorCode(
            "time.billable_mismatch", _P, False, 422, "The billable flag contradicts the billing model."
        ),
        ErrorCode("time.rate_unknown", _F, False, 422, "The rate card has no rate for the role."),
        ErrorCode("time.rate_mismatch", _F, False, 422, "The rate differs from the rate card."),
        ErrorCode(
            "time.cost_rate_unknown",
            _F,
            False,
            422,
            "Non-billable time is posted at its cost, and no cost rate is set for the person's role.",
        ),
        ErrorCode("expense.category_missing", _P, False, 422, "The expense has no category."),
        ErrorCode(
            "expense.billable_mismatch", _P, False, 422, "The billable flag contradicts the billing model."
        ),
        ErrorCode(
            "expense.currency_mismatch", _F, False, 422, "The expense currency differs from the project's."
        ),
        ErrorCode(
            "erp.period_closed",
            _F,
            False,
            422,
            "The entry falls in a closed accounting period; it is held until finance reopens it or re-dates it.",
        ),
        ErrorCode(
            "erp.posting_rejected",
            _F,
            False,
            422,
            "The ERP refused a posting; its own code and message are in the details.",
        ),
        ErrorCode(
            "erp.project_missing",
            _F,
            False,
            422,
            "Past its legal entity's cutover the posting goes to the new ERP, which does not hold its project.",
        ),
        # -- reconciliation (F9) -----------------------------------------------------------
        ErrorCode("recon.missing", _F, False, 409, "Approved in the PSA, not posted in the ERP."),
        ErrorCode("recon.duplicated", _F, False, 409, "Posted more than once in the ERP."),
        ErrorCode("recon.amount_mismatch", _F, False, 409, "ERP amount differs from the PSA's."),
        ErrorCode("recon.posted_not_approved", _F, False, 409, "Posted in the ERP, not approved in the PSA."),
        ErrorCode(
            "recon.invoice_not_in_erp", _F, False, 409, "Invoiced in the billing system, not in the ERP."
        ),
        ErrorCode(
            "recon.invoice_not_billed", _F, False, 409, "An AR invoice in the ERP has no billing invoice."
        ),
        ErrorCode(
            "recon.invoice_mismatch",
            _F,
            False,
            409,
            "Billing and ERP invoice differ in amount, tax or status.",
        ),
        ErrorCode(
            "recon.deal_without_project", _S, False, 409, "A closed-won deal never became a PSA project."
        ),
        ErrorCode("recon.project_without_deal", _P, False, 409, "A PSA project has no closed-won deal."),
        # -- billing (F6, F7, F8) ------------------------------------------------------------
        ErrorCode(
            "billing.contract_incomplete",
            _S,
            False,
            422,
            "The contract lacks what its billing model needs (an amount, dates); complete the deal in the CRM.",
        ),
        ErrorCode(
            "billing.no_milestones",
            _P,
            False,
            422,
            "A milestone contract's PSA project has no milestones to bill; add them in the PSA.",
        ),
        ErrorCode(
            "billing.rate_unknown",
            _F,
            False,
            422,
            "Approved billable time has no rate on the project's rate card; it stays unbilled until one is set.",
        ),
        ErrorCode(
            "billing.invoice_rejected",
            _F,
            False,
            422,
            "The billing system refused the invoice; see its reason.",
        ),
        ErrorCode(
            "billing.ar_rejected", _F, False, 422, "The ERP refused the AR invoice, payment or credit memo."
        ),
        ErrorCode(
            "billing.system_missing",
            _I,
            False,
            500,
            "A flow needs a billing system, or a capability of a system, that is not configured.",
        ),
        # -- mappings and configuration -----------------------------------------------------
        ErrorCode("mapping.invalid", _I, False, 500, "A mapping file is invalid."),
        ErrorCode("mapping.unmapped_value", _I, False, 422, "A value has no entry in a value map."),
        ErrorCode(
            "mapping.required_field_missing", _I, False, 422, "A record lacks a field the mapping needs."
        ),
        ErrorCode(
            "mapping.invalid_value", _I, False, 422, "A value cannot be converted as the mapping says."
        ),
        ErrorCode("mapping.invalid_record", _I, False, 422, "A mapped record breaks the canonical model."),
        ErrorCode(
            "config.invalid", _I, False, 500, "The configuration is invalid; the message names the field."
        ),
        ErrorCode("config.missing", _I, False, 400, "No configuration was given."),
        ErrorCode("config.unreadable", _I, False, 500, "The configuration file cannot be read."),
        ErrorCode("config.yaml", _I, False, 500, "The configuration file is not valid YAML."),
        ErrorCode("config.shape", _I, False, 500, "The configuration file has the wrong shape."),
        ErrorCode(
            "config.missing_secret", _I, False, 500, "An environment variable holding a secret is not set."
        ),
        ErrorCode("config.database_url", _I, False, 500, "The database URL is not supported."),
        ErrorCode("config.unknown_connector", _I, False, 500, "No installed connector has this kind."),
        ErrorCode(
            "config.role", _I, False, 500, "No system, or more than one, can play a role a flow needs."
        ),
        # -- operations (CLI and API) -------------------------------------------------------
        ErrorCode("case.not_found", _I, False, 404, "There is no such exception case."),
        ErrorCode("case.not_open", _I, False, 409, "The case is not open."),
        ErrorCode("case.no_replay", _I, False, 409, "The case's flow cannot be re-run from its payload."),
        ErrorCode("case.decision", _I, False, 400, "The decision given does not fit the case."),
        ErrorCode("case.reason_missing", _I, False, 400, "Ignoring a case needs a reason."),
        ErrorCode("case.not_quarantined", _I, False, 409, "The entry is not waiting in quarantine."),
        ErrorCode(
            "usage.invalid_argument", _I, False, 400, "An argument is invalid; the message says which."
        ),
        ErrorCode("run.not_found", _I, False, 404, "There is no such flow run."),
        # -- HTTP API and webhooks -----------------------------------------------------------
        ErrorCode(
            "api.unauthorized",
            _I,
            False,
            401,
            "The request carries no API token, or one the hub does not know.",
        ),
        ErrorCode("api.forbidden", _I, False, 403, "The API token lacks the scope this call needs."),
        ErrorCode("api.not_found", _I, False, 404, "There is no such resource."),
        ErrorCode("api.method_not_allowed", _I, False, 405, "The resource does not accept this method."),
        ErrorCode("api.too_large", _I, False, 413, "The request body is larger than the hub accepts."),
        ErrorCode(
            "api.malformed",
            _I,
            False,
            400,
            "The request cannot be read: a body that is not JSON of the expected shape, or a NUL character.",
        ),
        ErrorCode("api.busy", _I, True, 503, "The hub database is busy; send the request again shortly."),
        ErrorCode("token.not_found", _I, False, 404, "There is no such API token."),
        ErrorCode(
            "webhook.not_configured",
            _I,
            False,
            404,
            "The hub takes no webhooks from this source; configure its secret under api.webhooks.",
        ),
        ErrorCode(
            "webhook.signature_invalid",
            _I,
            False,
            401,
            "A webhook delivery's signature does not match its body under the source's shared secret.",
        ),
        ErrorCode(
            "webhook.stale",
            _I,
            False,
            401,
            "A webhook delivery is older than the replay window; it is refused as a possible replay.",
        ),
        ErrorCode(
            "webhook.org_mismatch",
            _I,
            False,
            401,
            "A Salesforce delivery names another organisation than the one configured.",
        ),
        ErrorCode(
            "webhook.malformed",
            _I,
            False,
            400,
            "A webhook delivery's body cannot be read; nothing was stored.",
        ),
        ErrorCode(
            "hub.startup_lock_timeout",
            _I,
            False,
            503,
            "Another worker held the database's start-up lock for too long; see whether it is stuck migrating.",
        ),
        ErrorCode("hub.error", _I, False, 500, "An error of the hub."),
        # -- security hardening ----------------------------------------------------------------
        ErrorCode(
            "config.audit",
            _I,
            False,
            500,
            "The audit chain's key or anchor file is missing or cannot be used; the message says which.",
        ),
        ErrorCode(
            "config.sandbox_not_local",
            _I,
            False,
            500,
            "A config marked as pointing at sandboxes names a system off loopback.",
        ),
        ErrorCode(
            "audit.unsealed",
            _I,
            False,
            500,
            "The audit trail was used without its key loaded; start the hub from its configuration.",
        ),
    ]
}


def lookup(code: str) -> ErrorCode:
    """The catalogue entry of a code (a generic entry for a code not in it)."""
    entry = CATALOGUE.get(code)
    if entry is None:
        return ErrorCode(code, Owner.INTEGRATION, False, 500, "An error of the hub.")
    return entry


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    The owner and HTTP status come from the catalogue entry of the code unless
    given; retryability comes from the error's type.
    """

    code: str = "hub.error"
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
        self.owner = owner or lookup(self.code).owner
        self.system = system
        self.record = record
        self.details: dict[str, Any] = dict(details or {})

    @property
    def http_status(self) -> int:
        """The HTTP status the API answers with."""
        return lookup(self.code).http_status

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

    code = "vendor.server_error"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InDoubtError(TransientError):
    """A write got no answer: the vendor may have applied it.

    It is never re-sent as it is: the step that made it runs again, and that
    step looks the record up (by external id or reference) before it writes.
    """

    code = "vendor.write_in_doubt"


class BusinessRuleError(HubError):
    """A record breaks a business rule; a person must fix it, retrying cannot help."""

    code = "hub.error"


class ProbableDuplicateError(BusinessRuleError):
    """The record probably already exists in the target under another id."""

    code = "customer.probable_duplicate"


class VendorPayloadError(HubError):
    """A vendor answered with a body we cannot interpret; the payload is kept."""

    code = "vendor.malformed_payload"


class AuthError(HubError):
    """A vendor rejected the hub's credentials."""

    code = "vendor.auth_failed"


class NotFoundError(BusinessRuleError):
    """What was asked for does not exist: an exception case, a run, a vendor record."""

    code = "vendor.record_not_found"


class UsageError(HubError):
    """A command or an API call was given arguments that cannot work."""

    code = "usage.invalid_argument"


class ConfigError(HubError):
    """Configuration is invalid; the message names the file and the field."""

    code = "config.invalid"


class MappingError(ConfigError):
    """A mapping file is invalid or a value has no mapping."""

    code = "mapping.invalid"


def error_from_dict(data: dict[str, Any]) -> HubError:
    """Rebuild a hub error from :meth:`HubError.to_dict` (e.g. a checkpointed step's failure)."""
    kinds: dict[str, type[HubError]] = {
        cls.__name__: cls
        for cls in (
            HubError,
            TransientError,
            InDoubtError,
            BusinessRuleError,
            ProbableDuplicateError,
            VendorPayloadError,
            AuthError,
            NotFoundError,
            UsageError,
            ConfigError,
            MappingError,
        )
    }
    cls = kinds.get(str(data.get("kind")), HubError)
    return cls(
        str(data.get("message", "")),
        code=data.get("code"),
        system=data.get("system"),
        record=data.get("record"),
        owner=Owner(data["owner"]) if data.get("owner") else None,
        details=data.get("details"),
    )


__all__ = [
    "CATALOGUE",
    "AuthError",
    "BusinessRuleError",
    "ConfigError",
    "ErrorCode",
    "HubError",
    "InDoubtError",
    "MappingError",
    "NotFoundError",
    "Owner",
    "ProbableDuplicateError",
    "TransientError",
    "UsageError",
    "VendorPayloadError",
    "error_from_dict",
    "lookup",
]
