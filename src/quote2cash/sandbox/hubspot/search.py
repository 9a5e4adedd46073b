"""``POST /crm/v3/objects/{objectType}/search``: filter groups, one sort, offset paging and the result cap.

Filter groups are OR-ed, the filters of a group AND-ed. Limits as HubSpot
states them (VENDORS.md §1.3): at most 5 groups, 10 filters a group, 25 in
all, ``limit`` ≤ 200, one sort. ``after`` is an offset; a query can reach its
first ``cap`` results only (10 000 on HubSpot): asking for a page starting
beyond them is a 400, though ``total`` counts every match and the last page
below the cap still offers a ``paging.next``.
"""

from __future__ import annotations

from typing import Any

from quote2cash.sandbox.hubspot.errors import HubSpotError, validation
from quote2cash.sandbox.hubspot.portal import Portal
from quote2cash.sandbox.hubspot.schema import ObjectType, PropertyDef, comparable

OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_KEYS = frozenset({"filterGroups", "sorts", "properties", "limit", "after", "query"})
MAX_GROUPS, MAX_PER_GROUP, MAX_FILTERS, MAX_LIMIT = 5, 10, 25, 200


def _filter_ok(f: dict[str, Any], props: dict[str, PropertyDef]) -> None:
    if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str):
        raise validation("Each filter needs a propertyName", code="INVALID_FILTER")
    unknown = set(f) - {"propertyName", "operator", "value", "values", "highValue"}
    if unknown:
        raise validation(f'Invalid input JSON: Unrecognized field "{sorted(unknown)[0]}" in filter')
    op = f.get("operator")
    if op not in OPERATORS:
        raise validation(
            f"operator {op!r} is not one of {', '.join(sorted(OPERATORS))}", code="INVALID_OPERATOR"
        )
    if f["propertyName"] not in props:
        raise validation(
            f"There was a problem with the request: the property {f['propertyName']} does not exist",
            code="PROPERTY_DOESNT_EXIST",
        )
    if op in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
        raise validation(f"operator {op} needs 'values'", code="INVALID_FILTER")
    if op == "BETWEEN" and (f.get("value") is None or f.get("highValue") is None):
        raise validation("operator BETWEEN needs 'value' and 'highValue'", code="INVALID_FILTER")
    if op not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "BETWEEN") and f.get("value") is None:
        raise validation(f"operator {op} needs a 'value'", code="INVALID_FILTER")


def _matches(f: dict[str, Any], doc: dict[str, Any], props: dict[str, PropertyDef]) -> bool:
    prop = props[f["propertyName"]]
    have = comparable(prop, doc["properties"].get(prop.name))
    op = f["operator"]
    if op == "HAS_PROPERTY":
        return have is not None
    if op == "NOT_HAS_PROPERTY":
        return have is None
    if op in ("IN", "NOT_IN"):
        inside = have is not None and have in {comparable(prop, v) for v in f["values"]}
        return inside if op == "IN" else not inside
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(f["value"]).lower().strip("*")
        found = have is not None and token in str(doc["properties"].get(prop.name, "")).lower()
        return found if op == "CONTAINS_TOKEN" else not found
    want = comparable(prop, f["value"])
    if op == "EQ":
        return have is not None and bool(have == want)
    if op == "NEQ":
        return bool(have != want)
    if have is None or want is None:
        return False
    try:
        if op == "BETWEEN":
            high = comparable(prop, f["highValue"])
            return high is not None and bool(want <= have <= high)
        return bool({"LT": have < want, "LTE": have <= want, "GT": have > want, "GTE": have >= want}[op])
    except TypeError:
        return False


def _sort(sorts: Any, props: dict[str, PropertyDef]) -> tuple[str, bool] | None:
    if sorts in (None, []):
        return None
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise validation("Only one sort is supported", code="TOO_MANY_SORTS")
    sort = sorts[0]
    if isinstance(sort, str):
        name, descending = sort.lstrip("-"), sort.startswith("-")
    elif isinstance(sort, dict) and isinstance(sort.get("propertyName"), str):
        direction = str(sort.get("direction") or "ASCENDING").upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise validation(f"sort direction {direction} is not ASCENDING or DESCENDING")
        name, descending = sort["propertyName"], direction == "DESCENDING"
    else:
        raise validation("a sort is a property name or {propertyName, direction}")
    if name not in props:
        raise validation(f"the sort property {name} does not exist", code="PROPERTY_DOESNT_EXIST")
    return name, descending


def search(portal: Portal, type_: ObjectType, body: Any, cap: int) -> dict[str, Any]:
    """The answer of one search request."""
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: the body must be a search request object")
    unknown = set(body) - _KEYS
    if unknown:
        raise validation(f'Invalid input JSON: Unrecognized field "{sorted(unknown)[0]}"')
    props = portal.properties(type_.name)
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_LIMIT:
        raise validation(f"limit must be between 1 and {MAX_LIMIT}; got {limit!r}", code="INVALID_LIMIT")
    after_raw = body.get("after") or "0"
    if not str(after_raw).isdigit():
        raise validation(f"after {after_raw!r} is not a paging offset", code="INVALID_AFTER")
    after = int(after_raw)
    if after >= cap:
        raise HubSpotError(
            400,
            "VALIDATION_ERROR",
            f"There was a problem with the request: search results are limited to {cap} per query; "
            f"paging to {after} is not allowed. Narrow the filters instead.",
            errors=[{"message": f"after must be below {cap}", "code": "SEARCH_RESULT_LIMIT", "in": "after"}],
        )
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise validation(f"at most {MAX_GROUPS} filterGroups are allowed", code="TOO_MANY_FILTER_GROUPS")
    total_filters = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > MAX_PER_GROUP:
            raise validation(f"a filterGroup has at most {MAX_PER_GROUP} filters", code="TOO_MANY_FILTERS")
        total_filters += len(filters)
        for f in filters:
            _filter_ok(f, props)
    if total_filters > MAX_FILTERS:
        raise validation(f"at most {MAX_FILTERS} filters are allowed", code="TOO_MANY_FILTERS")
    wanted = body.get("properties")
    if wanted is not None and not (isinstance(wanted, list) and all(isinstance(w, str) for w in wanted)):
        raise validation("properties must be a list of property names")
    order = _sort(body.get("sorts"), props)
    query = str(body.get("query") or "").lower()

    rows = [
        d
        for d in portal.rows(type_.name)
        if (not groups or any(all(_matches(f, d, props) for f in g["filters"]) for g in groups))
        and (not query or any(query in str(v).lower() for v in d["properties"].values()))
    ]
    rows.sort(key=lambda d: int(d["id"]))
    if order is not None:
        name, descending = order
        present = [d for d in rows if comparable(props[name], d["properties"].get(name)) is not None]
        absent = [d for d in rows if comparable(props[name], d["properties"].get(name)) is None]
        present.sort(key=lambda d: comparable(props[name], d["properties"][name]), reverse=descending)
        rows = present + absent
    end = min(after + limit, cap, len(rows))
    answer: dict[str, Any] = {
        "total": len(rows),
        "results": [portal.wire(type_, d, wanted) for d in rows[after:end]],
    }
    if end < len(rows):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer
