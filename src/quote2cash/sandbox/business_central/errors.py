"""Business Central error answers: OData v4 JSON ``{"error": {"code", "message"}}``.

Business Central appends ``CorrelationId: <guid>.`` to every message; the
codes are the ones the service answers with (``BadRequest_NotFound``,
``Internal_EntityWithSameKeyExists``, ``Request_EntityChanged``, ...).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.responses import JSONResponse


class BcError(Exception):
    """A request Business Central refuses; becomes an OData error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Business Central sends for this error."""
        return {"error": {"code": self.code, "message": f"{self.message}  CorrelationId:  {uuid.uuid4()}."}}

    def response(self) -> JSONResponse:
        """The HTTP response carrying :meth:`body`."""
        return JSONResponse(self.body(), self.status, headers=self.headers)


def not_found(entity: str = "record") -> BcError:
    """404 ``BadRequest_NotFound``: no entity with the id in the URL."""
    return BcError(404, "BadRequest_NotFound", f"The {entity} does not exist.")


def no_resource(segment: str) -> BcError:
    """404 ``BadRequest_NotFound`` for a URL segment that names no entity set."""
    return BcError(
        404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request URI '{segment}'."
    )


def property_not_found(name: str, entity_type: str) -> BcError:
    """400 ``BadRequest_PropertyNotFound``: a body, ``$select`` or ``$filter`` names an unknown field."""
    return BcError(
        400,
        "BadRequest_PropertyNotFound",
        f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity_type}'.",
    )


def bad_request(message: str) -> BcError:
    """400 ``BadRequest`` (malformed body, query option or value)."""
    return BcError(400, "BadRequest", message)


def method_not_allowed(method: str, entity_set: str) -> BcError:
    """405 ``BadRequest_MethodNotAllowed``: the entity set is read-only over the API."""
    return BcError(
        405,
        "BadRequest_MethodNotAllowed",
        f"'{method}' requests for '{entity_set}' of EdmType 'Entity' are not allowed within Dynamics 365 "
        "Business Central OData web services.",
    )


def entity_exists(caption: str, key: str, value: str) -> BcError:
    """400 ``Internal_EntityWithSameKeyExists``: the primary key is taken."""
    return BcError(
        400,
        "Internal_EntityWithSameKeyExists",
        f"The {caption} already exists. Identification fields and values: {key}='{value}'",
    )


def concurrency_token_missing() -> BcError:
    """400: a ``PATCH``/``DELETE`` without ``If-Match``."""
    return BcError(
        400,
        "BadRequest",
        "Could not validate the client concurrency token required by the service. Please provide a valid "
        "token in the client request.",
    )


def entity_changed() -> BcError:
    """412 ``Request_EntityChanged``: the ``If-Match`` ETag is not the entity's current one."""
    return BcError(412, "Request_EntityChanged", "Another user has already changed the record.")


def invalid_credentials() -> BcError:
    """401 ``Authentication_InvalidCredentials`` (no, unknown or expired bearer token)."""
    return BcError(
        401,
        "Authentication_InvalidCredentials",
        "The server has rejected the client credentials.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def too_many_requests(actual: int, maximum: int, retry_after: float) -> BcError:
    """429 ``Application_TooManyRequests`` with ``Retry-After``."""
    return BcError(
        429,
        "Application_TooManyRequests",
        f"Too many requests reached.  Actual ({actual}).  Maximum ({maximum}).",
        headers={"Retry-After": str(max(1, round(retry_after)))},
    )


__all__ = [
    "BcError",
    "bad_request",
    "concurrency_token_missing",
    "entity_changed",
    "entity_exists",
    "invalid_credentials",
    "method_not_allowed",
    "no_resource",
    "not_found",
    "property_not_found",
    "too_many_requests",
]
