"""Kantata OX (Mavenlink) API v1 connector."""

from quote2cash.connectors.kantata.client import KantataClient

__all__ = ["KantataClient"]
