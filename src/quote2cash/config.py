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
            limits: {concurrency: 5}}
    roles: {crm: crm, psa: psa, erp: erp}   # only needed where two systems could play a role
    erp_routing:                            # only needed with more than one ERP
      rules: [{system: erp_uk, legal_entities: [UK01]}]
      default: erp
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
    ValidationError,
    field_validator,
    model_validator,
)

from quote2cash.errors import ConfigError
from quote2cash.ports import Role
from quote2cash.registry import SystemSettings, connector, connectors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _system(name: str, raw: Any) -> SystemSettings:
    """Validate one system's settings with its connector's model, found by ``kind``."""
    if not isinstance(raw, dict):
        raise ValueError(f"systems.{name} must be a mapping with a 'kind'")
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"systems.{name} needs a 'kind' (installed: {', '.join(sorted(connectors()))})")
    try:
        found = connector(kind)
    except ConfigError as exc:
        raise ValueError(f"systems.{name}.kind: {exc.message}") from exc
    try:
        return found.settings.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"systems.{name}.{'.'.join(str(p) for p in item['loc']) or '(system)'}: {item['msg']}"
            for item in exc.errors()
        ]
        raise ValueError("; ".join(lines)) from None


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
    systems: dict[Role, str] = Field(
        default_factory=dict, description="role -> system name, where this flow differs from `roles`"
    )
    concurrency: int = Field(default=8, ge=1, le=200, description="runs of this flow at once per worker")


class CustomersConfig(_Strict):
    """How CRM accounts become ERP customers (F1).

    Attributes:
        other_entity_match: what to do when an account, for a deal of one legal
            entity, matches an ERP customer of another entity (a customer is never
            re-used across entities): ``case`` opens a governance case for finance;
            ``create`` creates this entity's own customer (one ERP customer per
            entity for the accounts of one group).
    """

    other_entity_match: Literal["case", "create"] = "case"


class InternalProjectConfig(_Strict):
    """A PSA project with no deal behind it (bench, pre-sales, training): its time and
    expenses are cost, posted to a cost centre of its legal entity."""

    name: str
    legal_entity: str
    cost_centre: str = Field(description="the ERP department (cost centre) by name")


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


class ErpRule(_Strict):
    """One routing rule: postings matching every condition given go to ``system``.

    Attributes:
        system: the ERP system's name.
        legal_entities: the project's legal entity is one of these.
        projects_starting_from: the project starts on or after this date (a cutover).
    """

    system: str
    legal_entities: list[str] | None = None
    projects_starting_from: date | None = None

    def matches(self, legal_entity: str, start: date | None) -> bool:
        """Whether a project of this legal entity starting on ``start`` is routed here."""
        if self.legal_entities is not None and legal_entity not in self.legal_entities:
            return False
        return not (
            self.projects_starting_from is not None and (start is None or start < self.projects_starting_from)
        )


class ErpRouting(_Strict):
    """Which ERP a project (and so its postings) belongs to.

    Rules are tried in order; the first that matches wins, else ``default``.
    ``shadow`` names an ERP that receives a copy of every posting (dual-post
    during a migration); its answers are recorded but never decide the outcome.
    """

    rules: list[ErpRule] = Field(default_factory=list)
    default: str | None = None
    shadow: str | None = None


class HubSection(_Strict):
    """The hub's own settings."""

    database_url: str = "sqlite:///.q2c/hub.sqlite"
    application_version: str = Field(
        default="2026.11.1",
        description="pinned DBOS application version: parked workflows survive code changes",
    )
    executor_id: str | None = Field(default=None, description="stable worker id; default hostname")
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    log_level: str = "INFO"


class HubConfig(_Strict):
    """The whole configuration."""

    hub: HubSection = Field(default_factory=HubSection)
    systems: dict[str, SystemSettings]
    roles: dict[Role, str] = Field(
        default_factory=dict,
        description="role -> system name; a role only one system can play needs no entry",
    )
    erp_routing: ErpRouting = Field(default_factory=ErpRouting)
    legal_entities: dict[str, LegalEntityConfig]
    policies: dict[str, FlowPolicy] = Field(default_factory=dict)
    rate_cards: dict[str, RateCardConfig] = Field(
        default_factory=dict, description="rate card code -> rates; a project uses its currency's card"
    )
    posting: PostingConfig = Field(default_factory=PostingConfig)
    customers: CustomersConfig = Field(default_factory=CustomersConfig)
    cost_rates: dict[
        Annotated[str, Field(pattern=r"^[A-Z]{3}$")], dict[str, Annotated[Decimal, Field(ge=0)]]
    ] = Field(
        default_factory=dict,
        description="currency -> role -> hourly cost: non-billable time is valued at its role's cost "
        "(none given: non-billable time carries no amount)",
    )
    internal_projects: dict[str, InternalProjectConfig] = Field(
        default_factory=dict, description="PSA project (workspace) id -> its legal entity and cost centre"
    )
    ownership: dict[
        Annotated[str, Field(pattern=r"^(customer|project|deal|account)\.[a-z_]+$")],
        Literal["crm", "psa", "erp", "billing", "hub"],
    ] = Field(
        default_factory=dict,
        description="record.field -> its system of record, over the defaults (SPEC §1); the hub never "
        "overwrites a field in the system that owns it",
    )
    source: str = Field(default="<arguments>", exclude=True)

    @field_validator("systems", mode="before")
    @classmethod
    def _by_kind(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise ValueError("at least one system is needed, keyed by name")
        return {name: _system(name, raw) for name, raw in value.items()}

    @model_validator(mode="after")
    def _roles_resolve(self) -> HubConfig:
        for role, name in self.roles.items():
            self._check_plays(name, role, f"roles.{role}")
        for flow, policy in self.policies.items():
            for role, name in policy.systems.items():
                self._check_plays(name, role, f"policies.{flow}.systems.{role}")
        routing = self.erp_routing
        for i, rule in enumerate(routing.rules):
            self._check_plays(rule.system, "erp", f"erp_routing.rules.{i}.system")
        for field, target in (("default", routing.default), ("shadow", routing.shadow)):
            if target is not None:
                self._check_plays(target, "erp", f"erp_routing.{field}")
        for ws, internal in self.internal_projects.items():
            if internal.legal_entity not in self.legal_entities:
                raise ValueError(
                    f"internal_projects.{ws}.legal_entity: '{internal.legal_entity}' is not one of the "
                    f"legal_entities ({', '.join(sorted(self.legal_entities))})"
                )
        return self

    def _check_plays(self, name: str, role: Role, where: str) -> None:
        if name not in self.systems:
            raise ValueError(f"{where} names the system '{name}', which is not in systems")
        kind = self.systems[name].kind
        if role not in connector(kind).roles:
            raise ValueError(f"{where}: system '{name}' ({kind}) cannot play the {role} role")

    def players(self, role: Role) -> list[str]:
        """Names of the configured systems whose connector implements a role."""
        return [n for n, s in self.systems.items() if role in connector(s.kind).roles]

    def system_for(self, role: Role, flow: str | None = None) -> str:
        """The name of the system playing ``role`` (for ``flow``, where its policy says otherwise)."""
        if flow is not None and role in self.policy(flow).systems:
            return self.policy(flow).systems[role]
        if role in self.roles:
            return self.roles[role]
        players = self.players(role)
        if len(players) == 1:
            return players[0]
        if role == "erp" and self.erp_routing.default:
            return self.erp_routing.default
        what = (
            f"no system plays the {role} role"
            if not players
            else (f"systems {', '.join(players)} can all play the {role} role")
        )
        raise ConfigError(
            f"{self.source}: {what}; name one under `roles: {{{role}: NAME}}`",
            code="config.role",
            record=f"roles.{role}",
        )

    def erp_for(self, legal_entity: str, start: date | None) -> str:
        """The ERP system a project of this legal entity, starting on ``start``, belongs to."""
        for rule in self.erp_routing.rules:
            if rule.matches(legal_entity, start):
                return rule.system
        return self.erp_routing.default or self.system_for("erp")

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
    systems = data.get("systems") or {}
    if not isinstance(systems, dict):
        raise ConfigError(
            f"{source}: 'systems' must map each system's name to its settings "
            f"(e.g. 'crm: {{kind: salesforce, ...}}'), not be a {type(systems).__name__}",
            code="config.shape",
            record="systems",
        )
    raw["systems"] = {k: dict(v) if isinstance(v, dict) else v for k, v in systems.items()}
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
