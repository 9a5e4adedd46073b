"""The error a Salesforce request or record can end in, in both of its wire shapes."""

from __future__ import annotations

from typing import Any


class SalesforceError(Exception):
    """A request or record Salesforce would refuse, with its errorCode and HTTP status."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        """The error array a REST call answers."""
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]

    def item(self) -> dict[str, Any]:
        """The error entry of one item of an sObject Collections answer."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}
