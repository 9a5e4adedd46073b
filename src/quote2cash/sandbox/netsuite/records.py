"""The NetSuite record store: validation, id spaces, external-id index, rendering.

One :class:`RecordBook` per sandbox keeps the records in the sandbox's
:class:`DocStore` (one kind per record type) plus in-memory indexes rebuilt at
start-up: external id -> internal id per type, the sorted ids of each type
(for list paging), the field names seen per type (for SuiteQL) and the
accounting period of each month. Every mutation holds the store lock, so the HTTP
handlers and the Python-side helpers can run concurrently.

Writes are staged first (validated, ids allocated, nothing stored) and then
committed: one :meth:`DocStore.put_many` per record type. A single REST call
commits one record; :meth:`RecordBook.upsert_many` (the batch RESTlet) commits
a whole batch in one SQLite transaction per type, through the same validation.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.netsuite.errors import NsError, invalid_reference, user_error
from quote2cash.sandbox.netsuite.schema import (
    CUSTOM_FIELDS,
    LABELS,
    TYPES,
    RecordType,
    Refs,
    is_custom_field,
    sequence_start,
)

RECORD_PATH = "/services/rest/record/v1"
# Checkbox fields NetSuite always has, so SuiteQL ``isinactive = 'F'`` matches.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "subsidiary": {"isInactive": False},
    "department": {"isInactive": False},
    "classification": {"isInactive": False},
    "location": {"isInactive": False},
    "currency": {"isInactive": False},
    "term": {"isInactive": False},
    "employee": {"isInactive": False},
    "customer": {"isInactive": False},
    "job": {"isInactive": False},
    "accountingperiod": {"closed": False, "isQuarter": False, "isYear": False, "isAdjust": False},
}
TRANSACTION_TABLE = ("invoice", "journalentry", "expensereport", "creditmemo", "customerpayment")


def not_found() -> NsError:
    """404 for a record id or external id that does not exist."""
    return NsError(
        404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID."
    )


def _no_such_field(type_: str, field: str, path: str | None = None) -> NsError:
    return NsError(
        400,
        "INVALID_CONTENT",
        f"Error while accessing a resource. The field {field} does not exist on {type_}: "
        "it is not a field of the record or a custom field of this account.",
        path=path or field,
    )


def _duplicate(type_: str, external_id: str) -> NsError:
    return NsError(
        400,
        "DUP_RCRD",
        f"A {type_} record with the external ID '{external_id}' already exists.",
        path="externalId",
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_sublist(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("items"), list)


def _amount(value: Any, path: str) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    try:
        # str() first: JSON numbers arrive as floats, and str(float) is the shortest exact repr.
        return Decimal(str(value))
    except InvalidOperation:
        raise NsError(
            400,
            "INVALID_FLD_VALUE",
            f"You have entered an Invalid Field Value {value} for the following field: {path}",
            path=path,
        ) from None


class RecordBook:
    """All NetSuite records of one sandbox, with their indexes."""

    def __init__(self, store: DocStore) -> None:
        self.store = store
        self.version = 0  # bumped on every write; SuiteQL caches pages against it
        self._eid: dict[str, dict[str, str]] = {t: {} for t in TYPES}
        self._ids: dict[str, list[int]] = {t: [] for t in TYPES}
        self._periods: dict[str, str] = {}
        # Per type, lower-case field name -> the spellings stored (SuiteQL is case-insensitive).
        self._keys: dict[str, dict[str, tuple[str, ...]]] = {t: {} for t in TYPES}
        with store.lock:
            for type_ in TYPES:
                for id_, doc in store.items(type_):
                    self._index(type_, id_, doc, None)
                    self._ids[type_].append(int(id_))
                self._ids[type_].sort()

    # -- lookups -----------------------------------------------------------------------
    @staticmethod
    def record_type(type_: str) -> RecordType:
        """The declared type, or 404 like NetSuite for an unknown one."""
        rt = TYPES.get(type_)
        if rt is None:
            raise NsError(404, "INVALID_RCRD_TYPE", f"Record type '{type_}' does not exist.")
        return rt

    def get(self, type_: str, id_: str) -> dict[str, Any] | None:
        """The stored record (system fields included), or None."""
        return self.store.get(type_, id_)

    def id_of(self, type_: str, ref: str) -> str:
        """Internal id for ``123`` or ``eid:EXT``; 404 if there is no such record."""
        if ref.startswith("eid:"):
            found = self._eid[type_].get(ref[4:])
            if found is None:
                raise not_found()
            return found
        if self.store.get(type_, ref) is None:
            raise not_found()
        return ref

    def by_external_id(self, type_: str, external_id: str) -> str | None:
        """Internal id of the record with this external id, or None."""
        return self._eid[type_].get(external_id)

    def page(self, type_: str, limit: int, offset: int) -> tuple[list[str], int]:
        """Ids of one list page, in id order, and the total."""
        ids = self._ids[type_]
        return [str(i) for i in ids[offset : offset + limit]], len(ids)

    def _find(self, targets: tuple[str, ...], id_: str) -> tuple[str, dict[str, Any]] | None:
        for target in targets:
            doc = self.store.get(target, id_)
            if doc is not None:
                return target, doc
        return None

    def ref_name(self, type_: str, doc: dict[str, Any]) -> str:
        """What NetSuite shows as ``refName`` for a record."""
        value = doc.get(TYPES[type_].name_field) or doc.get("companyName") or doc.get("name") or doc["id"]
        return str(value)

    def period_of(self, day: date) -> dict[str, Any] | None:
        """The (monthly) accounting period containing ``day``, or None."""
        id_ = self._periods.get(day.strftime("%Y-%m"))
        period = None if id_ is None else self.store.get("accountingperiod", id_)
        if period is None or not str(period.get("startDate", "")) <= day.isoformat() <= str(
            period.get("endDate", "9999")
        ):
            return None
        return period

    # -- writes ------------------------------------------------------------------------
    def create(self, type_: str, body: dict[str, Any]) -> str:
        """Validate and add a record; returns its new internal id."""
        rt = self.record_type(type_)
        with self.store.lock:
            eid = body.get("externalId")
            if eid is not None and str(eid) in self._eid[type_]:
                raise _duplicate(type_, str(eid))
            id_, doc = self._stage_create(rt, body)
            self._commit(type_, [(id_, doc, None)])
            return id_

    def update(self, type_: str, id_: str, body: dict[str, Any], replace: set[str] | None) -> None:
        """Apply a PATCH: fields merge, sublists append unless named in ``replace``."""
        rt = self.record_type(type_)
        with self.store.lock:
            existing = self.store.get(type_, id_)
            if existing is None:
                raise not_found()
            doc = self._stage_update(rt, id_, existing, body, replace)
            self._commit(type_, [(id_, doc, existing)])

    def upsert(self, type_: str, external_id: str, body: dict[str, Any]) -> tuple[str, bool]:
        """Create or update the record with this external id; (id, created)."""
        outcome = self.upsert_many([(type_, external_id, body)])[0]
        if isinstance(outcome, NsError):
            raise outcome
        return outcome

    def upsert_many(
        self, items: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> list[tuple[str, bool] | NsError]:
        """Upsert ``(type, externalId, body)`` items in order; per item (id, created) or the refusal.

        Each item is validated exactly as a single upsert; a refused item does
        not stop the others. The accepted ones are stored with one
        ``put_many`` (one SQLite transaction) per record type.
        """
        outcomes: list[tuple[str, bool] | NsError] = []
        # Per type: id -> (new document, document before this batch); insertion-ordered.
        staged: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any] | None]]] = {}
        pending: dict[tuple[str, str], str] = {}  # (type, externalId) -> id created in this batch
        with self.store.lock:
            for type_, external_id, body in items:
                try:
                    rt = self.record_type(type_)
                    full = {**body, "externalId": external_id}
                    batch = staged.setdefault(type_, {})
                    id_ = pending.get((type_, external_id)) or self._eid[type_].get(external_id)
                    if id_ is None:
                        id_, doc = self._stage_create(rt, full)
                        pending[type_, external_id] = id_
                        batch[id_] = (doc, None)
                        outcomes.append((id_, True))
                        continue
                    # A record staged earlier in this batch is updated in its staged form.
                    if id_ in batch:
                        current, before = batch[id_]
                    else:
                        current = before = self.store.get(type_, id_) or {}
                    # Sublists are replaced, not appended: a repeated upsert must change nothing.
                    batch[id_] = (self._stage_update(rt, id_, current, full, None), before)
                    outcomes.append((id_, False))
                except NsError as exc:
                    outcomes.append(exc)
            for type_, batch in staged.items():
                if batch:
                    self._commit(type_, [(id_, doc, old) for id_, (doc, old) in batch.items()])
        return outcomes

    def delete(self, type_: str, id_: str, *, force: bool = False) -> None:
        """Remove a record; transactions in a closed period cannot be deleted unless ``force``."""
        rt = self.record_type(type_)
        with self.store.lock:
            existing = self.store.get(type_, id_)
            if existing is None:
                raise not_found()
            if rt.transaction and not force:
                self._check_open(existing, existing.get("postingPeriod"), "tranDate")
            self.store.delete(type_, id_)
            eid = existing.get("externalId")
            if eid is not None and self._eid[type_].get(eid) == id_:
                self._eid[type_].pop(eid, None)
            ids = self._ids[type_]
            at = bisect.bisect_left(ids, int(id_))
            if at < len(ids) and ids[at] == int(id_):
                del ids[at]
            self.version += 1
            if type_ == "accountingperiod":
                self._reindex_periods()

    def plant(self, type_: str, id_: str | None, doc: dict[str, Any]) -> str:
        """Store a record as given, without validation (test data such as a duplicated posting).

        ``id_=None`` allocates a new id (and ``tranId`` for transactions).
        """
        rt = self.record_type(type_)
        # A JSON round-trip keeps memory and the SQLite file identical (Decimal -> text).
        doc = json.loads(json.dumps(doc, default=str))
        with self.store.lock:
            old = None if id_ is None else self.store.get(type_, id_)
            if id_ is None:
                id_ = str(self.store.next_id(rt.sequence, sequence_start(rt.sequence)))
                if rt.tran_prefix:
                    doc["tranId"] = f"{rt.tran_prefix}{id_}"
                doc["dateCreated"] = _now()
            self._commit(type_, [(id_, doc, old)])
            return id_

    # -- internals ---------------------------------------------------------------------
    def _stage_create(self, rt: RecordType, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A validated new record and its freshly allocated id; nothing is stored yet."""
        doc = self._normalize(rt, body, {}, None)
        for key, value in _DEFAULTS.get(rt.name, {}).items():
            doc.setdefault(key, value)
        self._complete(rt, doc, derive_period="postingPeriod" not in body)
        self._validate(rt, doc)
        id_ = str(self.store.next_id(rt.sequence, sequence_start(rt.sequence)))
        if rt.tran_prefix:
            doc.setdefault("tranId", f"{rt.tran_prefix}{id_}")
        doc["dateCreated"] = _now()
        return id_, doc

    def _stage_update(
        self,
        rt: RecordType,
        id_: str,
        existing: dict[str, Any],
        body: dict[str, Any],
        replace: set[str] | None,
    ) -> dict[str, Any]:
        """``existing`` with ``body`` applied and validated; nothing is stored yet."""
        if rt.transaction:
            self._check_open(existing, existing.get("postingPeriod"), "tranDate")
        doc = self._normalize(rt, body, existing, replace)
        eid = doc.get("externalId")
        if eid is not None and self._eid[rt.name].get(eid, id_) != id_:
            raise _duplicate(rt.name, eid)
        dated = "tranDate" in body or "trandate" in body
        self._complete(rt, doc, derive_period=dated and "postingPeriod" not in body)
        self._validate(rt, doc)
        return doc

    def _normalize(
        self, rt: RecordType, body: dict[str, Any], existing: dict[str, Any], replace: set[str] | None
    ) -> dict[str, Any]:
        """Merge ``body`` into a copy of ``existing``, resolving references.

        ``replace=None`` replaces every sublist sent; otherwise only those named.
        """
        doc = dict(existing)
        for key, value in body.items():
            if key in ("links", "id", "refName", "dateCreated", "lastModifiedDate"):
                continue  # read-only, as in NetSuite
            if is_custom_field(key) and key not in CUSTOM_FIELDS:
                raise _no_such_field(rt.name, key)
            if key == "trandate":
                key = "tranDate"
            if value is None:
                doc.pop(key, None)
            elif key in rt.sublists or _is_sublist(value):
                if not _is_sublist(value):
                    raise user_error(f"The sublist '{key}' must be an object with 'items'.", path=key)
                refs = rt.sublists.get(key, {})
                lines = [self._line(refs, key, i, item) for i, item in enumerate(value["items"])]
                if replace is not None and key not in replace:
                    lines = [*existing.get(key, {}).get("items", []), *lines]
                doc[key] = {"items": lines}
            elif key in rt.refs:
                doc[key] = self._resolve(rt.refs[key], value, key)
            elif key == "externalId":
                doc[key] = str(value)
            else:
                doc[key] = value
        return doc

    def _line(self, refs: Refs, sublist: str, index: int, item: Any) -> dict[str, Any]:
        path = f"{sublist}.items[{index}]"
        if not isinstance(item, dict):
            raise user_error(f"Invalid sublist line: {path} must be an object.", path=path)
        for key in item:
            if is_custom_field(key) and key not in CUSTOM_FIELDS:
                raise _no_such_field(sublist, key, f"{path}.{key}")
        return {
            k: self._resolve(refs[k], v, f"{path}.{k}") if k in refs and v is not None else v
            for k, v in item.items()
            if k != "links"
        }

    def _resolve(self, targets: tuple[str, ...], value: Any, path: str) -> dict[str, str]:
        """``{"id"}`` or ``{"externalId"}`` -> ``{"id"}`` of an existing, active record."""
        found: tuple[str, dict[str, Any]] | None = None
        if isinstance(value, dict) and value.get("id") is not None:
            found = self._find(targets, str(value["id"]))
        elif isinstance(value, dict) and value.get("externalId") is not None:
            for target in targets:
                id_ = self._eid[target].get(str(value["externalId"]))
                if id_ is not None:
                    found = target, self.store.get(target, id_) or {}
                    break
        else:
            raise invalid_reference(path, "Provide an object with an 'id' or an 'externalId'.")
        if found is None:
            raise invalid_reference(path, f"No {' or '.join(targets)} record matches {value}.")
        type_, doc = found
        if doc.get("isInactive") is True:
            raise invalid_reference(path, f"The {type_} '{self.ref_name(type_, doc)}' is inactive.")
        return {"id": str(doc["id"])}

    def _complete(self, rt: RecordType, doc: dict[str, Any], *, derive_period: bool) -> None:
        """Apply the defaults NetSuite fills in on save."""
        if rt.name in ("customer", "job") and "companyName" in doc:
            doc.setdefault("entityId", doc["companyName"])
        if rt.name == "employee" and "entityId" not in doc:
            doc["entityId"] = " ".join(str(doc[k]) for k in ("firstName", "lastName") if doc.get(k)) or None
        if rt.name == "job" and "subsidiary" not in doc and "parent" in doc:
            parent = self.store.get("customer", doc["parent"]["id"]) or {}
            if "subsidiary" in parent:
                doc["subsidiary"] = parent["subsidiary"]
        if rt.name == "customer" and "currency" not in doc and "subsidiary" in doc:
            subsidiary = self.store.get("subsidiary", doc["subsidiary"]["id"]) or {}
            if "currency" in subsidiary:
                doc["currency"] = subsidiary["currency"]
        if rt.transaction and "tranDate" in doc:
            day = self._tran_date(doc["tranDate"])
            if derive_period:
                period = self.period_of(day)
                if period is None:
                    raise NsError(
                        400,
                        "INVALID_FLD_VALUE",
                        f"The transaction date {day.isoformat()} does not fall in any accounting period.",
                        path="tranDate",
                    )
                doc["postingPeriod"] = {"id": period["id"]}
            self._check_open(doc, doc.get("postingPeriod"), "tranDate")

    @staticmethod
    def _tran_date(raw: Any) -> date:
        try:
            if isinstance(raw, str) and len(raw) == 10:
                return date.fromisoformat(raw)
        except ValueError:
            pass
        raise NsError(
            400,
            "INVALID_FLD_VALUE",
            f"You have entered an Invalid Field Value {raw} for the following field: tranDate",
            path="tranDate",
        )

    def _check_open(self, doc: dict[str, Any], period_ref: Any, path: str) -> None:
        period_id = period_ref.get("id") if isinstance(period_ref, dict) else None
        period = None if period_id is None else self.store.get("accountingperiod", str(period_id))
        if period is not None and period.get("closed") is True:
            raise NsError(
                400,
                "INVALID_FLD_VALUE",
                f"The transaction date {doc.get('tranDate')} falls in a closed accounting period "
                f"({period.get('periodName')}).",
                path=path,
            )

    def _validate(self, rt: RecordType, doc: dict[str, Any]) -> None:
        missing = [f for f in rt.required if doc.get(f) in (None, "", {}, [])]
        if missing:
            labels = ", ".join(LABELS.get(f, f) for f in missing)
            raise user_error(f"Please enter value(s) for: {labels}", path=missing[0])
        if rt.name == "job" and doc.get("parent"):
            # OneWorld: a project belongs to its customer's subsidiary.
            parent = self.store.get("customer", doc["parent"]["id"]) or {}
            theirs, ours = (parent.get("subsidiary") or {}).get("id"), (doc.get("subsidiary") or {}).get("id")
            if theirs is not None and ours is not None and str(theirs) != str(ours):
                raise invalid_reference(
                    "subsidiary",
                    f"The subsidiary {ours} of the project is not the subsidiary {theirs} of its customer "
                    f"'{self.ref_name('customer', parent)}'.",
                )
        if rt.name == "journalentry":
            lines = doc.get("line", {}).get("items", [])
            if not lines:
                raise user_error("Please enter value(s) for: Lines", path="line")
            debit, credit = (
                sum((_amount(x.get(s), f"line.items[{i}].{s}") for i, x in enumerate(lines)), Decimal(0))
                for s in ("debit", "credit")
            )
            if debit != credit:
                raise user_error(
                    f"The transaction is not in balance: debits ({debit}) must equal credits ({credit}).",
                    path="line",
                )

    def _commit(self, type_: str, staged: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Store staged ``(id, doc, old doc or None)`` in one transaction, then index them."""
        now = _now()
        for id_, doc, _ in staged:
            doc["id"] = id_
            doc["lastModifiedDate"] = now
        self.store.put_many(type_, [(id_, doc) for id_, doc, _ in staged])
        ids = self._ids[type_]
        for id_, doc, old in staged:
            self._index(type_, id_, doc, old)
            if old is None:
                # New ids only grow, so this is an append; bisect keeps it correct regardless.
                bisect.insort(ids, int(id_))
        self.version += 1

    def _index(self, type_: str, id_: str, doc: dict[str, Any], old: dict[str, Any] | None) -> None:
        old_eid = None if old is None else old.get("externalId")
        eid = doc.get("externalId")
        if old_eid is not None and old_eid != eid:
            self._eid[type_].pop(old_eid, None)
        if eid is not None:
            self._eid[type_][eid] = id_
        keys = self._keys[type_]
        for key in doc:
            spellings = keys.get(key.lower(), ())
            if key not in spellings:
                keys[key.lower()] = (*spellings, key)
        if type_ == "accountingperiod":
            self._reindex_periods()

    def _reindex_periods(self) -> None:
        # Few periods exist (12 a year); a full rebuild on change is the simple, safe choice.
        self._periods = {
            str(p.get("startDate", ""))[:7]: str(p["id"])
            for p in self.store.all("accountingperiod")
            if not p.get("isQuarter") and not p.get("isYear")
        }

    # -- SuiteQL support ----------------------------------------------------------------
    def docs(self, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, stored record) pairs of a type, a snapshot in insertion order."""
        return self.store.items(type_)

    def spellings(self, type_: str, column: str) -> tuple[str, ...]:
        """The stored field names that a lower-case SuiteQL column may mean."""
        return self._keys[type_].get(column, ())


__all__ = ["RECORD_PATH", "TRANSACTION_TABLE", "RecordBook", "not_found"]
