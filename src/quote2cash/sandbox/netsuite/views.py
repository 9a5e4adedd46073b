"""How NetSuite renders records and collections: links, refName, sublists, paging."""

from __future__ import annotations

from typing import Any

from quote2cash.sandbox.netsuite.records import RECORD_PATH, RecordBook
from quote2cash.sandbox.netsuite.schema import TYPES


def _self(href: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": href}]


def render_ref(book: RecordBook, targets: tuple[str, ...], ref: dict[str, Any], base: str) -> dict[str, Any]:
    """``{"links", "id", "refName"}`` for a reference, as NetSuite expands them."""
    id_ = str(ref.get("id"))
    for target in targets:
        doc = book.get(target, id_)
        if doc is not None:
            href = f"{base}{RECORD_PATH}/{target}/{id_}"
            return {"links": _self(href), "id": id_, "refName": book.ref_name(target, doc)}
    return {"id": id_}


def render_sublist(
    book: RecordBook, type_: str, name: str, value: dict[str, Any], href: str, base: str, *, expand: bool
) -> dict[str, Any]:
    """A sublist: only its link, or (``expandSubResources=true``) its lines."""
    if not expand:
        return {"links": _self(href)}
    refs = TYPES[type_].sublists.get(name, {})
    items: list[dict[str, Any]] = [
        {
            "links": [],
            **{
                k: render_ref(book, refs[k], v, base) if k in refs and isinstance(v, dict) else v
                for k, v in line.items()
            },
        }
        for line in value.get("items", [])
    ]
    return {
        "links": _self(href),
        "count": len(items),
        "hasMore": False,
        "offset": 0,
        "totalResults": len(items),
        "items": items,
    }


def render_record(
    book: RecordBook, type_: str, doc: dict[str, Any], base: str, *, expand: bool
) -> dict[str, Any]:
    """A record as ``GET /record/v1/{type}/{id}`` returns it."""
    rt = TYPES[type_]
    href = f"{base}{RECORD_PATH}/{type_}/{doc['id']}"
    out: dict[str, Any] = {"links": _self(href)}
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            out[key] = render_sublist(book, type_, key, value, f"{href}/{key}", base, expand=expand)
        elif key in rt.refs and isinstance(value, dict):
            out[key] = render_ref(book, rt.refs[key], value, base)
        else:
            out[key] = value
    return out


def collection(
    items: list[dict[str, Any]], *, total: int, offset: int, limit: int, href: str
) -> dict[str, Any]:
    """The paging envelope of record lists and SuiteQL answers."""
    has_more = offset + len(items) < total
    sep = "&" if "?" in href else "?"
    links = [{"rel": "self", "href": f"{href}{sep}limit={limit}&offset={offset}"}]
    if has_more:
        links.insert(0, {"rel": "next", "href": f"{href}{sep}limit={limit}&offset={offset + limit}"})
    return {
        "links": links,
        "count": len(items),
        "hasMore": has_more,
        "offset": offset,
        "totalResults": total,
        "items": items,
    }


__all__ = ["collection", "render_record", "render_ref", "render_sublist"]
