"""Business Central API v2.0 client: OData paging, ETags and JSON ``$batch``.

Requests carry an Entra ID bearer token (:class:`~.auth.MsalAuth`). Reads
follow ``@odata.nextLink`` until the last page. ``PATCH`` and ``DELETE``
carry the entity's ``@odata.etag`` in ``If-Match`` (Business Central refuses
them without one, and answers 412 ``Request_EntityChanged`` to a stale one);
they are idempotent and retried. A ``POST`` create is not: a timeout leaves it
in doubt (:class:`~quote2cash.errors.InDoubtError`) and the caller looks the
record up by its key before creating it again. A ``$batch`` of creates is in
doubt as a whole in the same way; each of its answers is read separately.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from quote2cash.connectors._http import Limiter, RetryPolicy, VendorClient
from quote2cash.connectors.business_central.errors import from_body
from quote2cash.errors import HubError, VendorPayloadError

#: Operations one ``$batch`` takes.
MAX_BATCH = 100


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Edm.Decimal is a JSON number; a money amount (<= 4 decimals, < 2**53 minor units)
        # prints back as exactly the same digits.
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} to Business Central")


def encode(body: Any) -> bytes:
    """A JSON request body (``Decimal`` as a JSON number)."""
    return json.dumps(body, default=_plain, separators=(",", ":")).encode()


def odata_text(value: str) -> str:
    """A string literal for ``$filter`` (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class BatchOperation:
    """One request of a ``$batch``: method, URL relative to ``api/v2.0/``, body and headers."""

    method: str
    url: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchAnswer:
    """Business Central's answer to one operation of a ``$batch``."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        """Whether the operation succeeded."""
        return self.status < 400

    def error(self, record: str | None) -> HubError:
        """The hub error for a failed operation."""
        return from_body(self.status, self.body, record)


class BusinessCentralClient(VendorClient):
    """One Business Central environment of one tenant."""

    system = "business_central"

    def __init__(
        self,
        base_url: str,
        tenant: str,
        environment: str,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        ca_bundle: str | None = None,
    ) -> None:
        if transport is None and ca_bundle is not None:
            transport = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=ca_bundle))
        super().__init__(
            base_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            limiter=limiter,
            sleep=sleep,
            auth=auth,
            headers={"Accept": "application/json"},
        )
        self.root = f"/v2.0/{tenant}/{environment}/api/v2.0"

    def __enter__(self) -> BusinessCentralClient:
        return self

    # -- hooks -----------------------------------------------------------------------
    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """``{"error": {"code", "message"}}`` -> the hub error (vendor code in ``details``)."""
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return from_body(response.status_code, body, record)

    # -- paths -----------------------------------------------------------------------
    def company_path(self, company: str, rest: str = "") -> str:
        """``companies({id})/rest`` relative to ``api/v2.0/``."""
        return f"companies({company})" + (f"/{rest}" if rest else "")

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.root}/{path}"

    # -- reads -----------------------------------------------------------------------
    def collection(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every entity of a collection, following ``@odata.nextLink`` page by page."""
        url: str | None = self._url(path)
        query = params
        while url is not None:
            response = self.request("GET", url, params=query, record=path)
            page = self._object(response, path)
            values = page.get("value")
            if not isinstance(values, list):
                raise VendorPayloadError(
                    f"business_central answered a collection without a 'value' list ({path})",
                    system=self.system,
                    record=path,
                )
            yield from (v for v in values if isinstance(v, dict))
            link = page.get("@odata.nextLink")
            url, query = (str(link), None) if link else (None, None)

    def get(self, path: str) -> dict[str, Any]:
        """One entity (``NotFoundError`` when there is none)."""
        return self._object(self.request("GET", self._url(path), record=path), path)

    # -- writes ----------------------------------------------------------------------
    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST`` a new entity (not idempotent: a timeout raises ``InDoubtError``); returns it."""
        response = self.request(
            "POST",
            self._url(path),
            content=encode(body),
            headers={"Content-Type": "application/json"},
            record=path,
        )
        return self._object(response, path)

    def update(self, path: str, body: dict[str, Any], etag: str) -> dict[str, Any]:
        """``PATCH`` an entity under its ETag; returns it as changed."""
        headers = {"Content-Type": "application/json", "If-Match": etag}
        response = self.request("PATCH", self._url(path), content=encode(body), headers=headers, record=path)
        return self._object(response, path)

    def delete(self, path: str, etag: str) -> None:
        """``DELETE`` an entity under its ETag."""
        self.request("DELETE", self._url(path), headers={"If-Match": etag}, record=path)

    def batch(self, operations: Sequence[BatchOperation]) -> list[BatchAnswer]:
        """Send up to :data:`MAX_BATCH` operations in one ``$batch``; answers in operation order.

        A batch of reads is retried like a ``GET``; one with a write is in doubt after a
        timeout, as a whole.
        """
        if not 1 <= len(operations) <= MAX_BATCH:
            raise ValueError(f"a $batch takes 1 to {MAX_BATCH} operations, not {len(operations)}")
        requests = [
            {
                "id": str(i),
                "method": op.method,
                "url": op.url,
                "headers": {"Content-Type": "application/json", **op.headers},
                **({"body": op.body} if op.body is not None else {}),
            }
            for i, op in enumerate(operations)
        ]
        response = self.request(
            "POST",
            f"{self.root}/$batch",
            content=encode({"requests": requests}),
            headers={"Content-Type": "application/json"},
            idempotent=all(op.method == "GET" for op in operations),
            record="$batch",
        )
        answers = self._object(response, "$batch").get("responses")
        if not isinstance(answers, list):
            raise VendorPayloadError(
                "business_central answered a $batch without a 'responses' list",
                system=self.system,
                record="$batch",
            )
        by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
        if len(by_id) != len(operations) or any(str(i) not in by_id for i in range(len(operations))):
            raise VendorPayloadError(
                f"business_central answered {len(by_id)} of the {len(operations)} $batch operations",
                system=self.system,
                record="$batch",
            )
        return [
            BatchAnswer(int(by_id[str(i)].get("status", 0)), by_id[str(i)].get("body"))
            for i in range(len(operations))
        ]

    # -- decoding ---------------------------------------------------------------------
    def _object(self, response: httpx.Response, record: str) -> dict[str, Any]:
        body = self.json(response, record)
        if not isinstance(body, dict):
            raise VendorPayloadError(
                f"business_central answered {response.request.method} {response.request.url.path} with "
                f"{type(body).__name__}, expected an object",
                system=self.system,
                record=record,
            )
        return body


__all__ = ["MAX_BATCH", "BatchAnswer", "BatchOperation", "BusinessCentralClient", "encode", "odata_text"]
