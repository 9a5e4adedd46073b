"""Kantata connector: the PSA port over API v1 (envelopes, paging, bulk create, external references)."""

from quote2cash.connectors.kantata.adapter import KantataPsa, build
from quote2cash.connectors.kantata.client import KantataClient
from quote2cash.connectors.kantata.settings import KantataSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="kantata", roles=("psa",), settings=KantataSettings, build=build)

__all__ = ["CONNECTOR", "KantataClient", "KantataPsa", "KantataSettings"]
