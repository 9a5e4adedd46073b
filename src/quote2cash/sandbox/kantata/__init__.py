"""Kantata OX (Mavenlink) API v1 sandbox: see :mod:`quote2cash.sandbox.kantata._sandbox`."""

from quote2cash.sandbox.kantata._sandbox import KantataSandbox
from quote2cash.sandbox.kantata._wire import KantataError

__all__ = ["KantataError", "KantataSandbox"]
