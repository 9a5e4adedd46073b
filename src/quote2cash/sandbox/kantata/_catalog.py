"""What the sandbox serves for each Kantata resource: routes, filters, orders, side-loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from quote2cash.sandbox.kantata._wire import Doc

FilterKind = Literal["ids", "in", "bool", "contains", "between", "text"]
IncludeVia = Literal["fk", "children", "subject_children", "subject"]


@dataclass(frozen=True)
class Filter:
    """A query parameter that narrows a list.

    Kinds: ``ids`` (comma-separated ids), ``in`` (comma-separated values),
    ``text`` (exact string), ``bool``, ``contains`` (case-insensitive
    substring), ``between`` (``YYYY-MM-DD:YYYY-MM-DD``, inclusive).
    """

    param: str
    kind: FilterKind
    field: str
    index: str | None = None  # a child index that answers this filter directly


@dataclass(frozen=True)
class Include:
    """A side-load accepted in ``include=``.

    ``fk``: the object holds ``field``, the related object goes into ``target``.
    ``children``: the related objects come from child index ``field``; their
    ids are listed on the object under ``ids_field``.
    ``subject_children``: likewise, from a child index filed by polymorphic
    subject (``<SubjectType>:<id>``), such as the object's external references
    or custom field values. ``subject``: the subject of an external reference
    or of a custom field value.
    """

    via: IncludeVia
    target: str = ""
    field: str = ""
    ids_field: str = ""


@dataclass(frozen=True)
class Resource:
    """One ``/api/v1/<name>.json`` resource."""

    name: str
    singular: str
    methods: frozenset[str]
    filters: tuple[Filter, ...] = ()
    orders: tuple[str, ...] = ("id", "created_at", "updated_at")
    includes: dict[str, Include] = field(default_factory=dict)
    bulk: bool = False  # POST accepts up to 100 objects under the plural key
    large: bool = False  # ordered (updated_at, id) indexes and tombstones on delete

    def filter_named(self, param: str) -> Filter | None:
        """The filter for a query parameter, if this resource has one."""
        return next((f for f in self.filters if f.param == param), None)


# child index name -> (resource, field of the child that points at its parent)
CHILD_INDEXES: dict[str, tuple[str, str]] = {
    "workspace_stories": ("stories", "workspace_id"),
    "sub_stories": ("stories", "parent_id"),
    "workspace_participations": ("participations", "workspace_id"),
    "workspace_resource_requests": ("resource_requests", "workspace_id"),
    "subject_references": ("external_references", "subject"),
    "subject_custom_field_values": ("custom_field_values", "subject"),
    "field_values": ("custom_field_values", "custom_field_id"),
}
# resource -> its child index filed by subject (see ``child_key``)
SUBJECT_INDEXES: dict[str, str] = {
    resource: index for index, (resource, fk) in CHILD_INDEXES.items() if fk == "subject"
}


def child_key(index: str, doc: Doc | None) -> str | None:
    """The parent key a child document is filed under in ``index``."""
    if doc is None:
        return None
    _, fk = CHILD_INDEXES[index]
    if fk == "subject":
        return f"{doc['subject_type']}:{doc['subject_id']}"
    value = doc.get(fk)
    return None if value is None else str(value)


_REFS = Include("subject_children", "external_references", "subject_references", "external_reference_ids")
_VALUES = Include(
    "subject_children", "custom_field_values", "subject_custom_field_values", "custom_field_value_ids"
)


def _fk(target: str, fk: str) -> Include:
    return Include("fk", target, fk)


_READ = frozenset({"list", "get"})
_ALL = frozenset({"list", "get", "create", "update", "delete"})

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "workspaces",
            "workspace",
            _ALL,
            filters=(Filter("search", "contains", "title"),),
            orders=("id", "created_at", "updated_at", "title", "start_date", "due_date"),
            includes={
                "stories": Include("children", "stories", "workspace_stories", "story_ids"),
                "participations": Include(
                    "children", "participations", "workspace_participations", "participation_ids"
                ),
                "resource_requests": Include(
                    "children", "resource_requests", "workspace_resource_requests", "resource_request_ids"
                ),
                "external_references": _REFS,
                "custom_field_values": _VALUES,
            },
        ),
        Resource("project_templates", "project_template", _READ),
        Resource(
            "stories",
            "story",
            _READ | {"create", "update"},
            filters=(
                Filter("workspace_id", "ids", "workspace_id", "workspace_stories"),
                Filter("parent_id", "ids", "parent_id", "sub_stories"),
                Filter("story_type", "in", "story_type"),
                Filter("state", "in", "state"),
            ),
            orders=("id", "created_at", "updated_at", "title", "start_date", "due_date"),
            includes={
                "workspace": _fk("workspaces", "workspace_id"),
                "parent": _fk("stories", "parent_id"),
                "sub_stories": Include("children", "stories", "sub_stories", "sub_story_ids"),
                "external_references": _REFS,
            },
        ),
        Resource("users", "user", _READ, includes={"external_references": _REFS}),
        Resource("roles", "role", _READ),
        Resource(
            "participations",
            "participation",
            _READ | {"create"},
            filters=(
                Filter("workspace_id", "ids", "workspace_id", "workspace_participations"),
                Filter("user_id", "ids", "user_id"),
            ),
            includes={"workspace": _fk("workspaces", "workspace_id"), "user": _fk("users", "user_id")},
        ),
        Resource(
            "resource_requests",
            "resource_request",
            _READ | {"create"},
            filters=(
                Filter("workspace_id", "ids", "workspace_id", "workspace_resource_requests"),
                Filter("role_id", "ids", "role_id"),
                Filter("status", "in", "status"),
            ),
            includes={"workspace": _fk("workspaces", "workspace_id"), "role": _fk("roles", "role_id")},
        ),
        Resource(
            "time_entries",
            "time_entry",
            _ALL,
            bulk=True,
            large=True,
            filters=(
                Filter("workspace_id", "ids", "workspace_id"),
                Filter("story_id", "ids", "story_id"),
                Filter("user_id", "ids", "user_id"),
                Filter("billable", "bool", "billable"),
                Filter("approved", "bool", "approved"),
                Filter("date_performed_between", "between", "date_performed"),
            ),
            orders=("id", "created_at", "updated_at", "date_performed"),
            includes={
                "workspace": _fk("workspaces", "workspace_id"),
                "story": _fk("stories", "story_id"),
                "user": _fk("users", "user_id"),
                "external_references": _REFS,
                "custom_field_values": _VALUES,
            },
        ),
        Resource(
            "expenses",
            "expense",
            _ALL,
            bulk=True,
            large=True,
            filters=(
                Filter("workspace_id", "ids", "workspace_id"),
                Filter("user_id", "ids", "user_id"),
                Filter("billable", "bool", "billable"),
                Filter("reimbursable", "bool", "reimbursable"),
                Filter("approved", "bool", "approved"),
                Filter("date_between", "between", "date"),
            ),
            orders=("id", "created_at", "updated_at", "date"),
            includes={
                "workspace": _fk("workspaces", "workspace_id"),
                "user": _fk("users", "user_id"),
                "external_references": _REFS,
                "custom_field_values": _VALUES,
            },
        ),
        Resource(
            "external_references",
            "external_reference",
            _READ | {"create"},
            filters=(
                Filter("subject_type", "text", "subject_type"),
                Filter("subject_id", "ids", "subject_id"),
                Filter("service_name", "text", "service_name"),
                Filter("service_model", "text", "service_model"),
                Filter("service_model_ref", "text", "service_model_ref"),
            ),
            includes={"subject": Include("subject")},
        ),
        Resource(
            "custom_fields",
            "custom_field",
            _READ,
            filters=(Filter("subject_types", "in", "subject_type"),),
            orders=("id", "created_at", "updated_at", "name"),
        ),
        Resource(
            "custom_field_values",
            "custom_field_value",
            _ALL,
            bulk=True,
            filters=(
                Filter("subject_type", "text", "subject_type"),
                Filter("subject_id", "ids", "subject_id"),
                Filter("custom_field_id", "ids", "custom_field_id", "field_values"),
            ),
            includes={"subject": Include("subject"), "custom_field": _fk("custom_fields", "custom_field_id")},
        ),
    )
}
