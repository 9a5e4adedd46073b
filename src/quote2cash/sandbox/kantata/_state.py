"""The Kantata sandbox's records and indexes, and every write to them.

Writes that touch several kinds of record (a workspace with its template
stories and external references) are stored children first and the subject
last. The store commits one kind at a time, so a crash in between leaves
children whose subject does not exist; :meth:`KantataState.load` purges those,
which makes each write all-or-nothing as seen through the API. Deletes go the
other way, the subject first: a crash then leaves children of a deleted (or
tombstoned) subject, which the load purges too.

Custom field values are children of their subject, filed by subject and by
custom field; setting one does not change the subject (nor its ``updated_at``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.kantata._catalog import CHILD_INDEXES, RESOURCES, child_key
from quote2cash.sandbox.kantata._indexes import ChangeIndex, QueryCache
from quote2cash.sandbox.kantata._schema import (
    SUBJECT_TYPE_OF,
    SUBJECT_TYPES,
    Lookup,
    check_custom_field,
    check_custom_field_value,
    check_expense,
    check_external_reference,
    check_participation,
    check_resource_request,
    check_story,
    check_template_stories,
    check_time_entry,
    check_user,
    check_workspace,
)
from quote2cash.sandbox.kantata._wire import Clock, Doc, Fields, KantataError, add_days

RefKey = tuple[str, str, str]
ValueKey = tuple[str, str]  # (custom_field_id, "<SubjectType>:<id>")
_FIRST_ID = 1000  # ids start at 1001, as DocStore.next_id does


class KantataState:
    """Records by resource, with the indexes list requests need."""

    def __init__(self, store: DocStore) -> None:
        self.store = store
        self.clock = Clock()
        self.versions: Counter[str] = Counter()
        self.changes = {name: ChangeIndex() for name, r in RESOURCES.items() if r.large}
        self.children: dict[str, dict[str, set[str]]] = {name: {} for name in CHILD_INDEXES}
        self.ref_keys: dict[RefKey, str] = {}
        self.usage: Counter[str] = Counter()  # live time entries and expenses per workspace
        self.cache = QueryCache()
        self.load()

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        """Purge what a crash half-wrote, then build every index from the store."""
        with self.store.lock:
            self._purge_orphans()
            latest = ""
            for name, resource in RESOURCES.items():
                docs = self.store.all(name)
                latest = max(latest, max((d["updated_at"] for d in docs), default=""))
                if resource.large:
                    self.changes[name].load(docs)
                    docs_pairs: list[tuple[Doc | None, Doc | None]] = [(None, d) for d in docs]
                    self._index_usage(docs_pairs)
                else:
                    self._index(name, [(None, d) for d in docs])
            if latest:
                self.clock.advance_past(latest)

    def _purge_orphans(self) -> None:
        for kind in ("stories", "participations", "resource_requests"):
            for id_, doc in self.store.items(kind):
                if self.store.get("workspaces", doc["workspace_id"]) is None:
                    self.store.delete(kind, id_)
        for id_, ref in self.store.items("external_references"):
            holder = SUBJECT_TYPES.get(ref["subject_type"])
            if holder is None or self.store.get(holder, ref["subject_id"]) is None:
                self.store.delete("external_references", id_)
        for id_, value in self.store.items("custom_field_values"):
            holder = SUBJECT_TYPES.get(value["subject_type"])
            subject = self.store.get(holder, value["subject_id"]) if holder else None
            field = self.store.get("custom_fields", value["custom_field_id"])
            if subject is None or "deleted_at" in subject or field is None:
                self.store.delete("custom_field_values", id_)

    # -- reading -----------------------------------------------------------------------
    def find(self, resource: str, id_: str) -> Doc | None:
        """A live record (tombstones excluded), or None. Do not mutate it."""
        doc = self.store.get(resource, str(id_))
        if doc is None or "deleted_at" in doc:
            return None
        return doc

    def require(self, resource: str, id_: str) -> Doc:
        """A live record, or a Kantata 404."""
        doc = self.find(resource, id_)
        if doc is None:
            raise KantataError.not_found(RESOURCES[resource].singular, id_)
        return doc

    def custom_field_value(self, custom_field_id: str, subject_type: str, subject_id: str) -> Doc | None:
        """The value of a custom field on one subject, or None."""
        for value_id in self.children["subject_custom_field_values"].get(f"{subject_type}:{subject_id}", ()):
            value = self.store.get("custom_field_values", value_id)
            if value is not None and value["custom_field_id"] == str(custom_field_id):
                return value
        return None

    # -- indexing ----------------------------------------------------------------------
    def _index(self, resource: str, pairs: list[tuple[Doc | None, Doc | None]]) -> None:
        for index, (child_resource, _) in CHILD_INDEXES.items():
            if child_resource != resource:
                continue
            table = self.children[index]
            for old, new in pairs:
                old_key, new_key = child_key(index, old), child_key(index, new)
                if old_key == new_key:
                    continue
                doc_id = (new or old or {})["id"]
                if old_key is not None and old_key in table:
                    table[old_key].discard(doc_id)
                    if not table[old_key]:
                        del table[old_key]
                if new_key is not None:
                    table.setdefault(new_key, set()).add(doc_id)
        if resource == "external_references":
            for old, new in pairs:
                if old is not None:
                    self.ref_keys.pop(_ref_key(old), None)
                if new is not None:
                    self.ref_keys[_ref_key(new)] = new["id"]
        self.versions[resource] += 1

    def _index_usage(self, pairs: Sequence[tuple[Doc | None, Doc | None]]) -> None:
        for old, new in pairs:
            if old is not None and "deleted_at" not in old:
                self.usage[old["workspace_id"]] -= 1
            if new is not None and "deleted_at" not in new:
                self.usage[new["workspace_id"]] += 1

    def _commit(self, resource: str, docs: list[Doc]) -> None:
        olds = [self.store.get(resource, d["id"]) for d in docs]
        self.store.put_many(resource, [(d["id"], d) for d in docs])
        pairs: list[tuple[Doc | None, Doc | None]] = list(zip(olds, docs, strict=True))
        if RESOURCES[resource].large:
            self.changes[resource].apply(list(zip(olds, docs, strict=True)))
            self._index_usage(pairs)
            self.versions[resource] += 1
        else:
            self._index(resource, pairs)

    def _remove(self, resource: str, ids: list[str]) -> None:
        olds = [d for d in (self.store.get(resource, i) for i in ids) if d is not None]
        for doc in olds:
            self.store.delete(resource, doc["id"])
        self._index(resource, [(d, None) for d in olds])

    def _new_id(self, resource: str) -> str:
        return str(self.store.next_id(resource, _FIRST_ID))

    def _large_ids(self, resource: str) -> Iterator[int]:
        # Large resources never lose a record (deletes leave tombstones), so the
        # largest stored id is never reused; this spares a sequence write per record.
        ids = self.changes[resource].ids
        return itertools.count(max(ids[-1] if ids else _FIRST_ID, _FIRST_ID) + 1)

    # -- writing -----------------------------------------------------------------------
    def create(self, resource: str, raws: Sequence[Mapping[str, Any]], *, trusted: bool = False) -> list[Doc]:
        """Validate and store new records, all or none; ``trusted`` is the Python side."""
        spec = RESOURCES[resource]
        with self.store.lock:
            errors: list[dict[str, str]] = []
            seen_refs: set[RefKey] = set()
            seen_values: set[ValueKey] = set()
            checked: list[tuple[Doc, list[Doc]]] = []
            lookup = _Memo(self)
            for n, raw in enumerate(raws):
                f = Fields(raw, where=f"{spec.singular} {n}: " if len(raws) > 1 else "")
                doc = self._check(resource, f, None, lookup)
                if spec.large:
                    doc["approved"] = f.boolean("approved", default=False) if trusted else False
                if resource == "external_references":
                    self._unique_ref(f, doc, seen_refs)
                if resource == "participations":
                    self._unique_participant(f, doc)
                if resource == "custom_field_values":
                    self._unique_value(f, doc, seen_values)
                refs = self._nested_refs(resource, f, seen_refs)
                errors.extend(f.errors)
                checked.append((doc, refs))
            if errors:
                raise KantataError(422, errors)
            created: list[Doc] = []
            stories: list[Doc] = []
            references: list[Doc] = []
            large_ids = self._large_ids(resource) if spec.large else None
            for doc, refs in checked:
                now = self.clock.tick()
                id_ = str(next(large_ids)) if large_ids is not None else self._new_id(resource)
                new = {"id": id_, **doc, "created_at": now, "updated_at": now}
                if resource == "workspaces" and new["project_template_id"]:
                    stories.extend(self._stories_from_template(new))
                for ref in refs:
                    stamp = self.clock.tick()
                    references.append(
                        {
                            "id": self._new_id("external_references"),
                            **ref,
                            "subject_type": SUBJECT_TYPE_OF[resource],
                            "subject_id": new["id"],
                            "created_at": stamp,
                            "updated_at": stamp,
                        }
                    )
                created.append(new)
            # Children first, the subject last (see the module docstring).
            if stories:
                self._commit("stories", stories)
            if references:
                self._commit("external_references", references)
            self._commit(resource, created)
            return created

    def update(self, resource: str, id_: str, raw: Mapping[str, Any], *, trusted: bool = False) -> Doc:
        """Change writable fields of one record; an unchanged record keeps its updated_at."""
        spec = RESOURCES[resource]
        with self.store.lock:
            old = self.require(resource, id_)
            if spec.large and old["approved"] and not trusted:
                raise KantataError.validation(
                    f"{spec.singular.replace('_', ' ')} {id_} is approved and can no longer be changed",
                    "approved",
                )
            f = Fields({**old, **raw})
            doc = self._check(resource, f, id_, self)
            if spec.large and trusted:
                doc["approved"] = f.boolean("approved", default=old["approved"])
            f.raise_errors()
            new = {**old, **doc}
            if resource == "workspaces":  # a template applies only when the workspace is created
                new["project_template_id"] = old.get("project_template_id")
            if new == old:
                return old
            new["updated_at"] = self.clock.tick()
            self._commit(resource, [new])
            return new

    def set_approved(self, resource: str, ids: Sequence[str], approved: bool = True) -> list[Doc]:
        """Approve (or un-approve) time entries or expenses in one write."""
        with self.store.lock:
            olds = [self.require(resource, str(i)) for i in ids]
            changed = {}
            for old in olds:
                if old["approved"] != approved and old["id"] not in changed:
                    changed[old["id"]] = {**old, "approved": approved, "updated_at": self.clock.tick()}
            if changed:
                self._commit(resource, list(changed.values()))
            return list(changed.values())

    def delete(self, resource: str, id_: str, *, trusted: bool = False) -> None:
        """Delete one record: tombstone for time and expenses, cascade for a workspace."""
        spec = RESOURCES[resource]
        with self.store.lock:
            old = self.require(resource, id_)
            if spec.large:
                if old["approved"] and not trusted:
                    raise KantataError.validation(
                        f"{spec.singular.replace('_', ' ')} {id_} is approved and cannot be deleted",
                        "approved",
                    )
                now = self.clock.tick()
                self._commit(resource, [{**old, "deleted_at": now, "updated_at": now}])
                self._remove("custom_field_values", self._values_of([f"{SUBJECT_TYPE_OF[resource]}:{id_}"]))
                return
            if resource == "custom_field_values":
                self._remove(resource, [id_])
                return
            if resource != "workspaces":
                raise KantataError.system(405, f"{resource} cannot be deleted")
            if self.usage[id_] > 0:
                raise KantataError.validation(
                    f"workspace {id_} has time entries or expenses; delete those first", "workspace"
                )
            stories = sorted(self.children["workspace_stories"].get(id_, set()))
            parts = sorted(self.children["workspace_participations"].get(id_, set()))
            requests = sorted(self.children["workspace_resource_requests"].get(id_, set()))
            subjects = [
                f"Workspace:{id_}",
                *(f"Story:{s}" for s in stories),
                *(f"Participation:{p}" for p in parts),
                *(f"ResourceRequest:{r}" for r in requests),
            ]
            refs = sorted({r for s in subjects for r in self.children["subject_references"].get(s, set())})
            values = self._values_of(subjects)
            # The subject first: anything left by a crash is an orphan the next load purges.
            self._remove("workspaces", [id_])
            self._remove("stories", stories)
            self._remove("participations", parts)
            self._remove("resource_requests", requests)
            self._remove("external_references", refs)
            self._remove("custom_field_values", values)

    def _values_of(self, subjects: Sequence[str]) -> list[str]:
        table = self.children["subject_custom_field_values"]
        return sorted({v for s in subjects for v in table.get(s, set())}, key=int)

    # -- checks ------------------------------------------------------------------------
    def _check(self, resource: str, f: Fields, own_id: str | None, db: Lookup) -> Doc:
        if resource == "workspaces":
            return check_workspace(f, db)
        if resource == "stories":
            return check_story(f, db, own_id)
        if resource == "participations":
            return check_participation(f, db)
        if resource == "resource_requests":
            return check_resource_request(f, db)
        if resource == "time_entries":
            return check_time_entry(f, db)
        if resource == "expenses":
            return check_expense(f, db)
        if resource == "external_references":
            return check_external_reference(f, db)
        if resource == "custom_field_values":
            old = self.find(resource, own_id) if own_id is not None else None
            return check_custom_field_value(f, db, old)
        if resource == "custom_fields":
            return check_custom_field(f)
        if resource == "users":
            return check_user(f)
        if resource == "roles":
            return {"name": f.text("name", required=True)}
        if resource == "project_templates":
            return {"name": f.text("name", required=True), "stories": self._template_stories(f)}
        raise KantataError.system(405, f"{resource} cannot be written")

    @staticmethod
    def _template_stories(f: Fields) -> list[Doc]:
        stories = f.raw.get("stories") or []
        if not isinstance(stories, list) or not all(isinstance(s, Mapping) for s in stories):
            f.fail("stories", "must be a list of objects")
            return []
        try:
            return check_template_stories(stories)
        except KantataError as exc:
            f.errors.extend(exc.errors)
            return []

    def _unique_ref(self, f: Fields, doc: Doc, seen: set[RefKey]) -> None:
        key = _ref_key(doc)
        if key in self.ref_keys or key in seen:
            f.fail(
                "service_model_ref",
                f"has already been taken for service_name {key[0]!r} and service_model {key[1]!r}",
            )
        seen.add(key)

    def _unique_value(self, f: Fields, doc: Doc, seen: set[ValueKey]) -> None:
        if doc["subject_type"] is None or doc["subject_id"] is None or doc["custom_field_id"] is None:
            return
        key = (doc["custom_field_id"], f"{doc['subject_type']}:{doc['subject_id']}")
        taken = self.custom_field_value(doc["custom_field_id"], doc["subject_type"], doc["subject_id"])
        if taken is not None or key in seen:
            suffix = f" (custom field value {taken['id']})" if taken is not None else ""
            f.fail(
                "custom_field_id",
                f"has already been taken for {doc['subject_type']} {doc['subject_id']}{suffix}",
            )
        seen.add(key)

    def _unique_participant(self, f: Fields, doc: Doc) -> None:
        for pid in self.children["workspace_participations"].get(str(doc["workspace_id"]), set()):
            other = self.store.get("participations", pid)
            if other is not None and other["user_id"] == doc["user_id"]:
                f.fail("user_id", f"is already a participant of workspace {doc['workspace_id']}")

    def _nested_refs(self, resource: str, f: Fields, seen: set[RefKey]) -> list[Doc]:
        raw = f.raw.get("external_references", f.raw.get("external_references_attributes"))
        if raw is None or resource not in SUBJECT_TYPE_OF:
            return []
        if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
            f.fail("external_references", "must be a list of objects")
            return []
        refs = []
        for n, item in enumerate(raw):
            rf = Fields(item, where=f"{f.where}external_references[{n}]: ")
            ref = check_external_reference(rf, self, subject_given=False)
            self._unique_ref(rf, ref, seen)
            f.errors.extend(rf.errors)
            refs.append(ref)
        return refs

    def _stories_from_template(self, workspace: Doc) -> list[Doc]:
        template = self.require("project_templates", workspace["project_template_id"])
        ids_by_title: dict[str, str] = {}
        stories = []
        for blueprint in template["stories"]:
            start = add_days(workspace["start_date"], blueprint["offset_days"])
            now = self.clock.tick()
            story = {
                "id": self._new_id("stories"),
                "workspace_id": workspace["id"],
                "title": blueprint["title"],
                "description": "",
                "story_type": blueprint["story_type"],
                "parent_id": ids_by_title.get(blueprint["parent_title"] or ""),
                "start_date": start,
                "due_date": add_days(start, blueprint["duration_days"]),
                "state": "not started",
                "billable": True,
                "created_at": now,
                "updated_at": now,
            }
            ids_by_title[blueprint["title"]] = story["id"]
            stories.append(story)
        return stories


class _Memo:
    """Remembers lookups during one bulk write (100,000 entries name a few workspaces)."""

    def __init__(self, state: KantataState) -> None:
        self._state = state
        self._seen: dict[tuple[str, str], Doc | None] = {}

    def find(self, resource: str, id_: str) -> Doc | None:
        """A live record, or None."""
        key = (resource, id_)
        if key not in self._seen:
            self._seen[key] = self._state.find(resource, id_)
        return self._seen[key]


def _ref_key(doc: Doc) -> RefKey:
    return (str(doc["service_name"]), str(doc["service_model"]), str(doc["service_model_ref"]))
