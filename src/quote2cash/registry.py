"""The connector registry: which vendor kinds are installed, and how to build them.

A connector package exposes one :class:`Connector` and is found through the
``quote2cash.connectors`` entry-point group, so a separately installed
package adds a vendor without editing the hub::

    # pyproject.toml of the package
    [project.entry-points."quote2cash.connectors"]
    acme_erp = "acme_q2c:CONNECTOR"

Tests and embedded uses may also :func:`register` a connector in-process.
A system in the configuration names its ``kind``; its settings are validated
by that connector's settings model, a subclass of :class:`SystemSettings`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from quote2cash.connectors._http import RetryPolicy
from quote2cash.errors import ConfigError
from quote2cash.ports import Role, System

GROUP = "quote2cash.connectors"


class Limits(BaseModel):
    """How hard the hub may drive one system.

    Every call to the system, from any flow or posting run of this worker,
    passes this limiter.

    Attributes:
        concurrency: requests in flight at once from this worker. Set it to the
            vendor account's limit divided by the number of workers.
        rate_per_second: requests started per second from this worker (None: unlimited).
    """

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(default=4, ge=1, le=200)
    rate_per_second: float | None = Field(default=None, gt=0)


class SystemSettings(BaseModel):
    """What every configured system has; a connector's settings add its own fields.

    Secrets are named by environment variable (a field ending in ``_env``);
    the configuration loader resolves them into ``secrets``, never from the file.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    base_url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(default=10.0, gt=0)
    limits: Limits = Field(default_factory=Limits)
    cache_seconds: float = Field(
        default=300.0,
        ge=0,
        description="how long master data read from this system (subsidiaries, templates, roles) is reused",
    )
    mapping: str | None = Field(
        default=None, description="path of a mapping file replacing the connector's own mapping.yaml"
    )
    secrets: dict[str, SecretStr] = Field(default_factory=dict, exclude=True)

    def secret(self, name: str) -> str:
        """The value of a secret (e.g. ``client_secret``)."""
        if name not in self.secrets:
            raise ConfigError(
                f"system of kind {self.kind} needs the secret '{name}' ({name}_env names its variable)",
                code="config.missing_secret",
            )
        return self.secrets[name].get_secret_value()


@dataclass(frozen=True)
class Connector:
    """An installed vendor connector.

    Attributes:
        kind: the ``kind`` a configured system names.
        roles: the ports its adapter implements.
        settings: its settings model.
        build: makes the adapter: ``build(name, settings, transport, retry)``; ``transport``
            replaces the network (tests pass an ``httpx.MockTransport``), ``retry`` is the
            hub's retry policy for every request.
    """

    kind: str
    roles: tuple[Role, ...]
    settings: type[SystemSettings]
    build: Callable[[str, Any, httpx.BaseTransport | None, RetryPolicy], System]


_registered: dict[str, Connector] = {}
_lock = threading.Lock()
_loaded = False


def register(connector: Connector) -> Connector:
    """Make a connector available in this process (replaces one of the same kind)."""
    with _lock:
        _registered[connector.kind] = connector
    return connector


def _load_entry_points() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        for ep in entry_points(group=GROUP):
            if ep.name in _registered:
                continue
            try:
                connector = ep.load()
            except Exception as exc:  # a broken plug-in must name itself, not crash config loading
                raise ConfigError(
                    f"the connector '{ep.name}' ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}",
                    code="config.unknown_connector",
                ) from exc
            if not isinstance(connector, Connector):
                raise ConfigError(
                    f"the entry point '{ep.name}' ({ep.value}) is not a quote2cash Connector",
                    code="config.unknown_connector",
                )
            _registered.setdefault(connector.kind, connector)
        _loaded = True


def connectors() -> dict[str, Connector]:
    """Every installed connector by kind."""
    _load_entry_points()
    return dict(_registered)


def connector(kind: str) -> Connector:
    """The connector of a kind; :class:`ConfigError` listing the installed kinds otherwise."""
    found = connectors().get(kind)
    if found is None:
        known = ", ".join(sorted(connectors())) or "none"
        raise ConfigError(
            f"no installed connector has kind '{kind}' (installed: {known}); install its package "
            "or correct the kind",
            code="config.unknown_connector",
        )
    return found


__all__ = ["GROUP", "Connector", "Limits", "SystemSettings", "connector", "connectors", "register"]
