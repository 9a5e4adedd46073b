"""Field rules of each Kantata resource: what a write may contain and what is stored.

Each ``check_*`` function reads one request object (already merged over the
stored record for an update) and returns the writable fields, normalised;
server-managed fields (``id``, ``created_at``, ``updated_at``, ``approved``,
``deleted_at``) are set by the state, never taken from a request. Unknown
fields are ignored, as Kantata's strong parameters do, except in a custom
field value, where an unknown field is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from quote2cash.sandbox.kantata._catalog import RESOURCES
from quote2cash.sandbox.kantata._wire import Doc, Fields, KantataError

STORY_TYPES = ("task", "deliverable", "milestone", "issue")
STORY_STATES = ("not started", "started", "needs feedback", "blocked", "completed")
CREATOR_ROLES = ("maven", "buyer")
REQUEST_STATUSES = ("requested", "approved", "rejected", "canceled")

# Kantata reports a workspace status as {"color", "key", "message"}; the keys and
# colours below are the sandbox's own table (the real account's list is configurable).
WORKSPACE_STATUSES: dict[str, tuple[int, str]] = {
    "Not Started": (100, "grey"),
    "In Planning": (200, "light_green"),
    "Active": (300, "green"),
    "On Hold": (400, "yellow"),
    "Completed": (500, "blue"),
    "Cancelled": (600, "red"),
}
DEFAULT_STATUS = "Not Started"

# external_references.subject_type -> resource holding the subject.
SUBJECT_TYPES: dict[str, str] = {
    "Workspace": "workspaces",
    "Story": "stories",
    "TimeEntry": "time_entries",
    "Expense": "expenses",
    "User": "users",
    "Participation": "participations",
    "ResourceRequest": "resource_requests",
}
SUBJECT_TYPE_OF = {resource: type_ for type_, resource in SUBJECT_TYPES.items()}

# Custom field types the sandbox knows: text types hold a string, ``number`` a number.
CUSTOM_FIELD_TYPES = ("string", "text", "number")
# What a custom field value request may hold: the writable fields, then the
# read-only ones a client may send back unchanged (they are ignored).
CUSTOM_FIELD_VALUE_WRITABLE = ("subject_type", "subject_id", "custom_field_id", "value")
CUSTOM_FIELD_VALUE_READ_ONLY = ("id", "custom_field_name", "display_value", "created_at", "updated_at")

TEMPLATE_STORY_TYPES = {
    "phase": "deliverable",
    "deliverable": "deliverable",
    "task": "task",
    "milestone": "milestone",
}


class Lookup(Protocol):
    """Read access to live records, for cross-record checks."""

    def find(self, resource: str, id_: str) -> Doc | None:
        """A live (not deleted) record, or None."""


def status_object(message: str) -> dict[str, Any]:
    """The status object Kantata returns for a status message."""
    key, color = WORKSPACE_STATUSES[message]
    return {"color": color, "key": key, "message": message}


def _status(f: Fields) -> dict[str, Any]:
    value = f.raw.get("status")
    if isinstance(value, Mapping):
        value = value.get("message", value.get("key"))
    if value is None or value == "":
        return status_object(DEFAULT_STATUS)
    for message, (key, _) in WORKSPACE_STATUSES.items():
        if value == key or (isinstance(value, str) and value.strip().lower() == message.lower()):
            return status_object(message)
    f.fail("status", f"must be one of: {', '.join(WORKSPACE_STATUSES)}")
    return status_object(DEFAULT_STATUS)


def _exists(f: Fields, db: Lookup, field: str, resource: str, id_: str | None) -> Doc | None:
    if id_ is None:
        return None
    found = db.find(resource, id_)
    if found is None:
        f.fail(field, f"refers to an unknown {RESOURCES[resource].singular.replace('_', ' ')} ({id_})")
    return found


def _date_order(f: Fields, doc: Doc, start: str, end: str) -> None:
    if doc.get(start) and doc.get(end) and doc[end] < doc[start]:
        f.fail(end, f"must be on or after {start}")


def check_workspace(f: Fields, db: Lookup) -> Doc:
    """Workspace (project) fields."""
    doc: Doc = {
        "title": f.text("title", required=True),
        "description": f.text("description", default=""),
        "currency": f.currency("currency", default="USD"),
        "price_in_cents": f.integer("price_in_cents", minimum=0),
        # What has been invoiced on the project (a custom field of the hub's, written back by F8).
        "billed_to_date_in_cents": f.integer("billed_to_date_in_cents", minimum=0),
        "budgeted": f.boolean("budgeted", default=False),
        "start_date": f.date("start_date"),
        "due_date": f.date("due_date"),
        "status": _status(f),
        "archived": f.boolean("archived", default=False),
        "creator_role": f.choice("creator_role", CREATOR_ROLES, default="maven"),
        "project_template_id": f.ref("project_template_id"),
    }
    _date_order(f, doc, "start_date", "due_date")
    if (
        _exists(f, db, "project_template_id", "project_templates", doc["project_template_id"])
        and not doc["start_date"]
    ):
        f.fail("start_date", "can't be blank when a project_template_id is given")
    return doc


def check_story(f: Fields, db: Lookup, own_id: str | None = None) -> Doc:
    """Story (task, deliverable, milestone, issue) fields."""
    doc: Doc = {
        "workspace_id": f.ref("workspace_id", required=True),
        "title": f.text("title", required=True),
        "description": f.text("description", default=""),
        "story_type": f.choice("story_type", STORY_TYPES, default="task"),
        "parent_id": f.ref("parent_id"),
        "start_date": f.date("start_date"),
        "due_date": f.date("due_date"),
        "state": f.choice("state", STORY_STATES, default="not started"),
        "billable": f.boolean("billable", default=True),
    }
    _date_order(f, doc, "start_date", "due_date")
    _exists(f, db, "workspace_id", "workspaces", doc["workspace_id"])
    parent = _exists(f, db, "parent_id", "stories", doc["parent_id"])
    if parent is not None and parent["workspace_id"] != doc["workspace_id"]:
        f.fail(
            "parent_id", f"refers to story {parent['id']}, which is not in workspace {doc['workspace_id']}"
        )
    if own_id is not None and doc["parent_id"] == own_id:
        f.fail("parent_id", "cannot refer to the story itself")
    return doc


def check_participation(f: Fields, db: Lookup) -> Doc:
    """Participation (a user on a workspace team) fields."""
    doc: Doc = {
        "workspace_id": f.ref("workspace_id", required=True),
        "user_id": f.ref("user_id", required=True),
        "role": f.choice("role", CREATOR_ROLES, default="maven"),
        "role_id": f.ref("role_id"),
    }
    _exists(f, db, "workspace_id", "workspaces", doc["workspace_id"])
    _exists(f, db, "user_id", "users", doc["user_id"])
    _exists(f, db, "role_id", "roles", doc["role_id"])
    return doc


def check_resource_request(f: Fields, db: Lookup) -> Doc:
    """Resource request (staffing need by role and dates) fields; ``hours`` become minutes."""
    minutes = f.integer("minutes", minimum=1)
    if minutes is None and "minutes" not in f.raw:
        minutes = f.minutes_from_hours("hours")
        if minutes is None and "hours" not in f.raw:
            f.fail("minutes", "can't be blank (give minutes or hours)")
        elif minutes is not None and minutes <= 0:
            f.fail("hours", "must be greater than 0")
    doc: Doc = {
        "workspace_id": f.ref("workspace_id", required=True),
        "role_id": f.ref("role_id", required=True),
        "start_date": f.date("start_date", required=True),
        "end_date": f.date("end_date", required=True),
        "minutes": minutes,
        "status": f.choice("status", REQUEST_STATUSES, default="requested"),
        "notes": f.text("notes", default=""),
    }
    _date_order(f, doc, "start_date", "end_date")
    _exists(f, db, "workspace_id", "workspaces", doc["workspace_id"])
    _exists(f, db, "role_id", "roles", doc["role_id"])
    return doc


def _workspace_and_story(f: Fields, db: Lookup, doc: Doc) -> Doc | None:
    workspace = _exists(f, db, "workspace_id", "workspaces", doc["workspace_id"])
    story = _exists(f, db, "story_id", "stories", doc.get("story_id"))
    if story is not None and workspace is not None and story["workspace_id"] != doc["workspace_id"]:
        f.fail("story_id", f"refers to story {story['id']}, which is not in workspace {doc['workspace_id']}")
    _exists(f, db, "user_id", "users", doc["user_id"])
    return workspace


def check_time_entry(f: Fields, db: Lookup) -> Doc:
    """Time entry fields; the currency defaults to the workspace's."""
    doc: Doc = {
        "workspace_id": f.ref("workspace_id", required=True),
        "story_id": f.ref("story_id"),
        "user_id": f.ref("user_id"),
        "date_performed": f.date("date_performed", required=True),
        "time_in_minutes": f.integer("time_in_minutes", required=True, minimum=1),
        "billable": f.boolean("billable", default=True),
        "notes": f.text("notes", default=""),
        "rate_in_cents": f.integer("rate_in_cents", default=0, minimum=0),
        "currency": f.currency("currency", default=""),
    }
    workspace = _workspace_and_story(f, db, doc)
    if not doc["currency"]:
        doc["currency"] = workspace["currency"] if workspace else "USD"
    return doc


def check_expense(f: Fields, db: Lookup) -> Doc:
    """Expense fields; the currency defaults to the workspace's."""
    doc: Doc = {
        "workspace_id": f.ref("workspace_id", required=True),
        "user_id": f.ref("user_id"),
        "date": f.date("date", required=True),
        "category": f.text("category", default=""),
        "expense_category_id": f.ref("expense_category_id"),
        "amount_in_cents": f.integer("amount_in_cents", required=True, minimum=1),
        "currency": f.currency("currency", default=""),
        "billable": f.boolean("billable", default=True),
        "reimbursable": f.boolean("reimbursable", default=False),
        "notes": f.text("notes", default=""),
    }
    workspace = _workspace_and_story(f, db, doc)
    if not doc["currency"]:
        doc["currency"] = workspace["currency"] if workspace else "USD"
    return doc


def check_external_reference(f: Fields, db: Lookup, *, subject_given: bool = True) -> Doc:
    """External reference fields; ``subject_given=False`` when nested in its subject's write."""
    doc: Doc = {
        "service_name": f.text("service_name", required=True),
        "service_model": f.text("service_model", required=True),
        "service_model_ref": f.text("service_model_ref", required=True),
        "external_status": f.text("external_status"),
        "external_message": f.text("external_message"),
        "external_link": f.text("external_link"),
    }
    if subject_given:
        subject_type = f.text("subject_type", required=True)
        doc["subject_type"] = subject_type
        doc["subject_id"] = f.ref("subject_id", required=True)
        if subject_type is not None and subject_type not in SUBJECT_TYPES:
            f.fail("subject_type", f"must be one of: {', '.join(SUBJECT_TYPES)}")
        elif subject_type is not None:
            _exists(f, db, "subject_id", SUBJECT_TYPES[subject_type], doc["subject_id"])
    return doc


def check_custom_field(f: Fields) -> Doc:
    """Custom field definition fields (seeded from Python)."""
    doc: Doc = {
        "name": f.text("name", required=True),
        "subject_type": f.text("subject_type", required=True),
        "type": f.choice("type", CUSTOM_FIELD_TYPES, default="string"),
    }
    if doc["subject_type"] is not None and doc["subject_type"] not in SUBJECT_TYPES:
        f.fail("subject_type", f"must be one of: {', '.join(SUBJECT_TYPES)}")
    return doc


def check_custom_field_value(f: Fields, db: Lookup, old: Doc | None = None) -> Doc:
    """Custom field value fields; ``old`` is the stored value on an update.

    The field must exist and belong to the subject's type, and the subject must
    exist; on an update only ``value`` may change.
    """
    known = CUSTOM_FIELD_VALUE_WRITABLE + CUSTOM_FIELD_VALUE_READ_ONLY
    for name in f.raw:
        if name not in known:
            f.fail(name, "is not an attribute of a custom field value")
    doc: Doc = {
        "subject_type": f.text("subject_type", required=True),
        "subject_id": f.ref("subject_id", required=True),
        "custom_field_id": f.ref("custom_field_id", required=True),
    }
    if old is not None:
        for name, given in doc.items():
            if given is not None and given != old[name]:
                f.fail(name, "can't be changed")
        return {**doc, **_custom_value(f, db.find("custom_fields", old["custom_field_id"]))}
    subject_type = doc["subject_type"]
    if subject_type is not None and subject_type not in SUBJECT_TYPES:
        f.fail("subject_type", f"must be one of: {', '.join(SUBJECT_TYPES)}")
    field = _exists(f, db, "custom_field_id", "custom_fields", doc["custom_field_id"])
    if field is not None and subject_type is not None and subject_type != field["subject_type"]:
        f.fail(
            "subject_type",
            f"must be {field['subject_type']}, the subject type of custom field {field['id']}"
            f" ({field['name']})",
        )
    elif subject_type in SUBJECT_TYPES:
        _exists(f, db, "subject_id", SUBJECT_TYPES[subject_type], doc["subject_id"])
    return {**doc, **_custom_value(f, field)}


def _custom_value(f: Fields, field: Doc | None) -> Doc:
    kind = field["type"] if field is not None else "string"
    value: str | int | float | None = (
        _number(f, "value") if kind == "number" else f.text("value", required=True)
    )
    return {
        "value": value,
        "custom_field_name": field["name"] if field is not None else None,
        "display_value": None if value is None else str(value),
    }


def _number(f: Fields, name: str) -> int | float | None:
    raw = f.raw.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        f.fail(name, "can't be blank")
        return None
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float) or not number.is_finite():
        f.fail(name, "must be a number")
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def check_user(f: Fields) -> Doc:
    """User fields (seeded from Python)."""
    return {
        "full_name": f.text("full_name", required=True),
        "email_address": f.text("email_address", required=True),
        "headline": f.text("headline", default=""),
    }


def check_template_stories(stories: list[Mapping[str, Any]]) -> list[Doc]:
    """A project template's story blueprint; parents must come before their children."""
    f = Fields({}, where="")
    titles: set[str] = set()
    out: list[Doc] = []
    for n, raw in enumerate(stories):
        item = Fields(raw, where=f"stories[{n}]: ")
        kind = item.choice("story_type", tuple(TEMPLATE_STORY_TYPES), default="task")
        doc: Doc = {
            "title": item.text("title", required=True),
            "story_type": TEMPLATE_STORY_TYPES[kind],
            "parent_title": item.text("parent_title"),
            "offset_days": item.integer("offset_days", default=0, minimum=0),
            "duration_days": item.integer("duration_days", default=0, minimum=0),
        }
        if doc["parent_title"] is not None and doc["parent_title"] not in titles:
            item.fail("parent_title", f"must name a story listed before it ({doc['parent_title']!r})")
        titles.add(str(doc["title"]))
        f.errors.extend(item.errors)
        out.append(doc)
    f.raise_errors()
    return out


def require_object(body: Any, key: str) -> Mapping[str, Any]:
    """``body[key]`` as a JSON object, or a 422 naming the key."""
    value = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(value, Mapping):
        raise KantataError.validation(f"the request body must hold a '{key}' object", key)
    return value
