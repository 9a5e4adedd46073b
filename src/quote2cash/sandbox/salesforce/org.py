"""The emulated org's data: validation, derived fields, modstamps, indexes, cascades.

Every write goes through *plan* (validate and build the new record without
touching the store) and then *commit* (stamp and persist a batch), so that an
``allOrNone`` collection can validate everything before writing anything.
Stored records are never mutated in place: a write replaces the whole dict.
Deletes are soft (``IsDeleted``), as in the recycle bin, so ``queryAll`` and
restarts still see them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.salesforce import certinia
from quote2cash.sandbox.salesforce.errors import SalesforceError
from quote2cash.sandbox.salesforce.schema import (
    OBJECTS,
    STANDARD_STAGES,
    FieldSpec,
    ObjectSpec,
    format_ms,
    id_counter,
    make_id,
    normalize_id,
    object_for_id,
    object_spec,
    parse_datetime_ms,
)
from quote2cash.sandbox.salesforce.values import (
    CENT,
    bad_picklist,
    contract_end,
    decimal_of,
    price_line,
    typed,
)

INTEGRATION_USERNAME = "integration@q2c.sandbox"
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass
class Write:
    """One planned write: the new record, and the old one (None for an insert)."""

    sobject: str
    id: str
    doc: dict[str, Any]
    old: dict[str, Any] | None

    @property
    def created(self) -> bool:
        """Whether this write inserts the record."""
        return self.old is None


class Org:
    """All records of the emulated org, on top of a :class:`DocStore`."""

    def __init__(self, store: DocStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._last_ms = 0
        self._counters: dict[str, int] = {}
        self._ext: dict[tuple[str, str], dict[str, set[str]]] = {}
        # (child type, lookup field) -> parent id -> live child ids, for cascades and roll-ups.
        self._children: dict[tuple[str, str], dict[str, set[str]]] = {
            (spec.name, f.name): {} for spec in OBJECTS.values() for f in spec.fields.values() if f.cascade
        }
        self._stages: dict[str, dict[str, Any]] = {}
        self.default_user = ""
        #: Called with every committed batch of writes (the sandbox's outbound messages listen here).
        self.listeners: list[Callable[[list[Write]], None]] = []
        with store.lock:
            self._load()
            if not self._stages:
                self._seed()

    # -- loading and seeding ---------------------------------------------------------
    def _load(self) -> None:
        for spec in OBJECTS.values():
            for doc in self.store.all(spec.name):
                self._index(spec.name, doc, None)
                self._counters[spec.prefix] = max(self._counters.get(spec.prefix, 0), id_counter(doc["Id"]))
                stamp = parse_datetime_ms(doc.get("SystemModstamp") or "")
                self._last_ms = max(self._last_ms, stamp or 0)
        users = self.store.find("User", Username=INTEGRATION_USERNAME)
        self.default_user = users[0]["Id"] if users else ""

    def _seed(self) -> None:
        self.default_user = make_id("005", self._counters.get("005", 0) + 1)
        self.insert_many(
            "User",
            [
                {
                    "Username": INTEGRATION_USERNAME,
                    "FirstName": "Integration",
                    "LastName": "User",
                    "Email": INTEGRATION_USERNAME,
                    "Alias": "integ",
                }
            ],
        )
        self.insert_many(
            "OpportunityStage",
            [
                {
                    "MasterLabel": label,
                    "DefaultProbability": prob,
                    "ForecastCategoryName": forecast,
                    "IsClosed": closed,
                    "IsWon": won,
                    "SortOrder": order + 1,
                }
                for order, (label, prob, forecast, closed, won) in enumerate(STANDARD_STAGES)
            ],
        )

    # -- reading (also the OrgView a SOQL query needs) -------------------------------
    def spec(self, sobject: str) -> ObjectSpec:
        """The spec of an sObject type, or a 404 NOT_FOUND."""
        spec = object_spec(sobject)
        if spec is None:
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist", status=404)
        return spec

    def fetch(self, sobject: str, id_: str) -> dict[str, Any] | None:
        """A record by id, deleted ones included, or None."""
        return self.store.get(sobject, normalize_id(id_) or id_)

    def live(self, sobject: str, id_: str) -> dict[str, Any]:
        """A record that exists and is not deleted, or the 404 Salesforce answers."""
        doc = self.fetch(sobject, id_)
        if doc is None:
            raise SalesforceError("NOT_FOUND", "The requested resource does not exist", status=404)
        if doc.get("IsDeleted"):
            raise SalesforceError("ENTITY_IS_DELETED", "entity is deleted", status=404)
        return doc

    def rows(self, sobject: str, *, deleted: bool = False) -> Iterable[dict[str, Any]]:
        """Every record of a type in insertion order (deleted ones only if asked)."""
        docs = self.store.all(sobject)
        return docs if deleted else [d for d in docs if not d.get("IsDeleted")]

    def find_ids(self, sobject: str, field: str, value: str) -> list[str]:
        """Ids of live records whose ``field`` equals ``value`` (an index, built on first use)."""
        key = (sobject, field)
        with self.store.lock:
            index = self._ext.get(key)
            if index is None:
                index = {}
                for doc in self.rows(sobject):
                    if doc.get(field) is not None:
                        index.setdefault(str(doc[field]), set()).add(doc["Id"])
                self._ext[key] = index
            return sorted(index.get(value, ()))

    # -- input cleaning: request-level errors ----------------------------------------
    def clean(self, sobject: str, body: Any) -> dict[str, Any]:
        """Canonical field names and typed values of a record body (attributes dropped).

        Unknown fields and values of the wrong JSON type fail the whole request,
        as Salesforce's deserializer does.
        """
        spec = self.spec(sobject)
        if not isinstance(body, dict):
            raise SalesforceError(
                "JSON_PARSER_ERROR", f"Cannot deserialize instance of {spec.name} from {body!r}"
            )
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            field = spec.field(key)
            if field is None:
                raise SalesforceError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {spec.name}"
                )
            out[field.name] = typed(field, value)
        return out

    # -- planning: record-level errors -----------------------------------------------
    def plan_insert(self, sobject: str, fields: dict[str, Any]) -> Write:
        """Validate an insert and build the new record; nothing is written."""
        spec = self.spec(sobject)
        if "Id" in fields:
            raise SalesforceError(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", fields=["Id"]
            )
        self._check_writable(spec, fields, insert=True)
        doc = self._defaults(spec)
        doc.update(fields)
        self._validate(spec, doc, fields, insert=True)
        id_ = self._next_id(spec)
        doc["Id"] = id_
        self._derive(spec, doc, fields, insert=True)
        return Write(spec.name, id_, doc, None)

    def plan_update(self, sobject: str, id_: str, fields: dict[str, Any]) -> Write:
        """Validate an update of a live record and build the new record; nothing is written."""
        spec = self.spec(sobject)
        old = self.live(spec.name, id_)
        fields = dict(fields)
        given = fields.pop("Id", None)
        if given is not None and normalize_id(str(given)) != old["Id"]:
            raise SalesforceError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "the Id in the body does not match the record",
                fields=["Id"],
            )
        self._check_writable(spec, fields, insert=False)
        doc = dict(old)
        doc.update(fields)
        self._validate(spec, doc, fields, insert=False)
        self._derive(spec, doc, fields, insert=False)
        return Write(spec.name, old["Id"], doc, old)

    def plan_delete(self, sobject: str, id_: str) -> list[Write]:
        """Soft-delete a live record and, as Salesforce does, the records that cascade from it."""
        spec = self.spec(sobject)
        old = self.live(spec.name, id_)
        writes = [Write(spec.name, old["Id"], {**old, "IsDeleted": True}, old)]
        for (child_type, field), by_parent in self._children.items():
            if OBJECTS[child_type].fields[field].refers_to == spec.name:
                for child in sorted(by_parent.get(old["Id"], ())):
                    writes.extend(self.plan_delete(child_type, child))
        return writes

    def _next_id(self, spec: ObjectSpec) -> str:
        counter = self._counters.get(spec.prefix, 0) + 1
        self._counters[spec.prefix] = counter
        return make_id(spec.prefix, counter)

    def _defaults(self, spec: ObjectSpec) -> dict[str, Any]:
        doc: dict[str, Any] = {"IsDeleted": False}
        if "OwnerId" in spec.fields:
            doc["OwnerId"] = self.default_user
        if "CurrencyIsoCode" in spec.fields and spec.fields["CurrencyIsoCode"].createable:
            doc["CurrencyIsoCode"] = "USD"
        if spec.name == "Contract":
            doc["Status"] = "Draft"
        if spec.name in ("User", "OpportunityStage"):
            doc["IsActive"] = True
        if spec.name == "Opportunity":
            doc["HasOpportunityLineItem"] = False
        certinia.defaults(spec.name, doc)
        return doc

    def _check_writable(self, spec: ObjectSpec, fields: dict[str, Any], *, insert: bool) -> None:
        bad = [
            name
            for name in fields
            if (f := spec.fields.get(name)) is not None and not (f.createable if insert else f.updateable)
        ]
        if bad:
            raise SalesforceError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(bad)}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission set.",
                fields=bad,
            )

    def _validate(
        self, spec: ObjectSpec, doc: dict[str, Any], fields: dict[str, Any], *, insert: bool
    ) -> None:
        missing = [f.name for f in spec.fields.values() if f.required and doc.get(f.name) in (None, "")]
        if missing:
            raise SalesforceError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                fields=missing,
            )
        stage_written = spec.name == "Opportunity" and (insert or "StageName" in fields)
        if stage_written and doc["StageName"] not in self._stages:
            raise bad_picklist("Stage", "StageName", doc["StageName"])
        for name in fields:
            field = spec.fields.get(name)
            if field is None:
                continue
            value = doc.get(name)
            if field.picklist is not None and value is not None and value not in field.picklist:
                raise bad_picklist(name, name, value)
            if name == "CurrencyIsoCode" and value is not None and not _CURRENCY.fullmatch(str(value)):
                raise SalesforceError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Currency ISO Code: invalid currency code: {value}",
                    fields=[name],
                )
            if field.type == "reference" and value is not None:
                doc[name] = self._check_reference(field, str(value))
        if spec.name == "OpportunityLineItem" and insert:
            if doc.get("UnitPrice") is not None and doc.get("TotalPrice") is not None:
                raise SalesforceError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "field integrity exception: TotalPrice (only one of unit price or total price may be "
                    "specified)",
                    fields=["TotalPrice"],
                )
            if doc.get("UnitPrice") is None and doc.get("TotalPrice") is None:
                raise SalesforceError(
                    "REQUIRED_FIELD_MISSING", "Required fields are missing: [UnitPrice]", fields=["UnitPrice"]
                )
        certinia.validate(self, spec.name, doc, fields, insert=insert)

    def _check_reference(self, field: FieldSpec, value: str) -> str:
        label = field.relationship or field.name
        id_ = normalize_id(value)
        if id_ is None:
            raise SalesforceError(
                "MALFORMED_ID", f"{label} ID: id value of incorrect type: {value}", fields=[field.name]
            )
        if field.refers_to is None:
            return id_
        if object_for_id(id_) != field.refers_to:
            raise SalesforceError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{label} ID: id value of incorrect type: {value}",
                fields=[field.name],
            )
        target = self.store.get(field.refers_to, id_)
        if target is None or target.get("IsDeleted"):
            raise SalesforceError(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", fields=[field.name]
            )
        return id_

    def _derive(self, spec: ObjectSpec, doc: dict[str, Any], fields: dict[str, Any], *, insert: bool) -> None:
        """Compute read-only fields, as the org's formulas and triggers would."""
        if spec.name in ("User", "Contact"):
            doc["Name"] = " ".join(p for p in (doc.get("FirstName"), doc.get("LastName")) if p)
        elif spec.name == "Opportunity":
            if insert or "StageName" in fields:
                stage = self._stages[doc["StageName"]]
                doc["IsClosed"] = bool(stage.get("IsClosed"))
                doc["IsWon"] = bool(stage.get("IsWon"))
                doc["ForecastCategoryName"] = stage.get("ForecastCategoryName")
                if "Probability" not in fields:
                    doc["Probability"] = stage.get("DefaultProbability")
            if doc.get("HasOpportunityLineItem") and "Amount" in fields:
                # With products, Amount is the sum of the lines and cannot be set by hand.
                doc["Amount"] = self._line_total(doc["Id"])
        elif spec.name == "OpportunityLineItem":
            price_line(doc, fields, insert=insert)
            opp = self.store.get("Opportunity", doc["OpportunityId"]) or {}
            doc["CurrencyIsoCode"] = opp.get("CurrencyIsoCode")
            if not doc.get("Name"):
                doc["Name"] = f"{opp.get('Name', '')} {doc.get('Description') or 'Product'}".strip()
        elif spec.name == "Contract":
            doc["EndDate"] = contract_end(doc.get("StartDate"), doc.get("ContractTerm"))
            if insert:
                doc["ContractNumber"] = f"{id_counter(doc['Id']):08d}"
        elif spec.name == "OpportunityStage" and not doc.get("ApiName"):
            doc["ApiName"] = doc["MasterLabel"]
        certinia.derive(self, spec.name, doc, fields, insert=insert)

    # -- committing ------------------------------------------------------------------
    def _stamp(self) -> str:
        # Strictly increasing, even within one millisecond, so that a poller asking
        # for ``SystemModstamp > cursor`` never misses nor repeats a change.
        self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        return format_ms(self._last_ms)

    def commit(self, writes: list[Write]) -> None:
        """Stamp and persist planned writes, then update indexes and roll-ups."""
        if not writes:
            return
        with self.store.lock:
            by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            touched_opps: set[str] = set()
            for write in writes:
                stamp = self._stamp()
                write.doc["SystemModstamp"] = write.doc["LastModifiedDate"] = stamp
                write.doc["LastModifiedById"] = self.default_user or write.id
                if write.created:
                    write.doc["CreatedDate"] = stamp
                    write.doc["CreatedById"] = self.default_user or write.id
                by_type.setdefault(write.sobject, []).append((write.id, write.doc))
                self._index(write.sobject, write.doc, write.old)
                if write.sobject == "OpportunityLineItem":
                    touched_opps.update(
                        d["OpportunityId"] for d in (write.doc, write.old) if d and d.get("OpportunityId")
                    )
            for sobject, items in by_type.items():
                self.store.put_many(sobject, items)
            for listener in self.listeners:
                listener(writes)
            self.commit([w for opp in sorted(touched_opps) if (w := self._rollup(opp)) is not None])

    def _index(self, sobject: str, doc: dict[str, Any], old: dict[str, Any] | None) -> None:
        live = not doc.get("IsDeleted")
        for (child_type, field), by_parent in self._children.items():
            if child_type != sobject:
                continue
            if old is not None and old.get(field):
                by_parent.get(old[field], set()).discard(doc["Id"])
            if live and doc.get(field):
                by_parent.setdefault(doc[field], set()).add(doc["Id"])
        for (ext_type, field), index in self._ext.items():
            if ext_type != sobject:
                continue
            if old is not None and old.get(field) is not None:
                index.get(str(old[field]), set()).discard(doc["Id"])
            if live and doc.get(field) is not None:
                index.setdefault(str(doc[field]), set()).add(doc["Id"])
        if sobject == "OpportunityStage":
            if old is not None:
                self._stages.pop(old.get("MasterLabel", ""), None)
            if live and doc.get("IsActive", True):
                self._stages[doc["MasterLabel"]] = doc

    def _line_total(self, opp_id: str) -> float:
        lines = self._children[("OpportunityLineItem", "OpportunityId")].get(opp_id, set())
        total = sum(
            (decimal_of(self.store.get("OpportunityLineItem", i), "TotalPrice") for i in lines), Decimal(0)
        )
        return float(total.quantize(CENT))

    def _rollup(self, opp_id: str) -> Write | None:
        opp = self.store.get("Opportunity", opp_id)
        if opp is None or opp.get("IsDeleted"):
            return None
        has_lines = bool(self._children[("OpportunityLineItem", "OpportunityId")].get(opp_id))
        doc = {**opp, "HasOpportunityLineItem": has_lines}
        if has_lines:
            doc["Amount"] = self._line_total(opp_id)
        return None if doc == opp else Write("Opportunity", opp_id, doc, opp)

    # -- Python-side helpers (seeding and tests) -------------------------------------
    def insert_many(self, sobject: str, records: Iterable[dict[str, Any]]) -> list[str]:
        """Insert records with the API's validation; all or none. Returns their ids."""
        with self.store.lock:
            writes = [self.plan_insert(sobject, self.clean(sobject, r)) for r in records]
            self.commit(writes)
            return [w.id for w in writes]

    def update(self, sobject: str, id_: str, fields: dict[str, Any]) -> None:
        """Update one record with the API's validation."""
        with self.store.lock:
            self.commit([self.plan_update(sobject, id_, self.clean(sobject, fields))])


__all__ = ["INTEGRATION_USERNAME", "Org", "SalesforceError", "Write"]
