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
import secrets
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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


class BillingConfig(_Strict):
    """How the hub bills (F6, F7) and hears back from billing (F8).

    Attributes:
        schedule: cron expression of the period run (default 03:00 on the 1st: the month just closed).
            The billing system's webhooks are taken by the HTTP API (``api.webhooks``).
        milestone_poll_seconds: how often ``q2c run`` looks for signed-off milestones.
    """

    schedule: str = "0 3 1 * *"
    milestone_poll_seconds: float = Field(default=30.0, gt=0)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 3 1 * *')")
        return value


class ErpRule(_Strict):
    """One routing rule: projects (and so their postings) matching every condition given go to
    ``system``.

    Attributes:
        system: the ERP system's name.
        legal_entities: the project's legal entity is one of these.
        projects_starting_from: the project starts on or after this date (a cutover where the
            projects started before it stay, with all their postings, on the ERP they are on).
        postings_from: a hard cutover: projects starting on or after this date belong to
            ``system``, and so does every posting of these legal entities dated on or after it,
            whatever ERP its project is on; a project open across the date is created in
            ``system`` too, so its later postings find it there.
    """

    system: str
    legal_entities: list[str] | None = None
    projects_starting_from: date | None = None
    postings_from: date | None = None

    @model_validator(mode="after")
    def _one_cutover(self) -> ErpRule:
        if self.projects_starting_from is not None and self.postings_from is not None:
            raise ValueError("a rule has one cutover: projects_starting_from or postings_from, not both")
        return self

    def covers(self, legal_entity: str) -> bool:
        """Whether the rule applies to a legal entity."""
        return self.legal_entities is None or legal_entity in self.legal_entities

    def matches(self, legal_entity: str, start: date | None) -> bool:
        """Whether a project of this legal entity starting on ``start`` is routed here."""
        if not self.covers(legal_entity):
            return False
        cutover = self.projects_starting_from or self.postings_from
        return not (cutover is not None and (start is None or start < cutover))


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
    sandbox: bool = Field(
        default=False,
        description="this config points at local sandboxes (written by `q2c sandbox up` and the demo); "
        "only then may sandbox credentials and a sandbox audit key be used, and every system's "
        "base_url must be on loopback",
    )


class AuditConfig(_Strict):
    """How the audit chain is sealed and anchored outside the database (SPEC §4).

    Attributes:
        key_env: the environment variable holding the chain's HMAC key (at
            least 16 characters; e.g. ``openssl rand -hex 32``). The hub does
            not start without it, except on a sandbox config (``hub.sandbox``),
            where a key file beside a SQLite database (``hub.sqlite.audit-key``,
            created on first use, readable by its owner only) or else
            ``sandbox_key`` stands in.
        sandbox_key: a sandbox config's key when no key file can sit beside
            its database (PostgreSQL), written in the file; refused on any
            other config.
        anchor_file: the file the chain's head is appended to (seq and hash,
            one JSON line each), outside the database and ideally on other
            storage. Default beside a SQLite database (``hub.sqlite.audit-anchors``);
            required on PostgreSQL outside sandboxes.
        anchor_every: anchor the committed head once every this many entries
            (``q2c audit anchor`` anchors it now; ``q2c run`` does daily).
    """

    key_env: str = "Q2C_AUDIT_KEY"
    sandbox_key: str | None = Field(default=None, min_length=16)
    anchor_file: Path | None = None
    anchor_every: int = Field(default=50, ge=1, le=100_000)
    key: SecretStr | None = Field(default=None, description="resolved from key_env, never in the file")


class RetentionConfig(_Strict):
    """How long the hub keeps source payloads (SPEC §4: retention policies).

    Attributes:
        payload_days: inbox payloads of dispatched events, and the payloads of
            resolved or ignored cases, older than this are pruned (the row,
            its ids and its outcome stay; a pruned event can no longer be
            replayed). None keeps them for ever. ``q2c run`` prunes daily;
            ``q2c retention prune`` prunes now. The audit trail is never pruned.
    """

    payload_days: int | None = Field(default=90, ge=1)


WebhookSource = Literal["salesforce", "stripe", "hubspot", "netsuite", "kantata"]


class WebhookConfig(_Strict):
    """One source's webhook intake (``POST /webhooks/<source>``).

    Attributes:
        secret_env: the environment variable holding the shared secret: Stripe's
            ``whsec_`` endpoint secret, the HubSpot app's client secret, or the key
            of the hub's own HMAC scheme (Salesforce, NetSuite, Kantata).
        org_id: Salesforce only: the organisation id every delivery must name.
        tolerance_seconds: the replay window: an older signed timestamp is refused.
        token_required: also require an API token with the ``webhook:<source>`` scope.
    """

    secret_env: str
    org_id: str | None = None
    tolerance_seconds: int = Field(default=300, ge=1, le=86400)
    token_required: bool = False
    secret: SecretStr | None = Field(default=None, description="resolved from secret_env, never in the file")


class ApiSection(_Strict):
    """The HTTP API and console ``q2c run`` serves.

    Attributes:
        enabled: serve the API at all.
        host: bind address (loopback by default; put a TLS proxy in front for anything else).
        port: TCP port.
        public_url: the URL senders use, when a proxy is in front (HubSpot signs it).
        max_body_bytes: larger request bodies are refused with 413, unread.
        webhooks: webhook intake by source; a source not listed is refused.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8780, ge=0, le=65535)
    public_url: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    webhooks: dict[WebhookSource, WebhookConfig] = Field(default_factory=dict)


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
    billing: BillingConfig = Field(default_factory=BillingConfig)
    customers: CustomersConfig = Field(default_factory=CustomersConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    api: ApiSection = Field(default_factory=ApiSection)
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

    def cutover_erps(self, legal_entity: str, start: date | None, end: date | None, erp: str) -> list[str]:
        """ERPs besides ``erp`` a project must also exist in: those a hard cutover of its legal
        entity moves its later postings to, while it is still open on the cutover date."""
        return [
            rule.system
            for rule in self.erp_routing.rules
            if rule.postings_from is not None
            and rule.system != erp
            and rule.covers(legal_entity)
            and (start is None or start < rule.postings_from)
            and (end is None or end >= rule.postings_from)
        ]

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


def _resolve_webhook_secrets(raw: dict[str, Any], env: dict[str, str], source: str) -> None:
    api = raw.get("api")
    hooks = api.get("webhooks") if isinstance(api, dict) else None
    if not isinstance(api, dict) or not isinstance(hooks, dict):
        return
    raw["api"] = {**api, "webhooks": {k: dict(v) if isinstance(v, dict) else v for k, v in hooks.items()}}
    for name, hook in raw["api"]["webhooks"].items():
        var = hook.get("secret_env") if isinstance(hook, dict) else None
        if not isinstance(var, str):
            continue
        if var not in env:
            raise ConfigError(
                f"{source}: api.webhooks.{name}.secret_env names the environment variable {var!r}, "
                "which is not set; export it before starting the hub",
                code="config.missing_secret",
                record=f"api.webhooks.{name}.secret_env",
            )
        hook["secret"] = env[var]


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def points_at_sandboxes(data: Any) -> bool:
    """Whether a config (as loaded from YAML) points at local sandboxes.

    Both must hold: the ``hub.sandbox: true`` marker that ``q2c sandbox up``
    and the demo write, and every system's ``base_url`` on loopback. Only then
    may the sandboxes' credentials stand in for unset environment variables.
    """
    if not isinstance(data, dict) or not isinstance(data.get("hub"), dict):
        return False
    if data["hub"].get("sandbox") is not True:
        return False
    systems = data.get("systems")
    if not isinstance(systems, dict):
        return False
    urls = [s.get("base_url") for s in systems.values() if isinstance(s, dict) and "base_url" in s]
    return all(isinstance(u, str) and _on_loopback(u) for u in urls)


def _check_sandbox(raw: dict[str, Any], source: str) -> None:
    """Refuse the sandbox marker on a config that names a system off loopback."""
    if raw["hub"].get("sandbox") is not True:
        return
    for name, system in raw["systems"].items():
        url = system.get("base_url") if isinstance(system, dict) else None
        if isinstance(url, str) and not _on_loopback(url):
            raise ConfigError(
                f"{source}: hub.sandbox is true but systems.{name}.base_url ({url}) is not on "
                "loopback; a config for real systems must not say sandbox: remove hub.sandbox",
                code="config.sandbox_not_local",
                record=f"systems.{name}.base_url",
            )


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1] if "///" in url else ""
    return None if not path or path == ":memory:" or path.startswith("file:") else Path(path)


def _sandbox_key_file(path: Path) -> str:
    """The key in a sandbox database's key file, created (readable by its owner only) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="ascii").strip()


def _seal_audit(config: HubConfig, env: dict[str, str]) -> None:
    """Resolve the audit key and anchor file, and bind them to the hub database (see store.audit)."""
    from quote2cash.store import audit as chain

    audit, source, sandbox = config.audit, config.source, config.hub.sandbox
    database = _sqlite_file(config.hub.database_url)
    if audit.sandbox_key is not None and not sandbox:
        raise ConfigError(
            f"{source}: audit.sandbox_key is only accepted on a sandbox config (hub.sandbox: true); "
            f"put the key in the environment variable {audit.key_env} instead",
            code="config.audit",
            record="audit.sandbox_key",
        )
    if audit.key_env in env:
        key = env[audit.key_env]
        if len(key) < 16:
            raise ConfigError(
                f"{source}: the audit key in {audit.key_env} is {len(key)} characters long; use at "
                "least 16 (e.g. the output of `openssl rand -hex 32`)",
                code="config.audit",
                record="audit.key_env",
            )
    elif sandbox and database is not None:
        key = _sandbox_key_file(database.with_name(database.name + ".audit-key"))
    elif sandbox and audit.sandbox_key is not None:
        key = audit.sandbox_key
    else:
        hint = "" if not sandbox else " (or, on this sandbox config, set audit.sandbox_key)"
        raise ConfigError(
            f"{source}: audit.key_env names the environment variable {audit.key_env!r}, which is not set; "
            f"export the audit chain's key (e.g. `openssl rand -hex 32`) before starting the hub{hint}",
            code="config.missing_secret",
            record="audit.key_env",
        )
    anchor = audit.anchor_file or (database.with_name(database.name + ".audit-anchors") if database else None)
    if anchor is None and not sandbox:
        raise ConfigError(
            f"{source}: audit.anchor_file is not set; on PostgreSQL name the file the audit chain's "
            "head is appended to, outside the database (e.g. /var/log/quote2cash/audit-anchors.jsonl)",
            code="config.audit",
            record="audit.anchor_file",
        )
    audit.key = SecretStr(key)
    audit.anchor_file = anchor
    chain.bind(config.hub.database_url, chain.Seal(key.encode(), anchor, audit.anchor_every))


def _resolve_secrets(raw: dict[str, Any], env: dict[str, str], source: str) -> None:
    _resolve_webhook_secrets(raw, env, source)
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
    """Load, resolve and validate the configuration; raise :class:`ConfigError` naming the field.

    Loading also resolves the audit chain's key and anchor file and binds them
    to the hub database (:func:`quote2cash.store.audit.bind`): every connection
    to that database in this process then seals and verifies with them.
    """
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
    _check_sandbox(raw, source)
    _resolve_secrets(raw, env, source)
    try:
        config = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source), code="config.invalid", record=source) from exc
    config.source = source
    _seal_audit(config, env)
    return config
