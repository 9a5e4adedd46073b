"""The NetSuite sandbox: SuiteTalk REST records, SuiteQL and token-based auth on loopback."""

from quote2cash.sandbox.netsuite.app import NetSuiteSandbox
from quote2cash.sandbox.netsuite.errors import NsError

__all__ = ["NetSuiteSandbox", "NsError"]
