"""HubSpot's error answers: one body shape for every refusal.

HubSpot answers ``{"status": "error", "message", "correlationId", "category",
"subCategory"?, "errors": [{"message", "code", "in"?, "context"?}], "context"?}``
(VENDORS.md §1.3). A validation failure of property values also embeds the
per-property details in ``message``, as the live API does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot stamps on every error."""
    return str(uuid.uuid4())


class HubSpotError(Exception):
    """A request HubSpot would refuse, with its HTTP status, category and details."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        sub_category: str | None = None,
        context: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors or []
        self.sub_category = sub_category
        self.context = context
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.errors:
            body["errors"] = self.errors
        if self.context:
            body["context"] = self.context
        return body

    def item(self) -> dict[str, Any]:
        """The entry of a batch answer's ``errors`` for one input (a 207)."""
        entry: dict[str, Any] = {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context or {},
            "errors": self.errors,
            "links": {},
        }
        if self.sub_category:
            entry["subCategory"] = self.sub_category
        return entry


def invalid_properties(problems: list[dict[str, Any]]) -> HubSpotError:
    """A ``VALIDATION_ERROR`` for property values, in HubSpot's two-level shape.

    Each problem is ``{"name", "error", "message"}`` (``error`` such as
    ``PROPERTY_DOESNT_EXIST``, ``INVALID_OPTION``, ``READ_ONLY_VALUE``).
    """
    inner = [
        {
            "isValid": False,
            "message": p["message"],
            "error": p["error"],
            "name": p["name"],
            "localizedErrorMessage": p["message"],
        }
        for p in problems
    ]
    return HubSpotError(
        400,
        "VALIDATION_ERROR",
        f"Property values were not valid: {json.dumps(inner)}",
        errors=[
            {"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
            for p in problems
        ],
    )


def validation(message: str, *, code: str | None = None, field: str | None = None) -> HubSpotError:
    """A ``VALIDATION_ERROR`` about the request itself (not a property value)."""
    detail: dict[str, Any] = {"message": message}
    if code:
        detail["code"] = code
    if field:
        detail["in"] = field
    return HubSpotError(400, "VALIDATION_ERROR", message, errors=[detail])


def not_found(object_id: str, message: str = "resource not found") -> HubSpotError:
    """An ``OBJECT_NOT_FOUND`` (404) naming the id."""
    return HubSpotError(404, "OBJECT_NOT_FOUND", message, context={"id": [object_id]})
