"""The Kantata OX (Mavenlink) API v1 sandbox.

Sandbox conventions beyond the real API (documented because a client may rely on them):

- ``updated_at`` is a UTC timestamp with microseconds (``2025-01-23T10:00:00.123456Z``)
  and strictly increases with every write, so ``updated_after=<last seen>`` with
  ``order=updated_at:asc`` never misses nor repeats a change.
- Deleting a time entry or an expense keeps a tombstone:
  ``GET /time_entries.json?include_deleted=true`` lists it with ``deleted_at`` set
  (real Kantata reports deletions through its Subscribed Events feed instead).
- ``approved=true|false`` filters on the value given (real Kantata treats any value as true).
- Approved time entries and expenses cannot be changed or deleted over HTTP (422);
  approval goes through timesheet and expense report submissions, as in Kantata
  (see :mod:`quote2cash.sandbox.kantata._approvals`), and cancelling an approved
  submission un-approves its entries so they can be edited again.
- A workspace ``status`` is returned as ``{"color", "key", "message"}``; a write may
  give the message (``"Active"``), the key, or that object.
- Archived workspaces are left out of lists unless ``include_archived=true`` or ``only=``.
- Creates answer HTTP 200 with the usual envelope; DELETE answers 204.
- Custom fields (``/custom_fields.json``, read only; seeded with :meth:`KantataSandbox.add_custom_field`)
  may be defined for any subject type external references take, time entries and
  expenses included (real Kantata's custom field sets take Workspace, Story, User
  and WorkspaceGroup). A subject holds one value per field: a second create for the
  same field and subject is refused (real Kantata replaces the value with a new id);
  change it with ``PUT /custom_field_values/<id>.json``. A custom field value
  refuses unknown fields, and on an update only ``value`` may change.
- Setting a custom field value leaves its subject's ``updated_at`` alone; deleting
  the subject deletes its values. ``include=custom_field_values`` on workspaces,
  time entries and expenses lists ``custom_field_value_ids`` and side-loads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from quote2cash.sandbox._base import FaultRule, Sandbox
from quote2cash.sandbox.kantata._catalog import RESOURCES
from quote2cash.sandbox.kantata._routes import install_api
from quote2cash.sandbox.kantata._state import KantataState
from quote2cash.sandbox.kantata._wire import Doc, KantataError


class KantataSandbox(Sandbox):
    """A local emulator of the Kantata OX API v1, with Python-side seeding helpers.

    The helpers validate like the API does and raise :class:`KantataError`
    (a ``ValueError``) on a bad record.
    """

    vendor = "kantata"
    state: KantataState

    def __init__(
        self, path: Path | str | None = None, *, seed: int = 0, token: str = "kantata-sandbox-token"
    ) -> None:
        self.token = token
        super().__init__(path, seed=seed)
        self.state = KantataState(self.store)

    def install_routes(self, app: FastAPI) -> None:
        """Add the ``/api/v1`` routes."""
        install_api(app, self)

    def fault_response(self, rule: FaultRule) -> Response:
        """The rule's body, or a Kantata-format error for its status."""
        if rule.body is not None:
            return JSONResponse(rule.body, rule.status)
        kind = "validation" if rule.status == 422 else "system"
        return JSONResponse(
            {"errors": [{"type": kind, "message": f"injected fault (HTTP {rule.status})"}]}, rule.status
        )

    # -- seeding -----------------------------------------------------------------------
    def _create_one(self, resource: str, fields: Mapping[str, Any]) -> str:
        return str(self.state.create(resource, [fields], trusted=True)[0]["id"])

    def add_user(self, full_name: str, email: str, headline: str = "") -> str:
        """Add a user; returns its id."""
        return self._create_one(
            "users", {"full_name": full_name, "email_address": email, "headline": headline}
        )

    def add_role(self, name: str) -> str:
        """Add a role; returns its id."""
        return self._create_one("roles", {"name": name})

    def add_template(self, name: str, stories: Iterable[Mapping[str, Any]]) -> str:
        """Add a project template.

        ``stories`` items: ``title``, ``story_type`` (``phase``/``deliverable``,
        ``task`` or ``milestone``), optional ``parent_title`` (a story listed
        earlier), ``offset_days`` from the workspace start and ``duration_days``.
        """
        return self._create_one("project_templates", {"name": name, "stories": list(stories)})

    def add_workspace(self, fields: Mapping[str, Any]) -> str:
        """Add a workspace (template and nested ``external_references`` apply); returns its id."""
        return self._create_one("workspaces", fields)

    def add_story(self, fields: Mapping[str, Any]) -> str:
        """Add a story; returns its id."""
        return self._create_one("stories", fields)

    def add_participation(self, workspace_id: str, user_id: str, role: str = "maven") -> str:
        """Put a user on a workspace team; returns the participation id."""
        return self._create_one(
            "participations", {"workspace_id": workspace_id, "user_id": user_id, "role": role}
        )

    def add_custom_field(self, name: str, subject_type: str, type: str = "string") -> str:
        """Define a custom field (``type``: ``string``, ``text`` or ``number``); returns its id."""
        return self._create_one("custom_fields", {"name": name, "subject_type": subject_type, "type": type})

    def set_custom_field_value(
        self, subject_type: str, subject_id: str, custom_field_id: str, value: str
    ) -> str:
        """Set a custom field on a subject (create, or update its value); returns the value id."""
        with self.store.lock:
            existing = self.state.custom_field_value(str(custom_field_id), subject_type, str(subject_id))
            if existing is not None:
                return str(self.state.update("custom_field_values", existing["id"], {"value": value})["id"])
            return self._create_one(
                "custom_field_values",
                {
                    "subject_type": subject_type,
                    "subject_id": subject_id,
                    "custom_field_id": custom_field_id,
                    "value": value,
                },
            )

    def add_time_entries(self, entries: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add many time entries in one write (``approved`` may be given); returns their ids."""
        return [d["id"] for d in self.state.create("time_entries", list(entries), trusted=True)]

    def add_expenses(self, expenses: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add many expenses in one write (``approved`` may be given); returns their ids."""
        return [d["id"] for d in self.state.create("expenses", list(expenses), trusted=True)]

    def approve_time_entries(self, ids: Iterable[str]) -> None:
        """Approve time entries (each approval is a write: updated_at moves)."""
        self.state.set_approved("time_entries", [str(i) for i in ids])

    def approve_expenses(self, ids: Iterable[str]) -> None:
        """Approve expenses (each approval is a write: updated_at moves)."""
        self.state.set_approved("expenses", [str(i) for i in ids])

    def update_time_entry(self, id_: str, fields: Mapping[str, Any]) -> Doc:
        """Change a time entry, approved or not (``approved`` may be given); returns it."""
        return dict(self.state.update("time_entries", str(id_), fields, trusted=True))

    def update_story(self, id_: str, fields: Mapping[str, Any]) -> Doc:
        """Change a story (e.g. a milestone signed off: ``{"state": "completed"}``); returns it."""
        return dict(self.state.update("stories", str(id_), fields))

    def delete_time_entry(self, id_: str) -> None:
        """Delete a time entry, approved or not (a tombstone is kept)."""
        self.state.delete("time_entries", str(id_), trusted=True)

    # -- reading -----------------------------------------------------------------------
    def records(self, resource: str, *, include_deleted: bool = False) -> list[Doc]:
        """Copies of every record of a resource, by ascending id."""
        if resource not in RESOURCES:
            raise KeyError(f"unknown Kantata resource {resource!r}; known: {', '.join(RESOURCES)}")
        with self.store.lock:
            docs = self.store.all(resource)
        docs = [dict(d) for d in docs if include_deleted or "deleted_at" not in d]
        docs.sort(key=lambda d: int(d["id"]))
        return docs

    def get(self, resource: str, id_: str) -> Doc | None:
        """A copy of one record (a tombstone too), or None."""
        doc = self.store.get(resource, str(id_))
        return None if doc is None else dict(doc)


__all__ = ["KantataError", "KantataSandbox"]
