"""HubSpot CRM client on the official SDK (``hubspot-api-client``).

The SDK (``hubspot.HubSpot(access_token=...)``, its configuration ``host``
set to the system's ``base_url``) does the wire: paths, bearer auth, models.
This module adds what the hub asks of every vendor client:

- **one retry layer**, the hub's: the SDK's urllib3 retries are switched off
  (``Retry(total=0)``) and :meth:`HubSpotClient.call` retries by the hub's
  :class:`~quote2cash.connectors._http.RetryPolicy`, on error *types* only —
  a 429 after the interval HubSpot names, a 5xx or a timeout of an idempotent
  call with backoff and jitter; a non-idempotent create that times out is
  in doubt and is not sent again from here;
- the system's :class:`~quote2cash.connectors._http.Limiter` around every call;
- the SDK's ``ApiException`` and urllib3 failures as hub errors
  (:mod:`quote2cash.connectors.hubspot.errors`), and ``calls``/``retries`` counted.

The SDK builds a connection pool per API object, so each is built once here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hubspot  # type: ignore[import-untyped]
import urllib3
from hubspot.crm.associations.v4 import (  # type: ignore[import-untyped]
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.deals import (  # type: ignore[import-untyped]
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
)
from hubspot.crm.objects import (  # type: ignore[import-untyped]
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from urllib3.util.retry import Retry

from quote2cash.connectors._http import Limiter, Retrying, RetryPolicy
from quote2cash.connectors.hubspot.errors import (
    API_EXCEPTIONS,
    SYSTEM,
    from_api_exception,
    from_transport,
)
from quote2cash.errors import HubError, VendorPayloadError

T = TypeVar("T")
#: A record as the client hands it on: its id and its property values (strings).
Record = tuple[str, dict[str, str | None]]


class HubSpotClient(Retrying):
    """A client of one HubSpot portal's CRM API."""

    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or Limiter(concurrency=64)
        self.calls = 0
        self.retries = 0
        self._sleep = sleep
        self._rng = random.Random(seed)
        sdk = hubspot.HubSpot(access_token=access_token, host=self.base_url, retry=Retry(total=0, redirect=0))
        crm = sdk.crm
        self._search = {"deals": crm.deals.search_api}
        self._basic = {
            "deals": crm.deals.basic_api,
            "companies": crm.companies.basic_api,
            "line_items": crm.line_items.basic_api,
        }
        self._batch = {
            "deals": crm.deals.batch_api,
            "companies": crm.companies.batch_api,
            "line_items": crm.line_items.batch_api,
        }
        self._associations = crm.associations.v4.batch_api
        self._properties = crm.properties.core_api

    def close(self) -> None:
        """Release the SDK's connection pools."""
        apis = [*self._search.values(), *self._basic.values(), *self._batch.values()]
        for api in [*apis, self._associations, self._properties]:
            api.api_client.rest_client.pool_manager.clear()

    # -- the retry loop --------------------------------------------------------------
    def call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        idempotent: bool,
        record: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run one SDK call under the limiter, retrying transient failures as the policy allows."""

        def once() -> T | HubError:
            self.calls += 1
            try:
                with self.limiter:
                    return fn(*args, _request_timeout=self.timeout, **kwargs)
            except API_EXCEPTIONS as exc:
                return from_api_exception(exc, method=what, idempotent=idempotent, record=record)
            except urllib3.exceptions.HTTPError as exc:
                return from_transport(exc, method=what, idempotent=idempotent, record=record)
            except ValueError as exc:
                # The SDK checks answers against its models (required members, enums).
                raise VendorPayloadError(
                    f"hubspot answered {what} with a body the SDK cannot read: {exc}",
                    system=SYSTEM,
                    record=record,
                ) from exc

        return self.retried(once, what)

    # -- reads -----------------------------------------------------------------------
    def search(
        self,
        object_type: str,
        filters: list[dict[str, Any]],
        *,
        sort: str,
        properties: list[str],
        limit: int,
        after: int | None = None,
    ) -> tuple[list[Record], int | None]:
        """One search page (filters AND-ed, ascending by ``sort``): records and the next offset."""
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(**f) for f in filters])],
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
            properties=properties,
            limit=limit,
            after=str(after) if after else None,
        )
        api = self._search[object_type]
        page = self.call(
            f"search {object_type}", api.do_search, public_object_search_request=request, idempotent=True
        )
        nxt = page.paging.next.after if page.paging is not None and page.paging.next is not None else None
        records = [(str(r.id), dict(r.properties or {})) for r in page.results]
        return records, int(nxt) if nxt is not None else None

    def batch_read(
        self, object_type: str, ids: list[str], properties: list[str]
    ) -> dict[str, dict[str, str | None]]:
        """Records by id, 100 a call; ids HubSpot does not find are left out."""
        out: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(ids), 100):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in ids[start : start + 100]],
                properties=properties,
                properties_with_history=[],
            )
            api = self._batch[object_type]
            answer = self.call(
                f"batch read {object_type}",
                api.read,
                batch_read_input_simple_public_object_id=body,
                idempotent=True,
            )
            out.update({str(r.id): dict(r.properties or {}) for r in answer.results})
        return out

    def associated(
        self, from_type: str, to_type: str, ids: list[str]
    ) -> dict[str, list[tuple[str, list[int]]]]:
        """(id, association type ids) each record is associated with (v4 batch read); none: []."""
        out: dict[str, list[tuple[str, list[int]]]] = {i: [] for i in ids}
        for start in range(0, len(ids), 100):
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids[start : start + 100]]
            )
            answer = self.call(
                f"associations {from_type}->{to_type}",
                self._associations.get_page,
                from_type,
                to_type,
                batch_input_public_fetch_associations_batch_request=body,
                idempotent=True,
            )
            for result in answer.results:
                out[str(result._from.id)] = [
                    (str(t.to_object_id), [int(a.type_id) for a in t.association_types]) for t in result.to
                ]
        return out

    def property_names(self, object_type: str) -> set[str]:
        """The names of every property an object type has."""
        answer = self.call(
            f"properties {object_type}", self._properties.get_all, object_type, idempotent=True
        )
        return {str(p.name) for p in answer.results}

    # -- writes ----------------------------------------------------------------------
    def update(self, object_type: str, id_: str, properties: dict[str, str]) -> None:
        """Set property values of one record (a PATCH: idempotent)."""
        api = self._basic[object_type]
        self.call(
            f"update {object_type}",
            api.update,
            id_,
            SimplePublicObjectInput(properties=properties),
            idempotent=True,
            record=f"{object_type}/{id_}",
        )

    def create_property(self, object_type: str, definition: dict[str, Any]) -> bool:
        """Define a custom property; False when it exists already.

        The property's name is its key: HubSpot refuses a second property of
        the same name (409), so sending the create again after a timeout is safe.
        """
        try:
            self.call(
                f"create property {object_type}.{definition['name']}",
                self._properties.create,
                object_type,
                definition,  # the wire form; the SDK sends a dict as it is
                idempotent=True,
                record=f"{object_type}.{definition['name']}",
            )
        except HubError as exc:
            if exc.details.get("status") == 409:
                return False
            raise
        return True
