"""The hub runtime: one database for DBOS and the hub's tables, one DBOS queue
per flow, and the systems' adapters built from configuration through the
connector registry.

DBOS keeps a single process-wide instance, and workflow functions are plain
module-level functions whose arguments are serialised; so the running
:class:`Hub` is reachable through :func:`current` rather than passed around.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import httpx
import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SQLAlchemyDatasource

from quote2cash.config import HubConfig
from quote2cash.connectors._http import RetryPolicy
from quote2cash.errors import ConfigError
from quote2cash.model import LegalEntity
from quote2cash.ports import Crm, Erp, Psa, Role, System
from quote2cash.registry import connector
from quote2cash.rules.ownership import Ownership
from quote2cash.store.db import is_sqlite, make_engine, migrate, startup_lock

P = ParamSpec("P")
R = TypeVar("R")

_current: Hub | None = None

#: How often a worker asks a flow's queue for runs to start, in seconds. Each poll costs the
#: engine about 3 ms of CPU whether or not anything waits (an idle worker polling its nine
#: queues 34 times a second spent 14% of a core on it), and a burst is dispatched in batches
#: (:func:`quote2cash.runtime.flow.dispatch_all`), so a run rarely waits for the next poll.
FLOW_QUEUE_POLLING_SECONDS = 1.0
#: The same for a flow whose trigger → completed latency is a KPI (closed-won → project): a
#: deal that arrives by webhook waits for the next poll, so its queue is asked more often.
LATENCY_QUEUE_POLLING_SECONDS = 0.1
#: The same for the posting queue: posting runs are long and few, started by the schedule or
#: by an operator, who waits half a second at most for one to start.
POSTING_QUEUE_POLLING_SECONDS = 0.5


#: How long a launch waits for the engine to serve the hub's queues (see _await_queue_workers).
QUEUE_WORKERS_START_SECONDS = 3.0


def _await_queue_workers(names: list[str], timeout: float = QUEUE_WORKERS_START_SECONDS) -> None:
    """Wait until the engine polls each of the hub's queues, so a launched hub runs at once
    what is enqueued: DBOS starts a queue's worker thread at its queue manager's next look
    (once a second), so a burst enqueued right after launch otherwise waited up to a second
    before its first run. Past the timeout the launch goes on (the queues start soon after)."""
    wanted = {f"queue-worker-{name}" for name in names}
    deadline = time.monotonic() + timeout
    while not wanted <= {t.name for t in threading.enumerate()} and time.monotonic() < deadline:
        time.sleep(0.01)


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
    """Everything a flow needs at run time: configuration, the database, the systems."""

    def __init__(
        self,
        config: HubConfig,
        *,
        transports: dict[str, httpx.BaseTransport] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.url = config.hub.database_url
        self.engine = make_engine(self.url)
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
        #: Which system owns which field; every write passes it (SPEC §1).
        self.ownership = Ownership.of(config.ownership)
        transports = transports or {}
        self.retry = retry or RetryPolicy()
        #: Every configured system's adapter, by system name.
        self.systems: dict[str, System] = {
            name: connector(settings.kind).build(name, settings, transports.get(name), self.retry)
            for name, settings in config.systems.items()
        }
        self.ds: SQLAlchemyDatasource | None = None
        self._system_engine: sa.Engine | None = None
        self.queues: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- systems by role ------------------------------------------------------------------
    def system(self, role: Role, flow: str | None = None) -> System:
        """The adapter playing ``role`` (for ``flow``, where its policy names another)."""
        return self.systems[self.config.system_for(role, flow)]

    def crm(self, flow: str | None = None) -> Crm:
        """The CRM port."""
        return cast(Crm, self.system("crm", flow))

    def psa(self, flow: str | None = None) -> Psa:
        """The PSA port."""
        return cast(Psa, self.system("psa", flow))

    def erp(self, name: str | None = None) -> Erp:
        """An ERP port by system name (default: the ERP role's system)."""
        return cast(Erp, self.systems[name] if name else self.system("erp"))

    def erp_names(self) -> list[str]:
        """Names of every ERP a posting may be routed to (routing targets and the shadow)."""
        names = {r.system for r in self.config.erp_routing.rules}
        names.add(self.config.erp_routing.default or self.config.system_for("erp"))
        if self.config.erp_routing.shadow:
            names.add(self.config.erp_routing.shadow)
        return sorted(names)

    def calls(self) -> dict[str, int]:
        """Requests sent so far, by system name."""
        return {name: s.calls for name, s in self.systems.items()}

    def retries(self) -> int:
        """Requests retried so far, all systems."""
        return sum(s.retries for s in self.systems.values())

    # -- lifecycle ---------------------------------------------------------------------
    def launch(self) -> Hub:
        """Migrate the database, start DBOS with a pinned version and a stable executor id.

        Start-up runs under the database's start-up lock, so any number of
        workers can start at once on a fresh database.
        """
        global _current
        if _current is not None:
            raise RuntimeError("a hub is already launched in this process")
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
            # DBOS's own engine, begun IMMEDIATE as DBOS makes it, queued at the file's write
            # gate with the hub's: the worker's threads never sleep in SQLite's busy handler.
            self._system_engine = make_engine(self.url, immediate=True)
            dbos_config["system_database_engine"] = self._system_engine
        _current = self
        try:
            with startup_lock(self.engine):
                migrate(self.engine)
                DBOS(config=dbos_config)
                self.ds = SQLAlchemyDatasource.create(self.url, engine=self.engine)
                DBOS.launch()
            from quote2cash.runtime.flow import FLOWS

            for flow in FLOWS.values():
                self.queues[flow.name] = DBOS.register_queue(
                    f"q2c.flow.{flow.name}",
                    worker_concurrency=self.config.policy(flow.name).concurrency,
                    global_concurrency=flow.global_concurrency,
                    polling_interval_sec=(
                        LATENCY_QUEUE_POLLING_SECONDS if flow.latency_kpi else FLOW_QUEUE_POLLING_SECONDS
                    ),
                    on_conflict="always_update",
                )
            # One posting run at a time across all workers: runs share the ledger and cursors.
            self.queues["posting"] = DBOS.register_queue(
                "q2c.posting",
                global_concurrency=1,
                polling_interval_sec=POSTING_QUEUE_POLLING_SECONDS,
                on_conflict="always_update",
            )
            _await_queue_workers([q.name for q in self.queues.values()])
        except BaseException:
            _current = None
            self.ds = None
            raise
        return self

    def shutdown(self) -> None:
        """Stop DBOS and close the systems and the database."""
        global _current
        if self.ds is None:
            return
        self.ds = None
        DBOS.destroy(workflow_completion_timeout_sec=0)
        for system in self.systems.values():
            system.close()
        self.engine.dispose()
        if self._system_engine is not None:
            self._system_engine.dispose()
            self._system_engine = None
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

    def lock(self, name: str) -> threading.Lock:
        """A lock of this worker by name, for work its concurrent runs must do one at a time."""
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def queue(self, flow: str) -> Any:
        """The DBOS queue of a flow."""
        if flow not in self.queues:
            raise ConfigError(f"no queue for flow {flow!r}; is the hub launched?")
        return self.queues[flow]
