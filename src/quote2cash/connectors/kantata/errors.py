"""Kantata error answers → the hub's errors.

Kantata answers ``{"errors": [{"type", "message", "field"}]}``; the first
error's ``type`` is kept in ``details["vendor_code"]``.
"""

from __future__ import annotations

from quote2cash.connectors._http import error_mapper

SYSTEM = "kantata"


#: The hub error for one Kantata error answer (a 404 is "no such record").
from_vendor = error_mapper(SYSTEM)
