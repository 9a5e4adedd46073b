"""Entities of one Business Central environment: validation, keys, ETags and rendering.

Every entity is stored in the DocStore under its entity set's name, with the
internal fields ``_company`` (the company it belongs to), ``_parent`` (the
journal of a journal line, the dimension of a dimension value), ``_version``
(bumped on every write; the ETag is derived from it) and, for journal lines,
``_dims`` (its dimension set). Writes check what Business Central checks:
unknown and read-only properties, value types, ``Code[n]`` lengths (upper-cased),
unique keys, references to other tables and, for journal lines, closed periods.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.business_central.errors import (
    BcError,
    bad_request,
    concurrency_token_missing,
    entity_changed,
    entity_exists,
    not_found,
    property_not_found,
)
from quote2cash.sandbox.business_central.schema import COMPANIES, DIMENSION_SET_LINE, SETS, EntitySet, Field

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DEFAULTS: dict[str, Any] = {
    "text": "",
    "code": "",
    "decimal": Decimal(0),
    "int": 0,
    "bool": False,
    "date": "0001-01-01",
    "datetime": "0001-01-01T00:00:00Z",
    "guid": EMPTY_GUID,
}


def now_stamp() -> str:
    """The current time as BC writes ``lastModifiedDateTime`` (UTC, milliseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


def etag(doc: dict[str, Any]) -> str:
    """The weak ETag of an entity's current version."""
    raw = f"{doc['id']};{doc.get('_version', 1)}".encode()
    return f'W/"J{base64.b64encode(raw).decode()}\'"'


def field_error(message: str) -> BcError:
    """400 ``Application_FieldValidationException``: a value refused by a table's validation."""
    return BcError(400, "Application_FieldValidationException", message)


def _value(name: str, spec: Field, value: Any, entity_type: str) -> Any:
    edm = {
        "text": "Edm.String",
        "code": "Edm.String",
        "decimal": "Edm.Decimal",
        "int": "Edm.Int32",
        "bool": "Edm.Boolean",
        "date": "Edm.Date",
        "datetime": "Edm.DateTimeOffset",
        "guid": "Edm.Guid",
        "enum": f"Microsoft.NAV.{name}",
    }[spec.type]
    wrong = bad_request(
        f"Cannot convert the literal '{value}' to the expected type '{edm}' of the property '{name}'."
    )
    if spec.type in ("text", "code", "enum", "date", "datetime", "guid") and not isinstance(value, str):
        raise wrong
    if spec.type in ("text", "code"):
        text = value.upper() if spec.type == "code" else value
        if spec.length is not None and len(text) > spec.length:
            raise BcError(
                400,
                "Application_StringExceededLength",
                f"The length of the string is {len(text)}, but it must be less than or equal to "
                f"{spec.length} characters. Value: {value}",
            )
        return text
    if spec.type == "enum":
        if value not in spec.options:
            raise wrong
        return value
    if spec.type == "guid":
        if not _GUID.match(value):
            raise wrong
        return value.lower()
    if spec.type == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise wrong from None
        return value
    if spec.type == "datetime":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise wrong from None
        return value
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise wrong
    if spec.type == "int":
        if not isinstance(value, int):
            raise wrong
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise wrong from None


class Environment:
    """The companies and entities of one environment, over a :class:`DocStore`."""

    def __init__(self, store: DocStore) -> None:
        self.store = store

    # -- companies --------------------------------------------------------------------
    def company(self, id_: str) -> dict[str, Any]:
        """A company by id; ``BadRequest_NotFound`` otherwise."""
        doc = self.store.get(COMPANIES.name, id_.lower())
        if doc is None:
            raise not_found("Company")
        return doc

    def add_company(self, name: str) -> str:
        """Create a company; returns its id."""
        id_ = str(uuid.uuid4())
        stamp = now_stamp()
        self.store.put(
            COMPANIES.name,
            id_,
            {
                "id": id_,
                "systemVersion": "25.0.23364.0",
                "timestamp": 1,
                "name": name,
                "displayName": name,
                "businessProfileId": "",
                "systemCreatedAt": stamp,
                "systemCreatedBy": EMPTY_GUID,
                "systemModifiedAt": stamp,
                "systemModifiedBy": EMPTY_GUID,
                "_version": 1,
            },
        )
        return id_

    # -- reading ----------------------------------------------------------------------
    def scope(self, es: EntitySet, company: str, parent: str | None) -> list[dict[str, Any]]:
        """The entities of a set in a company (under one parent where the set is nested)."""
        docs = self.store.find(es.name, _company=company)
        if parent is not None:
            docs = [d for d in docs if d.get("_parent") == parent]
        return docs

    def get(self, es: EntitySet, company: str, parent: str | None, id_: str) -> dict[str, Any]:
        """One entity by id; ``BadRequest_NotFound`` when it is not in this company (or parent)."""
        doc = self.store.get(es.name, id_.lower())
        if (
            doc is None
            or doc.get("_company") != company
            or (parent is not None and doc.get("_parent") != parent)
        ):
            raise not_found(es.caption)
        return doc

    def by_key(self, set_name: str, company: str, key: str, value: str) -> dict[str, Any] | None:
        """The entity whose unique key field has ``value`` (upper-cased as BC stores codes)."""
        found = [d for d in self.store.find(set_name, _company=company) if d.get(key) == value.upper()]
        return found[0] if found else None

    # -- writing ----------------------------------------------------------------------
    def check_body(self, es: EntitySet, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """The body's properties, validated and normalised (``@odata.*`` annotations ignored)."""
        out: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@odata."):
                continue
            if name == "dimensionSetLines" and es.name == "journalLines" and creating:
                out[name] = value
                continue
            spec = es.fields.get(name)
            if spec is None:
                raise property_not_found(name, es.entity_type)
            if spec.read_only and not (creating and name == "id"):
                raise bad_request(f"The property '{name}' is read-only and cannot be modified.")
            if value is None:
                raise bad_request(
                    f"A null value was found for the property named '{name}', which is not nullable."
                )
            out[name] = _value(name, spec, value, es.entity_type)
        return out

    def create(self, es: EntitySet, company: str, parent: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Insert an entity from a request body; returns the stored entity."""
        values = self.check_body(es, body, creating=True)
        with self.store.lock:
            id_ = str(values.pop("id", None) or uuid.uuid4()).lower()
            if self.store.get(es.name, id_) is not None:
                raise entity_exists(es.caption, "SystemId", id_)
            doc: dict[str, Any] = {
                n: (s.options[0] if s.type == "enum" else _DEFAULTS[s.type]) for n, s in es.fields.items()
            }
            doc.update(id=id_, _company=company, _parent=parent, _version=1)
            dims = values.pop("dimensionSetLines", None)
            doc.update(values)
            self._assign_key(es, company, doc, values)
            self._related(es, company, parent, doc)
            if dims is not None:
                doc["_dims"] = self._dimension_set(company, dims)
            doc["lastModifiedDateTime"] = now_stamp()
            self.store.put(es.name, id_, doc)
            return doc

    def update(
        self,
        es: EntitySet,
        company: str,
        parent: str | None,
        id_: str,
        body: dict[str, Any],
        if_match: str | None,
    ) -> dict[str, Any]:
        """Change an entity (``PATCH``) under its ETag; returns it."""
        values = self.check_body(es, body, creating=False)
        with self.store.lock:
            doc = self.get(es, company, parent, id_)
            self._check_etag(doc, if_match)
            changed = {**doc, **values}
            if es.key is not None and es.key[0] in values and values[es.key[0]] != doc.get(es.key[0]):
                taken = self.by_key(es.name, company, es.key[0], values[es.key[0]])
                if taken is not None:
                    raise entity_exists(es.caption, es.key[1], values[es.key[0]])
            self._related(es, company, parent, changed)
            changed["_version"] = int(doc.get("_version", 1)) + 1
            changed["lastModifiedDateTime"] = now_stamp()
            self.store.put(es.name, doc["id"], changed)
            return changed

    def delete(self, es: EntitySet, company: str, parent: str | None, id_: str, if_match: str | None) -> None:
        """Remove an entity under its ETag (a journal takes its lines with it)."""
        with self.store.lock:
            doc = self.get(es, company, parent, id_)
            self._check_etag(doc, if_match)
            for child in es.children:
                for line in self.store.find(child, _parent=doc["id"]):
                    self.store.delete(child, line["id"])
            self.store.delete(es.name, doc["id"])

    @staticmethod
    def _check_etag(doc: dict[str, Any], if_match: str | None) -> None:
        if if_match is None:
            raise concurrency_token_missing()
        if if_match.strip() != "*" and if_match.strip() != etag(doc):
            raise entity_changed()

    def _assign_key(self, es: EntitySet, company: str, doc: dict[str, Any], values: dict[str, Any]) -> None:
        if es.key is None:
            return
        key, caption = es.key
        value = values.get(key, "")
        if not value and es.number_prefix:
            value = f"{es.number_prefix}{self.store.next_id(f'{es.name}:{company}', start=10000):05d}"
        elif not value:
            raise field_error(
                f"{caption} must have a value in {es.caption}: {caption}=''. It cannot be zero or empty."
            )
        scope = [
            d for d in self.store.find(es.name, _company=company) if d.get("_parent") == doc.get("_parent")
        ]
        if any(d.get(key) == value for d in scope):
            raise entity_exists(es.caption, caption, value)
        doc[key] = value

    def _related(self, es: EntitySet, company: str, parent: str | None, doc: dict[str, Any]) -> None:
        if es.name == "customers":
            self._customer_refs(company, doc)
        elif es.name == "journalLines":
            self._journal_line(company, parent, doc)
        elif es.name == "salesInvoices":
            customer = None
            if doc.get("customerId") not in (None, EMPTY_GUID):
                customer = self.store.get("customers", doc["customerId"])
            elif doc.get("customerNumber"):
                customer = self.by_key("customers", company, "number", doc["customerNumber"])
            if customer is None or customer.get("_company") != company:
                raise field_error("The Customer does not exist. Identification fields and values: No.=''")
            doc.update(
                customerId=customer["id"],
                customerNumber=customer["number"],
                customerName=customer["displayName"],
            )
            doc.setdefault("status", "Draft")
            if doc.get("status") == "":
                doc["status"] = "Draft"

    def _customer_refs(self, company: str, doc: dict[str, Any]) -> None:
        code = doc.get("currencyCode") or ""
        if code:
            currency = self.by_key("currencies", company, "code", code)
            if currency is None:
                raise field_error(
                    f"The field Currency Code of table Customer contains a value ({code}) that cannot be found "
                    "in the related table (Currency)."
                )
            doc["currencyId"] = currency["id"]
        else:
            doc["currencyId"] = EMPTY_GUID
        terms = doc.get("paymentTermsId") or EMPTY_GUID
        if terms != EMPTY_GUID:
            found = self.store.get("paymentTerms", terms)
            if found is None or found.get("_company") != company:
                raise field_error(f"The Payment Terms with id '{terms}' does not exist.")

    def _journal_line(self, company: str, parent: str | None, doc: dict[str, Any]) -> None:
        journal = self.store.get("journals", parent or "")
        if journal is None:
            raise not_found("Gen. Journal Batch")
        doc["journalId"] = journal["id"]
        doc["journalDisplayName"] = journal["code"]
        if not doc.get("lineNumber"):
            lines = self.store.find("journalLines", _parent=journal["id"])
            doc["lineNumber"] = (
                max((int(d["lineNumber"]) for d in lines if d["id"] != doc["id"]), default=0) + 10000
            )
        for type_key, number_key, id_key in (
            ("accountType", "accountNumber", "accountId"),
            ("balanceAccountType", "balancingAccountNumber", "balancingAccountId"),
        ):
            if doc.get(type_key) != "G/L Account":
                continue
            number = doc.get(number_key) or ""
            account = self.by_key("accounts", company, "number", number) if number else None
            if account is None and doc.get(id_key) not in (None, EMPTY_GUID):
                found = self.store.get("accounts", doc[id_key])
                account = found if found is not None and found.get("_company") == company else None
            if account is None and (number or doc.get(id_key) not in (None, EMPTY_GUID)):
                raise field_error(
                    f"The field {'Account No.' if type_key == 'accountType' else 'Bal. Account No.'} of table "
                    f"Gen. Journal Line contains a value ({number}) that cannot be found in the related table "
                    "(G/L Account)."
                )
            if account is not None:
                if account.get("blocked"):
                    raise field_error(
                        f"Blocked must be equal to 'No'  in G/L Account: No.={account['number']}."
                    )
                doc[number_key], doc[id_key] = account["number"], account["id"]
        posting = doc.get("postingDate") or "0001-01-01"
        if posting != "0001-01-01" and self.period_closed(company, posting):
            raise BcError(
                400,
                "Application_DialogException",
                f"Posting Date {posting} is not within your range of allowed posting dates in Gen. Journal "
                "Line: the accounting period is closed.",
            )

    def period_closed(self, company: str, day: str) -> bool:
        """Whether the accounting period containing ``day`` is closed in the company."""
        periods = sorted(
            self.store.find("accountingPeriods", _company=company), key=lambda d: d["startingDate"]
        )
        current = [p for p in periods if p["startingDate"] <= day]
        return bool(current and current[-1].get("closed"))

    def _dimension_set(self, company: str, lines: Any) -> list[dict[str, Any]]:
        if not isinstance(lines, list):
            raise bad_request("The property 'dimensionSetLines' must be a collection.")
        out: list[dict[str, Any]] = []
        for line in lines:
            if not isinstance(line, dict):
                raise bad_request("An entry of 'dimensionSetLines' is not an object.")
            for name in line:
                if name not in DIMENSION_SET_LINE:
                    raise property_not_found(name, "dimensionSetLine")
            code = _value("code", DIMENSION_SET_LINE["code"], line.get("code", ""), "dimensionSetLine")
            value = _value(
                "valueCode", DIMENSION_SET_LINE["valueCode"], line.get("valueCode", ""), "dimensionSetLine"
            )
            dimension = self.by_key("dimensions", company, "code", code)
            if dimension is None:
                raise field_error(f"The Dimension {code} does not exist.")
            found = [
                d for d in self.scope(SETS["dimensionValues"], company, dimension["id"]) if d["code"] == value
            ]
            if not found:
                raise field_error(f"The Dimension Value {code} {value} does not exist.")
            out.append(
                {
                    "id": dimension["id"],
                    "code": code,
                    "displayName": dimension["displayName"],
                    "valueId": found[0]["id"],
                    "valueCode": value,
                    "valueDisplayName": found[0]["displayName"],
                }
            )
        return out

    # -- rendering --------------------------------------------------------------------
    @staticmethod
    def render(
        es: EntitySet, doc: dict[str, Any], select: list[str] | None = None, expand: bool = False
    ) -> dict[str, Any]:
        """The JSON of an entity: ``@odata.etag`` first, then its (selected) properties."""
        out: dict[str, Any] = {"@odata.etag": etag(doc)}
        for name, spec in es.fields.items():
            if select is not None and name not in select:
                continue
            value = doc.get(name)
            if spec.type == "decimal" and value is not None:
                # JSON numbers; a two- or four-decimal amount prints back exactly.
                value = float(Decimal(str(value)))
            out[name] = value
        if expand:
            out["dimensionSetLines"] = [
                {
                    "@odata.etag": etag({"id": d["id"], "_version": 1}),
                    **d,
                    "parentId": doc["id"],
                    "parentType": "Journal Line",
                }
                for d in doc.get("_dims", [])
            ]
        return out


__all__ = ["EMPTY_GUID", "Environment", "etag", "field_error", "now_stamp"]
