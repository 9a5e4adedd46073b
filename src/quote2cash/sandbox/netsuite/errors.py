"""NetSuite REST error bodies (RFC 9457-like, with ``o:errorDetails``)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# NetSuite points ``type`` at the RFC 9110 section of the status code.
_TYPES: dict[int, tuple[str, str]] = {
    400: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1", "Bad Request"),
    401: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2", "Unauthorized"),
    403: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.4", "Forbidden"),
    404: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5", "Not Found"),
    405: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.6", "Method Not Allowed"),
    429: ("https://www.rfc-editor.org/rfc/rfc6585.html#section-4", "Too Many Requests"),
    500: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.1", "Internal Server Error"),
    503: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.4", "Service Unavailable"),
}

ERROR_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=error"

INVALID_LOGIN_DETAIL = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
    "at Setup > Users/Roles > User Management > View Login Audit Trail."
)


class NsError(Exception):
    """A request NetSuite refuses; becomes an error body with one detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        path: str | None = None,
        query_param: str | None = None,
        header: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path
        self.query_param = query_param
        self.header = header

    def body(self) -> dict[str, Any]:
        """The JSON body NetSuite sends for this error."""
        detail: dict[str, Any] = {"detail": self.detail, "o:errorCode": self.code}
        if self.path is not None:
            detail["o:errorPath"] = self.path
        if self.query_param is not None:
            detail["o:errorQueryParam"] = self.query_param
        if self.header is not None:
            detail["o:errorHeader"] = self.header
        type_, title = _TYPES.get(self.status, (_TYPES[400][0], "Error"))
        return {"type": type_, "title": title, "status": self.status, "o:errorDetails": [detail]}

    def response(self) -> JSONResponse:
        """The HTTP response carrying :meth:`body`."""
        return JSONResponse(self.body(), self.status, media_type=ERROR_MEDIA_TYPE)


def user_error(detail: str, path: str | None = None) -> NsError:
    """400 ``USER_ERROR``, NetSuite's code for missing mandatory values and similar."""
    return NsError(400, "USER_ERROR", detail, path=path)


def invalid_reference(field: str, why: str = "Provide a valid value.") -> NsError:
    """400 ``INVALID_VALUE`` for a reference to a record that cannot be used."""
    detail = f"Invalid value for the resource or sub-resource field '{field}'. {why}"
    return NsError(400, "INVALID_VALUE", detail, path=field)


__all__ = ["ERROR_MEDIA_TYPE", "INVALID_LOGIN_DETAIL", "NsError", "invalid_reference", "user_error"]
