"""List requests: filters, ordering, paging and side-loads (``include=``).

Ordering is ``order=<field>:<asc|desc>`` (default ``id:asc``); every list
accepts ``id``, ``created_at`` and ``updated_at``, ties broken by id. For time
entries and expenses, ``order=updated_at:asc`` with ``updated_after=`` is
answered from the ``(updated_at, id)`` index: a binary search, no scan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from quote2cash.sandbox.kantata._catalog import RESOURCES, SUBJECT_INDEXES, Filter, Resource
from quote2cash.sandbox.kantata._indexes import partition_for
from quote2cash.sandbox.kantata._schema import SUBJECT_TYPE_OF, SUBJECT_TYPES
from quote2cash.sandbox.kantata._state import KantataState
from quote2cash.sandbox.kantata._wire import (
    Doc,
    KantataError,
    Paging,
    envelope,
    is_date,
    parse_bool,
    parse_timestamp,
)

Predicate = Callable[[Doc], bool]
_NOT_FILTERS = frozenset({"page", "per_page", "limit", "offset", "include"})


def list_envelope(state: KantataState, resource: Resource, params: Mapping[str, str]) -> dict[str, Any]:
    """Answer ``GET /<resource>.json``."""
    paging = Paging.from_params(params)
    with state.store.lock:
        total, ids = _select(state, resource, params, paging)
        docs = [d for d in (state.store.get(resource.name, i) for i in ids) if d is not None]
        presented, included = side_load(state, resource, docs, params.get("include"))
    return envelope(resource.name, presented, total=total, paging=paging, included=included)


def one_envelope(
    state: KantataState, resource: Resource, docs: list[Doc], params: Mapping[str, str]
) -> dict[str, Any]:
    """Answer a GET of one record, or a POST/PUT, with its side-loads."""
    with state.store.lock:
        presented, included = side_load(state, resource, docs, params.get("include"))
    return envelope(resource.name, presented, total=len(presented), included=included)


# -- selection ---------------------------------------------------------------------------
def _select(
    state: KantataState, resource: Resource, params: Mapping[str, str], paging: Paging
) -> tuple[int, list[str]]:
    order, descending = _order(resource, params.get("order"))
    updated_after = _timestamp(params.get("updated_after"))
    include_deleted = resource.large and _flag(params, "include_deleted")
    approved_only = False
    predicates: list[Predicate] = []
    narrowed: set[str] | None = None
    for name, value in params.items():
        flt = resource.filter_named(name)
        if flt is None:
            continue
        if resource.large and name == "approved" and _flag(params, name):
            approved_only = True  # answered by the approved partition of the index
            continue
        predicates.append(_predicate(flt, value))
        if flt.index is not None:
            table = state.children[flt.index]
            found = {c for v in value.split(",") for c in table.get(v.strip(), set())}
            narrowed = found if narrowed is None else narrowed & found
    if resource.name == "external_references":
        narrowed = _narrow_references(state, params, narrowed)
    elif resource.name in SUBJECT_INDEXES:
        narrowed = _narrow_subjects(state, SUBJECT_INDEXES[resource.name], params, narrowed)
    only = [i.strip() for i in params["only"].split(",") if i.strip()] if "only" in params else None
    if resource.name == "workspaces" and only is None and not _flag(params, "include_archived"):
        predicates.append(lambda d: not d.get("archived"))

    if resource.large and order == "updated_at" and not predicates and only is None:
        part = state.changes[resource.name].parts[partition_for(include_deleted, approved_only)]
        keys, start = part.keys, part.position_after(updated_after)
        total = len(keys) - start
        if descending:
            top = len(keys) - paging.offset
            window = keys[max(start, top - paging.limit) : max(start, top)][::-1]
        else:
            window = keys[start + paging.offset : start + paging.offset + paging.limit]
        return total, [str(k[1]) for k in window]

    cache_key = (resource.name, tuple(sorted((k, v) for k, v in params.items() if k not in _NOT_FILTERS)))
    ids = state.cache.get(cache_key, state.versions[resource.name])
    if ids is None:
        ids = _scan(
            state,
            resource,
            order,
            descending,
            updated_after,
            include_deleted,
            approved_only,
            predicates,
            narrowed,
            only,
        )
        state.cache.put(cache_key, state.versions[resource.name], ids)
    return len(ids), ids[paging.offset : paging.offset + paging.limit]


def _scan(
    state: KantataState,
    resource: Resource,
    order: str,
    descending: bool,
    updated_after: str | None,
    include_deleted: bool,
    approved_only: bool,
    predicates: list[Predicate],
    narrowed: set[str] | None,
    only: list[str] | None,
) -> list[str]:
    store, name = state.store, resource.name
    in_order = False  # whether the candidates already come in the requested order
    partitioned = False  # whether they come from the partition asked for, after the cursor
    docs: list[Doc]
    if only is not None or narrowed is not None:
        wanted = dict.fromkeys(only) if only is not None else narrowed or set()
        docs = [d for d in (store.get(name, i) for i in wanted) if d is not None]
    elif resource.large and order == "updated_at":
        index = state.changes[name]
        part = index.parts[partition_for(include_deleted, approved_only)]
        docs = [index.docs[k[1]] for k in part.keys[part.position_after(updated_after) :]]
        in_order = partitioned = True
    elif resource.large:
        index = state.changes[name]
        docs = [index.docs[i] for i in index.ids]
        in_order = order in ("id", "created_at")  # both grow with every create
    else:
        docs = store.all(name)
    checks = list(predicates)
    if resource.large and not partitioned and not include_deleted:
        checks.append(lambda d: "deleted_at" not in d)
    if resource.large and not partitioned and approved_only:
        checks.append(lambda d: bool(d.get("approved")))
    if updated_after is not None and not partitioned:
        after = updated_after
        checks.append(lambda d: d["updated_at"] > after)
    for check in checks:  # one pass per check: list comprehensions beat a combined all()
        docs = [d for d in docs if check(d)]
    if not in_order:
        docs.sort(key=_sort_key(order))
    if descending:
        docs.reverse()
    return [d["id"] for d in docs]


def _narrow_references(
    state: KantataState, params: Mapping[str, str], narrowed: set[str] | None
) -> set[str] | None:
    # The hub looks a reference up by its three identifying fields before every
    # create: answer that from the unique index rather than a scan.
    names = ("service_name", "service_model", "service_model_ref")
    if all(n in params for n in names):
        hit = state.ref_keys.get(
            (params["service_name"], params["service_model"], params["service_model_ref"])
        )
        found = {hit} if hit else set()
        return found if narrowed is None else narrowed & found
    return _narrow_subjects(state, "subject_references", params, narrowed)


def _narrow_subjects(
    state: KantataState, index: str, params: Mapping[str, str], narrowed: set[str] | None
) -> set[str] | None:
    # subject_type with subject_id is answered from the child index filed by subject.
    if "subject_type" in params and "subject_id" in params:
        table = state.children[index]
        found = {
            r
            for s in params["subject_id"].split(",")
            for r in table.get(f"{params['subject_type']}:{s.strip()}", ())
        }
        return found if narrowed is None else narrowed & found
    return narrowed


def _sort_key(order: str) -> Callable[[Doc], tuple[Any, ...]]:
    if order == "id":
        return lambda d: (int(d["id"]),)
    return lambda d: (d.get(order) is None, d.get(order) or "", int(d["id"]))


def _order(resource: Resource, value: str | None) -> tuple[str, bool]:
    if not value:
        return "id", False
    field, _, direction = value.partition(":")
    direction = direction.lower() or "asc"
    if field not in resource.orders or direction not in ("asc", "desc"):
        raise KantataError.validation(
            f"order must be <field>:<asc|desc> with field one of: {', '.join(resource.orders)}", "order"
        )
    return field, direction == "desc"


def _flag(params: Mapping[str, str], name: str) -> bool:
    if name not in params:
        return False
    value = parse_bool(params[name])
    if value is None:
        raise KantataError.validation(f"{name} must be true or false", name)
    return value


def _timestamp(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise KantataError.validation(
            "updated_after must be an ISO 8601 date or time", "updated_after"
        ) from exc


def _predicate(flt: Filter, value: str) -> Predicate:
    field = flt.field
    if flt.kind in ("ids", "in"):
        wanted = {v.strip() for v in value.split(",")}
        return lambda d: d.get(field) in wanted
    if flt.kind == "text":
        return lambda d: d.get(field) == value
    if flt.kind == "contains":
        needle = value.lower()
        return lambda d: needle in str(d.get(field) or "").lower()
    if flt.kind == "bool":
        wanted_bool = parse_bool(value)
        if wanted_bool is None:
            raise KantataError.validation(f"{flt.param} must be true or false", flt.param)
        return lambda d: bool(d.get(field)) == wanted_bool
    low, _, high = value.partition(":")
    if not (is_date(low) and is_date(high)) or high < low:
        raise KantataError.validation(f"{flt.param} must be YYYY-MM-DD:YYYY-MM-DD", flt.param)
    return lambda d: d.get(field) is not None and low <= d[field] <= high


# -- side-loads --------------------------------------------------------------------------
def present(resource: Resource, doc: Doc) -> Doc:
    """The wire form of a stored record (a copy the caller may decorate)."""
    out = dict(doc)
    if resource.large:
        out.setdefault("deleted_at", None)
    return out


def side_load(
    state: KantataState, resource: Resource, docs: list[Doc], include: str | None
) -> tuple[list[Doc], dict[str, dict[str, Doc]]]:
    """Copies of ``docs`` decorated with association ids, and the included collections."""
    presented = [present(resource, d) for d in docs]
    included: dict[str, dict[str, Doc]] = {}
    names = [n.strip() for n in (include or "").split(",") if n.strip()]
    for name in names:
        spec = resource.includes.get(name)
        if spec is None:
            valid = ", ".join(resource.includes) or "none"
            raise KantataError.validation(
                f"{name} is not an include of {resource.name} (valid: {valid})", "include"
            )
        for doc in presented:
            target = spec.target
            related: list[str]
            if spec.via == "fk":
                related = [doc[spec.field]] if doc.get(spec.field) else []
            elif spec.via == "children":
                related = sorted(state.children[spec.field].get(doc["id"], ()), key=int)
                doc[spec.ids_field] = related
            elif spec.via == "subject_children":
                subject = f"{SUBJECT_TYPE_OF[resource.name]}:{doc['id']}"
                related = sorted(state.children[spec.field].get(subject, ()), key=int)
                doc[spec.ids_field] = related
            else:
                target, related = SUBJECT_TYPES[doc["subject_type"]], [doc["subject_id"]]
            bucket = included.setdefault(target, {})
            for rid in related:
                if rid and rid not in bucket:
                    found = state.find(target, rid)
                    if found is not None:
                        bucket[rid] = present(RESOURCES[target], found)
    return presented, included
