"""The record types the NetSuite sandbox knows, and how their fields behave.

Only what the sandbox validates is declared: reference fields (with the
record types they may point at), mandatory fields and sublists. Every other
field is stored as sent, as NetSuite stores custom and body fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Refs = Mapping[str, tuple[str, ...]]

# Reference fields shared by transactions and their lines (financial dimensions).
_DIMENSIONS: Refs = {
    "department": ("department",),
    "class": ("classification",),
    "location": ("location",),
}
_TRANSACTION_REFS: Refs = {
    **_DIMENSIONS,
    "subsidiary": ("subsidiary",),
    "currency": ("currency",),
    "postingPeriod": ("accountingperiod",),
}


@dataclass(frozen=True)
class RecordType:
    """How one record type is validated, numbered and named.

    Attributes:
        name: the REST record type (``customer``).
        sequence: the id space; NetSuite numbers all entities (customers,
            projects, employees) from one sequence and all transactions from
            another, so ``{"id": "1042"}`` is unambiguous across them.
        refs: reference field -> record types it may point at.
        required: mandatory fields, checked after defaults are applied.
        sublists: sublist name -> reference fields of its lines.
        transaction: dated by ``tranDate`` and subject to period close.
        name_field: the field shown as ``refName`` when another record points here.
        tran_prefix: prefix of the generated ``tranId`` of a transaction.
        suiteql_type: the ``type`` column of the SuiteQL ``transaction`` table.
    """

    name: str
    sequence: str
    refs: Refs = field(default_factory=dict)
    required: tuple[str, ...] = ()
    sublists: Mapping[str, Refs] = field(default_factory=dict)
    transaction: bool = False
    name_field: str = "name"
    tran_prefix: str = ""
    suiteql_type: str = ""


#: The custom fields the hub's bundle installs in the account (body, entity and column fields).
#: A custom field not declared here does not exist: writing it is refused, as NetSuite does.
CUSTOM_FIELDS = frozenset(
    {
        "custbody_q2c_amount",
        "custbody_q2c_billable",
        "custbody_q2c_billing",
        "custbody_q2c_entries",
        "custbody_q2c_hours",
        "custbody_q2c_invoice",
        "custbody_q2c_kind",
        "custbody_q2c_period",
        "custbody_q2c_project",
        "custbody_q2c_reversal_of",
        "custbody_q2c_source_ref",
        "custbody_q2c_task",
        "custbody_q2c_tax",
        "custbody_q2c_total",
        "custcol_q2c_task",
        "custentity_q2c_billing_model",
    }
)
CUSTOM_PREFIXES = ("custbody", "custentity", "custcol", "custrecord", "custitem", "custevent")


def is_custom_field(name: str) -> bool:
    """Whether a field name is a NetSuite custom field (``custbody_…``, ``custentity_…`` …)."""
    return name.split("_", 1)[0] in CUSTOM_PREFIXES and "_" in name


TYPES: dict[str, RecordType] = {
    t.name: t
    for t in (
        RecordType(
            "subsidiary",
            "subsidiary",
            refs={"currency": ("currency",), "parent": ("subsidiary",)},
            required=("name",),
        ),
        RecordType("accountingperiod", "accountingperiod", required=("periodName",), name_field="periodName"),
        RecordType("currency", "currency", required=("symbol",)),
        RecordType("term", "term", required=("name",)),
        RecordType("department", "department", refs={"parent": ("department",)}, required=("name",)),
        RecordType(
            "classification", "classification", refs={"parent": ("classification",)}, required=("name",)
        ),
        RecordType("location", "location", refs={"parent": ("location",)}, required=("name",)),
        RecordType(
            "employee",
            "entity",
            refs={**_DIMENSIONS, "subsidiary": ("subsidiary",), "supervisor": ("employee",)},
            name_field="entityId",
        ),
        RecordType(
            "customer",
            "entity",
            refs={
                **_DIMENSIONS,
                "subsidiary": ("subsidiary",),
                "currency": ("currency",),
                "terms": ("term",),
                "parent": ("customer",),
                "salesRep": ("employee",),
            },
            required=("companyName", "subsidiary"),
            name_field="entityId",
        ),
        RecordType(
            "job",
            "entity",
            refs={
                **_DIMENSIONS,
                "parent": ("customer",),
                "subsidiary": ("subsidiary",),
                "currency": ("currency",),
                "projectManager": ("employee",),
            },
            required=("companyName", "parent"),
            name_field="entityId",
        ),
        RecordType(
            "timebill",
            "timebill",
            refs={**_TRANSACTION_REFS, "employee": ("employee",), "customer": ("job", "customer")},
            required=("tranDate",),
            transaction=True,
            name_field="id",
        ),
        RecordType(
            "expensereport",
            "transaction",
            refs={**_TRANSACTION_REFS, "employee": ("employee",), "entity": ("employee",)},
            required=("tranDate",),
            sublists={"expense": {**_DIMENSIONS, "customer": ("job", "customer"), "currency": ("currency",)}},
            transaction=True,
            name_field="tranId",
            tran_prefix="ER",
            suiteql_type="ExpRept",
        ),
        RecordType(
            "invoice",
            "transaction",
            refs={**_TRANSACTION_REFS, "entity": ("customer", "job"), "job": ("job",), "terms": ("term",)},
            required=("tranDate",),
            sublists={"item": dict(_DIMENSIONS)},
            transaction=True,
            name_field="tranId",
            tran_prefix="INV",
            suiteql_type="CustInvc",
        ),
        RecordType(
            "creditmemo",
            "transaction",
            refs={**_TRANSACTION_REFS, "entity": ("customer", "job"), "createdFrom": ("invoice",)},
            required=("tranDate", "entity"),
            sublists={"item": dict(_DIMENSIONS)},
            transaction=True,
            name_field="tranId",
            tran_prefix="CM",
            suiteql_type="CustCred",
        ),
        RecordType(
            "customerpayment",
            "transaction",
            refs={**_TRANSACTION_REFS, "customer": ("customer", "job")},
            required=("tranDate", "customer"),
            sublists={"apply": {"doc": ("invoice",)}},
            transaction=True,
            name_field="tranId",
            tran_prefix="PYMT",
            suiteql_type="CustPymt",
        ),
        RecordType(
            "journalentry",
            "transaction",
            refs=_TRANSACTION_REFS,
            required=("tranDate",),
            sublists={"line": {**_DIMENSIONS, "entity": ("customer", "job", "employee")}},
            transaction=True,
            name_field="tranId",
            tran_prefix="JE",
            suiteql_type="Journal",
        ),
    )
}

# UI labels, used by NetSuite in "Please enter value(s) for: ..." messages.
LABELS: dict[str, str] = {
    "companyName": "Company Name",
    "subsidiary": "Subsidiary",
    "parent": "Customer",
    "tranDate": "Date",
    "name": "Name",
    "symbol": "ISO Code",
    "periodName": "Period Name",
}

# Id spaces start where NetSuite's usually do: master data at 1, the rest higher.
SEQUENCE_START: dict[str, int] = {"entity": 1000, "transaction": 1000, "timebill": 0}


def sequence_start(sequence: str) -> int:
    """The value before the first id of an id space."""
    return SEQUENCE_START.get(sequence, 0)


__all__ = ["LABELS", "TYPES", "RecordType", "Refs", "sequence_start"]
