"""Hub configuration: the only module that reads the environment.

Precedence: explicit arguments > environment (``Q2C_*``) > config file > defaults.
Secrets never live in the file: a system names the environment variable that
holds each secret (``client_secret_env: Q2C_CRM_SECRET``) and the value is read
here, typed as a secret so it never prints.

A config file is YAML::

    hub:
      database_url: sqlite:///.q2c/hub.sqlite
      application_version: "2026.11"
    systems:
      crm: {kind: salesforce, base_url: "https://acme.my.salesforce.com", client_id: q2c,
            client_secret_env: Q2C_CRM_SECRET}
      psa: {kind: kantata, base_url: "https://api.mavenlink.com", token_env: Q2C_PSA_TOKEN}
      erp: {kind: netsuite, base_url: "https://1234567.suitetalk.api.netsuite.com", account: "1234567",
            consumer_key: ..., consumer_secret_env: ..., token_id: ..., token_secret_env: ...,
            queue: {concurrency: 5}}
    legal_entities:
      US01: {name: "Acme Consulting Inc", country: US, base_currency: USD, erp_subsidiary: "1", ...}
"""

from __future__ import annotations

import os
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from quote2cash.errors import ConfigError

SystemKind = Literal["salesforce", "kantata", "netsuite"]
ROLES = {"salesforce": "crm", "kantata": "psa", "netsuite": "erp"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueConfig(_Strict):
    """Limits of the DBOS queue that carries work for one target system.

    Attributes:
        concurrency: flows running at once against this system on one worker.
        global_concurrency: flows running at once across all workers (vendor account limits).
        rate_per_second: flows started per second (token bucket over one-second windows).
    """

    concurrency: int = Field(default=4, ge=1, le=200)
    global_concurrency: int | None = Field(default=None, ge=1)
    rate_per_second: float | None = Field(default=None, gt=0)


class SystemConfig(_Strict):
    """One connected system. Secrets are named by environment variable (``*_env``)."""

    kind: SystemKind
    base_url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=10.0, gt=0)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    # Salesforce
    client_id: str | None = None
    client_secret_env: str | None = None
    # Kantata
    token_env: str | None = None
    # NetSuite token-based auth
    account: str | None = None
    consumer_key: str | None = None
    consumer_secret_env: str | None = None
    token_id: str | None = None
    token_secret_env: str | None = None
    # Resolved from the environment, never from the file.
    secrets: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _required_for_kind(self) -> SystemConfig:
        needed = {
            "salesforce": ["client_id", "client_secret_env"],
            "kantata": ["token_env"],
            "netsuite": ["account", "consumer_key", "consumer_secret_env", "token_id", "token_secret_env"],
        }[self.kind]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} system needs: {', '.join(missing)}")
        return self

    def secret(self, name: str) -> str:
        """The value of a secret (e.g. ``client_secret``)."""
        return self.secrets[name].get_secret_value()


class LegalEntityConfig(_Strict):
    """A legal entity of the firm and what is valid for it."""

    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    base_currency: str = Field(pattern=r"^[A-Z]{3}$")
    allowed_currencies: list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(default_factory=list)
    tax_regions: list[str] = Field(default_factory=list)
    payment_terms: list[str] = Field(default_factory=list)
    erp_subsidiary: str = Field(description="the subsidiary's internal id in the ERP")


class FlowPolicy(_Strict):
    """How a flow behaves when it fails half-way.

    Attributes:
        compensate: undo the project-side writes (ERP job, PSA workspace) when
            the flow stops on a business rule; otherwise keep them and resume
            from the failed step after a fix (the default).
    """

    compensate: bool = False


class RateCardConfig(_Strict):
    """Bill rates by role in one currency (effective dates optional)."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    rates: dict[str, Decimal] = Field(description="role -> hourly bill rate")
    effective_from: date | None = None
    effective_to: date | None = None


class AccountsConfig(_Strict):
    """ERP ledger accounts the time and expense postings use (internal ids)."""

    unbilled_receivable: str = "1210"
    services_revenue: str = "4000"
    project_cost: str = "6100"
    cost_absorption: str = "6190"
    expense_clearing: str = "2150"
    rebillable_expenses: str = "1220"


class PostingConfig(_Strict):
    """How approved time and expenses are posted to the ERP (F4, F5).

    Attributes:
        mode: ``summary`` (one journal per project × task × legal entity ×
            period × billable flag) or ``detail`` (one timebill / expense
            report per entry).
        schedule: cron expression of the micro-batch (default every 15 minutes).
        closed_period: what to do with an entry dated in a closed period:
            ``hold`` it for finance, or ``redate`` it to the next open period.
        sla_hours: approved time should be posted within this many hours.
        detail_concurrency: parallel ERP calls in detail mode (stay under the
            account's concurrency limit).
        reconcile_schedule: cron expression of the nightly reconciliation.
    """

    mode: Literal["summary", "detail"] = "summary"
    schedule: str = "*/15 * * * *"
    closed_period: Literal["hold", "redate"] = "hold"
    sla_hours: float = Field(default=24.0, gt=0)
    detail_concurrency: int = Field(default=8, ge=1, le=100)
    reconcile_schedule: str = "30 2 * * *"
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)

    @field_validator("schedule", "reconcile_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '*/15 * * * *')")
        return value


class HubSection(_Strict):
    """The hub's own settings."""

    database_url: str = "sqlite:///.q2c/hub.sqlite"
    application_version: str = Field(
        default="2026.11.1",
        description="pinned DBOS application version: parked workflows survive code changes",
    )
    executor_id: str | None = Field(default=None, description="stable worker id; default hostname")
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    mapping: str = Field(default="default", description="mapping file name in mappings/files or a path")
    log_level: str = "INFO"


class HubConfig(_Strict):
    """The whole configuration."""

    hub: HubSection = Field(default_factory=HubSection)
    systems: dict[str, SystemConfig]
    legal_entities: dict[str, LegalEntityConfig]
    policies: dict[str, FlowPolicy] = Field(default_factory=dict)
    rate_cards: dict[str, RateCardConfig] = Field(
        default_factory=dict, description="rate card code -> rates; a project uses its currency's card"
    )
    posting: PostingConfig = Field(default_factory=PostingConfig)
    source: str = Field(default="<arguments>", exclude=True)

    @model_validator(mode="after")
    def _one_per_role(self) -> HubConfig:
        kinds = [s.kind for s in self.systems.values()]
        for kind in ("salesforce", "kantata", "netsuite"):
            if kinds.count(kind) != 1:
                raise ValueError(f"exactly one {kind} system is needed (found {kinds.count(kind)})")
        return self

    def system(self, kind: SystemKind) -> SystemConfig:
        """The configured system of a kind."""
        return next(s for s in self.systems.values() if s.kind == kind)

    def system_name(self, kind: SystemKind) -> str:
        """The configured name of the system of a kind."""
        return next(n for n, s in self.systems.items() if s.kind == kind)

    def policy(self, flow: str) -> FlowPolicy:
        """The policy of a flow (defaults when not configured)."""
        return self.policies.get(flow, FlowPolicy())

    @property
    def executor_id(self) -> str:
        """The stable executor id of this worker."""
        return self.hub.executor_id or socket.gethostname()


def _format_validation(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return f"{source} is invalid:\n" + "\n".join(lines)


def _resolve_secrets(raw: dict[str, Any], env: dict[str, str], source: str) -> None:
    for name, system in (raw.get("systems") or {}).items():
        if not isinstance(system, dict):
            continue
        secrets: dict[str, str] = {}
        for key in [k for k in system if k.endswith("_env")]:
            var = system[key]
            if not isinstance(var, str) or var not in env:
                raise ConfigError(
                    f"{source}: systems.{name}.{key} names the environment variable {var!r}, "
                    "which is not set; export it before starting the hub",
                    code="config.missing_secret",
                    record=f"systems.{name}.{key}",
                )
            secrets[key[: -len("_env")]] = env[var]
        system["secrets"] = secrets


def load_config(
    path: Path | str | None = None,
    *,
    data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> HubConfig:
    """Load, resolve and validate the configuration; raise :class:`ConfigError` naming the field."""
    env = dict(os.environ if env is None else env)
    source = str(path) if path is not None else "<arguments>"
    if data is None:
        if path is None:
            raise ConfigError("no configuration given: pass --config FILE", code="config.missing")
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {source}: {exc.strerror}", code="config.unreadable"
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{source} is not valid YAML{where}: {exc}", code="config.yaml") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} must hold a mapping with 'systems' and 'legal_entities'", code="config.shape"
        )
    raw: dict[str, Any] = {**data, "hub": dict(data.get("hub") or {})}
    raw["systems"] = {
        k: dict(v) if isinstance(v, dict) else v for k, v in (data.get("systems") or {}).items()
    }
    if "Q2C_DATABASE_URL" in env:
        raw["hub"]["database_url"] = env["Q2C_DATABASE_URL"]
    if "Q2C_EXECUTOR_ID" in env:
        raw["hub"]["executor_id"] = env["Q2C_EXECUTOR_ID"]
    for key, value in (overrides or {}).items():
        raw["hub"][key] = value
    _resolve_secrets(raw, env, source)
    try:
        config = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source), code="config.invalid", record=source) from exc
    config.source = source
    return config
