"""Kantata error answers → the hub's errors.

Kantata answers ``{"errors": [{"type", "message", "field"}]}``; the first
error's ``type`` is kept in ``details["vendor_code"]``.
"""

from __future__ import annotations

from typing import Any

from quote2cash.connectors._http import vendor_error
from quote2cash.errors import HubError

SYSTEM = "kantata"


def from_vendor(
    status: int, code: str, message: str, record: str | None, details: dict[str, Any] | None = None
) -> HubError:
    """The hub error for one Kantata error answer (a 404 is "no such record")."""
    return vendor_error(SYSTEM, status, code, message, record=record, details=details)
