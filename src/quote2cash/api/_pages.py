"""One way to page and filter, on every list of the API.

Lists take ``limit`` (1–200, default 50) and ``offset`` (default 0) and
answer ``{"items": [...], "total": N, "limit": L, "offset": O, "next": URL|null}``;
filters are plain query parameters named after the field they filter
(``status``, ``code``, ``owner``, ``system``, ``flow``, ``subject`` ...),
and times are ISO 8601 (``since``, ``until``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    """The ``limit`` and ``offset`` of a list request."""

    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0,
) -> PageParams:
    """The paging parameters every list takes."""
    return PageParams(limit, offset)


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next: str | None


def page(request: Request, items: Sequence[Any], params: PageParams) -> dict[str, Any]:
    """The page of ``items`` (all of them, filtered) that ``params`` asks for."""
    total = len(items)
    end = params.offset + params.limit
    nxt = str(request.url.include_query_params(offset=end, limit=params.limit)) if end < total else None
    return {
        "items": list(items[params.offset : end]),
        "total": total,
        "limit": params.limit,
        "offset": params.offset,
        "next": nxt,
    }
