"""The hub runtime: one database for DBOS and the hub's tables, one DBOS queue
per target system, and the connectors built from configuration.

DBOS keeps a single process-wide instance, and workflow functions are plain
module-level functions whose arguments are serialised; so the running
:class:`Hub` is reachable through :func:`current` rather than passed around.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SQLAlchemyDatasource

from quote2cash.config import HubConfig, SystemKind
from quote2cash.connectors._http import RetryPolicy
from quote2cash.connectors.kantata import KantataClient
from quote2cash.connectors.netsuite import NetSuiteClient, TbaCredentials
from quote2cash.connectors.salesforce import SalesforceClient
from quote2cash.errors import ConfigError
from quote2cash.mappings import Mapping
from quote2cash.model import LegalEntity
from quote2cash.store.db import is_sqlite, make_engine, migrate

P = ParamSpec("P")
R = TypeVar("R")

_current: Hub | None = None


def current() -> Hub:
    """The launched hub of this process."""
    if _current is None:
        raise RuntimeError("the hub is not launched in this process (call Hub.launch())")
    return _current


def _dbos_url(url: str) -> str:
    # DBOS builds its own engine; it wants the plain driver-less PostgreSQL scheme.
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class Hub:
    """Everything a flow needs at run time."""

    def __init__(
        self,
        config: HubConfig,
        *,
        transports: dict[SystemKind, httpx.BaseTransport] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.url = config.hub.database_url
        self.engine = make_engine(self.url)
        self.mapping = Mapping.load(config.hub.mapping)
        self.legal_entities = {
            code: LegalEntity(
                code=code,
                name=e.name,
                country=e.country,
                base_currency=e.base_currency,
                allowed_currencies=tuple(e.allowed_currencies),
                tax_regions=tuple(e.tax_regions),
                payment_terms=tuple(e.payment_terms),
            )
            for code, e in config.legal_entities.items()
        }
        self.subsidiary_of = {code: e.erp_subsidiary for code, e in config.legal_entities.items()}
        transports = transports or {}
        self.retry = retry or RetryPolicy()
        crm = config.system("salesforce")
        self.crm = SalesforceClient(
            crm.base_url,
            crm.client_id or "",
            crm.secret("client_secret"),
            transport=transports.get("salesforce"),
            timeout=crm.timeout_seconds,
            retry=self.retry,
        )
        psa = config.system("kantata")
        self.psa = KantataClient(
            psa.base_url,
            psa.secret("token"),
            transport=transports.get("kantata"),
            timeout=psa.timeout_seconds,
            retry=self.retry,
        )
        erp = config.system("netsuite")
        self.erp = NetSuiteClient(
            erp.base_url,
            TbaCredentials(
                account=erp.account or "",
                consumer_key=erp.consumer_key or "",
                consumer_secret=erp.secret("consumer_secret"),
                token_id=erp.token_id or "",
                token_secret=erp.secret("token_secret"),
            ),
            transport=transports.get("netsuite"),
            timeout=erp.timeout_seconds,
            retry=self.retry,
        )
        self.ds: SQLAlchemyDatasource | None = None
        self.queues: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def launch(self) -> Hub:
        """Migrate the database, start DBOS with a pinned version and a stable executor id."""
        global _current
        if _current is not None:
            raise RuntimeError("a hub is already launched in this process")
        migrate(self.engine)
        dbos_config: DBOSConfig = {
            "name": "quote2cash",
            "system_database_url": _dbos_url(self.engine.url.render_as_string(hide_password=False)),
            "application_version": self.config.hub.application_version,
            "executor_id": self.config.executor_id,
            "log_level": "WARNING",
            "scheduler_polling_interval_sec": 1.0,
        }
        if is_sqlite(self.url):
            dbos_config["notification_listener_polling_interval_sec"] = 0.1
        DBOS(config=dbos_config)
        self.ds = SQLAlchemyDatasource.create(self.url, engine=self.engine)
        _current = self
        try:
            DBOS.launch()
            # The hub's config is the source of truth for queue limits.
            for name, system in self.config.systems.items():
                q = system.queue
                self.queues[system.kind] = DBOS.register_queue(
                    f"q2c.{name}",
                    worker_concurrency=q.concurrency,
                    global_concurrency=q.global_concurrency,
                    limiter={"limit": max(1, int(q.rate_per_second)), "period": 1.0}
                    if q.rate_per_second
                    else None,
                    polling_interval_sec=0.1,
                    on_conflict="always_update",
                )
            # One posting run at a time across all workers: runs share the ledger and cursors.
            self.queues["posting"] = DBOS.register_queue(
                "q2c.posting", global_concurrency=1, polling_interval_sec=0.1, on_conflict="always_update"
            )
        except BaseException:
            _current = None
            raise
        return self

    def shutdown(self) -> None:
        """Stop DBOS and close the connectors and the database."""
        global _current
        if self.ds is None:
            return
        self.ds = None
        DBOS.destroy(workflow_completion_timeout_sec=0)
        for client in (self.crm, self.psa, self.erp):
            client.close()
        self.engine.dispose()
        if _current is self:
            _current = None

    def __enter__(self) -> Hub:
        return self.launch()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- database work -------------------------------------------------------------------
    def tx(self, fn: Callable[Concatenate[sa.Connection, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(conn, ...)`` in one transaction of the hub database.

        Inside a workflow this is a DBOS datasource step: its checkpoint commits
        in the same transaction as ``fn``'s writes, so it runs exactly once.
        """
        if self.ds is None:
            with self.engine.begin() as conn:
                return fn(conn, *args, **kwargs)
        ds = self.ds

        def body(*a: Any, **kw: Any) -> R:
            return fn(ds.sql_session().connection(), *a, **kw)

        return ds.run_tx_step({"name": getattr(fn, "__qualname__", "tx")}, body, *args, **kwargs)

    def read(self, fn: Callable[Concatenate[sa.Connection, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a read outside any workflow checkpointing."""
        with self.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def queue(self, kind: str) -> Any:
        """The DBOS queue of the target system of a kind."""
        if kind not in self.queues:
            raise ConfigError(f"no queue for system kind {kind!r}; is the hub launched?")
        return self.queues[kind]
