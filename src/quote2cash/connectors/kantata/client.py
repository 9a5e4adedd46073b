"""Kantata OX (Mavenlink) API v1 client.

Every answer is an envelope: ``count``, an ordered ``results`` list of
``{"key", "id"}`` and id-keyed top-level collections (the primary one and any
side-loaded with ``include=``). This client always walks ``results`` and
resolves each entry against its collection, so the order is Kantata's.

Kantata has no idempotency keys: a create is never re-sent after a timeout or
a 5xx (the error says ``in_doubt``). Make creates idempotent by attaching an
external reference (nested ``external_references`` in the create) and looking
it up with :meth:`KantataClient.find_subject_by_reference` before creating.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from quote2cash.connectors._http import Limiter, RetryPolicy, VendorClient, require
from quote2cash.connectors.kantata.errors import from_vendor
from quote2cash.errors import HubError, NotFoundError, VendorPayloadError

MAX_PER_PAGE = 200
MAX_BULK = 100
_KEYSET_ORDER = "updated_at:asc"

# Named here because ``KantataClient.list`` shadows the builtin inside the class.
Objects = list[dict[str, Any]]


class KantataClient(VendorClient):
    """A client of one Kantata account (``base_url`` is the host root)."""

    system = "kantata"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url.rstrip("/") + "/api/v1",
            transport=transport,
            timeout=timeout,
            retry=retry,
            limiter=limiter,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            sleep=sleep,
        )

    def __enter__(self) -> KantataClient:
        return self

    # -- reading -----------------------------------------------------------------------
    def list(
        self, resource: str, *, per_page: int = MAX_PER_PAGE, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Every object matching ``filters``, page after page, in Kantata's order.

        Filter values: booleans become ``true``/``false``, lists become
        comma-separated, ``None`` is left out. With ``order="updated_at:asc"``
        the pages are read by cursor (``updated_after`` = the last
        ``updated_at`` seen) rather than by page number, so records updated
        while paging cannot shift a record past the reader. The cursor relies
        on ``updated_at`` being unique per write, as the sandbox guarantees.
        """
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        params = _encode(filters)
        by_cursor = params.get("order") == _KEYSET_ORDER
        page = 1
        while True:
            body = self.fetch_page(resource, page=page, per_page=per_page, **params)
            objects = self.resolve(body)
            yield from objects
            meta = body["meta"] if isinstance(body.get("meta"), dict) else {}
            if not objects:
                return
            if by_cursor:
                if _as_int(meta.get("count", body.get("count")), len(objects)) <= len(objects):
                    return
                last = require(objects[-1], "updated_at", system=self.system, what=f"{resource} object")
                params["updated_after"] = str(last)
            else:
                if page >= _as_int(meta.get("page_count"), page):
                    return
                page += 1

    def fetch_page(
        self, resource: str, *, page: int = 1, per_page: int = MAX_PER_PAGE, **params: Any
    ) -> dict[str, Any]:
        """One raw envelope of a list, side-loaded collections included."""
        query = {**_encode(params), "page": str(page), "per_page": str(per_page)}
        return self._envelope(self.request("GET", f"/{resource}.json", params=query, record=resource))

    def get(self, resource: str, id_: str, **params: Any) -> dict[str, Any]:
        """One object by id; for its side-loads use ``fetch_page(resource, only=id_, include=...)``."""
        record = f"{resource}/{id_}"
        response = self.request("GET", f"/{resource}/{id_}.json", params=_encode(params), record=record)
        return self._first(self._envelope(response, record), record)

    def find_external_reference(
        self, service_name: str, service_model: str, ref: str
    ) -> dict[str, Any] | None:
        """The external reference with these identifying fields, or None."""
        found = self.list(
            "external_references",
            per_page=1,
            service_name=service_name,
            service_model=service_model,
            service_model_ref=ref,
        )
        return next(found, None)

    def find_subject_by_reference(self, service_name: str, service_model: str, ref: str) -> str | None:
        """The id of the record an external reference points at, or None."""
        reference = self.find_external_reference(service_name, service_model, ref)
        if reference is None:
            return None
        subject = require(reference, "subject_id", system=self.system, what="external reference")
        return str(subject)

    # -- writing -----------------------------------------------------------------------
    def create(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create one object (not idempotent: a timeout raises an in-doubt TransientError)."""
        response = self.request(
            "POST",
            f"/{resource}.json",
            json={_singular(resource): dict(obj)},
            idempotent=False,
            record=resource,
        )
        return self._first(self._envelope(response, resource), resource)

    def create_many(self, resource: str, objs: Sequence[Mapping[str, Any]]) -> Objects:
        """Create objects in requests of at most 100 under the plural key.

        If a request fails, the error's ``details["created_ids"]`` lists what
        the earlier requests created.
        """
        created: Objects = []
        for start in range(0, len(objs), MAX_BULK):
            chunk = [dict(o) for o in objs[start : start + MAX_BULK]]
            try:
                response = self.request(
                    "POST", f"/{resource}.json", json={resource: chunk}, idempotent=False, record=resource
                )
            except HubError as exc:
                exc.details["created_ids"] = [str(o.get("id")) for o in created]
                raise
            created.extend(self.resolve(self._envelope(response, resource)))
        return created

    def update(self, resource: str, id_: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change fields of one object (a PUT: safe to retry)."""
        record = f"{resource}/{id_}"
        response = self.request(
            "PUT", f"/{resource}/{id_}.json", json={_singular(resource): dict(fields)}, record=record
        )
        return self._first(self._envelope(response, record), record)

    def delete(self, resource: str, id_: str) -> None:
        """Delete one object; a retry that finds it already gone counts as done."""
        record = f"{resource}/{id_}"
        retries_before = self.retries
        try:
            self.request("DELETE", f"/{resource}/{id_}.json", record=record)
        except NotFoundError:
            # The first attempt timed out after Kantata applied it; the retry sees a 404.
            if self.retries > retries_before:
                return
            raise

    # -- envelopes and errors ----------------------------------------------------------
    def resolve(self, body: Mapping[str, Any]) -> Objects:
        """The objects an envelope's ``results`` point at, in order."""
        results = require(body, "results", system=self.system, what="response")
        if not isinstance(results, list):
            raise VendorPayloadError("kantata response 'results' is not a list", system=self.system)
        objects: Objects = []
        for entry in results:
            key = require(entry, "key", system=self.system, what="results entry")
            id_ = str(require(entry, "id", system=self.system, what="results entry"))
            collection = body.get(key)
            obj = collection.get(id_) if isinstance(collection, dict) else None
            if not isinstance(obj, dict):
                raise VendorPayloadError(
                    f"kantata response lists {key} {id_} in 'results' but not in its '{key}' collection",
                    system=self.system,
                    record=f"{key}/{id_}",
                )
            objects.append(obj)
        return objects

    def error_from_response(self, response: httpx.Response, record: str | None) -> HubError:
        """A Kantata ``errors`` array as a BusinessRuleError; anything else is a payload error."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if (
            isinstance(errors, list)
            and errors
            and all(isinstance(e, dict) and "message" in e for e in errors)
        ):
            kind = str(errors[0].get("type") or "error")
            return from_vendor(
                response.status_code,
                kind,
                "; ".join(str(e["message"]) for e in errors),
                record,
                {"fields": [str(e["field"]) for e in errors if e.get("field")]},
            )
        return VendorPayloadError(
            f"kantata answered HTTP {response.status_code} without an errors array: {response.text[:300]}",
            system=self.system,
            record=record,
            details={"status": response.status_code},
        )

    def _envelope(self, response: httpx.Response, record: str | None = None) -> dict[str, Any]:
        body = self.json(response, record)
        if not isinstance(body, dict):
            raise VendorPayloadError(
                "kantata answered a JSON value that is not an object", system=self.system, record=record
            )
        return body

    def _first(self, body: Mapping[str, Any], record: str) -> dict[str, Any]:
        objects = self.resolve(body)
        if not objects:
            raise VendorPayloadError(
                "kantata answered with no object in 'results'", system=self.system, record=record
            )
        return objects[0]


def _singular(resource: str) -> str:
    if resource.endswith("ies"):
        return resource[:-3] + "y"
    return resource[:-1] if resource.endswith("s") else resource


def _encode(params: Mapping[str, Any]) -> dict[str, str]:
    encoded: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            encoded[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            encoded[name] = ",".join(str(v) for v in value)
        else:
            encoded[name] = str(value)
    return encoded


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
