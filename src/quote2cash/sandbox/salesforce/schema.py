"""The emulated org's metadata: objects, fields, stages, record ids and timestamps.

Only what the hub's flows touch is described. Custom fields (``__c``) exist
only where they are declared, as in a real org: the hub's package adds its
fields (:data:`CUSTOM_FIELDS`), and any other custom field is refused with
``INVALID_FIELD`` on create, update and in a SOQL ``SELECT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from quote2cash.sandbox.salesforce import certinia

#: Field types, as a describe call names them.
STRING_TYPES = frozenset({"string", "picklist", "textarea", "email", "phone", "url", "id", "reference"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})


@dataclass(frozen=True)
class FieldSpec:
    """One field of an sObject.

    Attributes:
        name: the canonical API name.
        type: describe type (``string``, ``reference``, ``date`` ...) or ``custom``.
        createable: may be written on insert.
        updateable: may be written on update.
        required: must have a value once the record is written.
        refers_to: the sObject a lookup points at (None: not checked).
        relationship: the name of the lookup in SOQL (``Account`` for ``AccountId``).
        cascade: the record is deleted with the record it points at.
        picklist: the allowed values of a restricted picklist.
        length: the longest text the field holds (STRING_TOO_LONG beyond it).
    """

    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    required: bool = False
    refers_to: str | None = None
    relationship: str | None = None
    cascade: bool = False
    picklist: frozenset[str] | None = None
    length: int | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """One sObject type: its key prefix and its standard fields."""

    name: str
    prefix: str
    fields: dict[str, FieldSpec]
    api_writable: bool = True
    lower: dict[str, str] = field(default_factory=dict)
    relationships: dict[str, FieldSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lower.update({name.lower(): name for name in self.fields})
        self.relationships.update({f.relationship.lower(): f for f in self.fields.values() if f.relationship})

    def field(self, name: str) -> FieldSpec | None:
        """The spec of a field by case-insensitive name (None: the org has no such field)."""
        canonical = self.lower.get(name.lower())
        return None if canonical is None else self.fields[canonical]


def is_custom(name: str) -> bool:
    """Whether a field name is a custom field (``Something__c``)."""
    return len(name) > 3 and name.lower().endswith("__c") and _NAME.fullmatch(name) is not None


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _ro(name: str, type_: str, *, refers_to: str | None = None, relationship: str | None = None) -> FieldSpec:
    return FieldSpec(
        name, type_, createable=False, updateable=False, refers_to=refers_to, relationship=relationship
    )


def _ref(name: str, target: str | None, *, cascade: bool = False, required: bool = False) -> FieldSpec:
    # Standard lookups are named ``XxxId`` and traversed in SOQL as ``Xxx``.
    return FieldSpec(
        name,
        "reference",
        refers_to=target,
        relationship=name.removesuffix("Id"),
        cascade=cascade,
        required=required,
    )


def _system() -> list[FieldSpec]:
    return [
        _ro("Id", "id"),
        _ro("IsDeleted", "boolean"),
        _ro("CreatedDate", "datetime"),
        _ro("CreatedById", "reference", refers_to="User", relationship="CreatedBy"),
        _ro("LastModifiedDate", "datetime"),
        _ro("LastModifiedById", "reference", refers_to="User", relationship="LastModifiedBy"),
        _ro("SystemModstamp", "datetime"),
    ]


def _obj(name: str, prefix: str, fields: list[FieldSpec], *, api_writable: bool = True) -> ObjectSpec:
    declared = _system() + fields + CUSTOM_FIELDS.get(name, [])
    return ObjectSpec(name, prefix, {f.name: f for f in declared}, api_writable=api_writable)


def _text(name: str, length: int = 255) -> FieldSpec:
    return FieldSpec(name, "string", length=length)


def _billing_fields() -> list[FieldSpec]:
    """What billing feedback (F8) shows on accounts and opportunities."""
    return [
        FieldSpec("Billed_To_Date__c", "currency"),
        _text("Last_Invoice_Number__c", 40),
        _text("Last_Invoice_Status__c", 40),
        _text("Payment_Status__c", 40),
        FieldSpec("Days_Outstanding__c", "int"),
    ]


#: The custom fields of the hub's package, by object: what the CRM team installs.
CUSTOM_FIELDS: dict[str, list[FieldSpec]] = {
    "Account": [
        FieldSpec("Region__c", "picklist"),
        _text("Tax_Id__c", 40),
        FieldSpec("Payment_Terms__c", "picklist"),
        FieldSpec("Tax_Region__c", "picklist"),
        _text("ERP_Customer_Id__c", 40),
        _text("Hub_Ext_Id__c", 80),
        *_billing_fields(),
    ],
    "Opportunity": [
        FieldSpec("Billing_Model__c", "picklist"),
        FieldSpec("Terms_Approved__c", "boolean"),
        FieldSpec("Practice__c", "picklist"),
        FieldSpec("Start_Date__c", "date"),
        FieldSpec("End_Date__c", "date"),
        _text("Rate_Card__c", 40),
        FieldSpec("Legal_Entity__c", "picklist"),
        FieldSpec("Integration_Status__c", "picklist"),
        _text("Integration_Message__c", 255),
        _text("ERP_Customer_Id__c", 40),
        _text("ERP_Project_Id__c", 40),
        _text("PSA_Workspace_Id__c", 40),
        *_billing_fields(),
    ],
    "OpportunityLineItem": [FieldSpec("Role__c", "picklist")],
}


def _s(*names: str, type_: str = "string") -> list[FieldSpec]:
    return [FieldSpec(n, type_) for n in names]


CONTRACT_STATUSES = frozenset({"Draft", "In Approval Process", "Activated"})

OBJECTS: dict[str, ObjectSpec] = {
    spec.name: spec
    for spec in [
        _obj(
            "User",
            "005",
            [
                FieldSpec("Username", "string", required=True),
                FieldSpec("LastName", "string", required=True),
                *_s("FirstName", "Alias", "Title", "Department"),
                FieldSpec("Email", "email"),
                FieldSpec("IsActive", "boolean"),
                _ro("Name", "string"),
            ],
        ),
        _obj(
            "Account",
            "001",
            [
                FieldSpec("Name", "string", required=True),
                *_s("BillingStreet", "BillingCity", "BillingState", "BillingPostalCode", "BillingCountry"),
                *_s("Industry", "Type", "AccountNumber", type_="picklist"),
                FieldSpec("Website", "url"),
                FieldSpec("Phone", "phone"),
                FieldSpec("Description", "textarea"),
                FieldSpec("NumberOfEmployees", "int"),
                FieldSpec("AnnualRevenue", "currency"),
                FieldSpec("CurrencyIsoCode", "picklist"),
                _ref("OwnerId", "User"),
                _ref("ParentId", "Account"),
            ],
        ),
        _obj(
            "Contact",
            "003",
            [
                _ref("AccountId", "Account", cascade=True),
                FieldSpec("LastName", "string", required=True),
                *_s("FirstName", "Title", "Department"),
                FieldSpec("Email", "email"),
                FieldSpec("Phone", "phone"),
                FieldSpec("CurrencyIsoCode", "picklist"),
                _ref("OwnerId", "User"),
                _ro("Name", "string"),
            ],
        ),
        _obj(
            "Opportunity",
            "006",
            [
                _ref("AccountId", "Account", cascade=True),
                FieldSpec("Name", "string", required=True),
                FieldSpec("StageName", "picklist", required=True),
                FieldSpec("CloseDate", "date", required=True),
                FieldSpec("Amount", "currency"),
                FieldSpec("Probability", "percent"),
                FieldSpec("CurrencyIsoCode", "picklist"),
                FieldSpec("Description", "textarea"),
                *_s("Type", "LeadSource", type_="picklist"),
                FieldSpec("NextStep", "string"),
                _ref("OwnerId", "User"),
                _ref("Pricebook2Id", None),
                _ro("IsClosed", "boolean"),
                _ro("IsWon", "boolean"),
                _ro("ForecastCategoryName", "picklist"),
                _ro("HasOpportunityLineItem", "boolean"),
            ],
        ),
        _obj(
            "OpportunityLineItem",
            "00k",
            [
                FieldSpec(
                    "OpportunityId",
                    "reference",
                    updateable=False,
                    required=True,
                    refers_to="Opportunity",
                    relationship="Opportunity",
                    cascade=True,
                ),
                _ref("Product2Id", None),
                _ref("PricebookEntryId", None),
                # Read-only in a real org (derived from the product); accepted here so
                # demo data can name lines without a price book.
                FieldSpec("Name", "string"),
                FieldSpec("Description", "string"),
                FieldSpec("Quantity", "double", required=True),
                FieldSpec("UnitPrice", "currency"),
                FieldSpec("TotalPrice", "currency"),
                FieldSpec("ServiceDate", "date"),
                _ro("CurrencyIsoCode", "picklist"),
            ],
        ),
        _obj(
            "Contract",
            "800",
            [
                _ref("AccountId", "Account", cascade=True, required=True),
                FieldSpec("Status", "picklist", picklist=CONTRACT_STATUSES),
                FieldSpec("StartDate", "date"),
                FieldSpec("ContractTerm", "int"),
                FieldSpec("Description", "textarea"),
                FieldSpec("CurrencyIsoCode", "picklist"),
                _ref("OwnerId", "User"),
                _ro("EndDate", "date"),
                _ro("ContractNumber", "string"),
            ],
        ),
        _obj(
            "OpportunityStage",
            "01J",
            [
                FieldSpec("MasterLabel", "string", required=True),
                FieldSpec("ApiName", "string"),
                FieldSpec("IsActive", "boolean"),
                FieldSpec("IsClosed", "boolean"),
                FieldSpec("IsWon", "boolean"),
                FieldSpec("DefaultProbability", "percent"),
                FieldSpec("ForecastCategoryName", "picklist"),
                FieldSpec("SortOrder", "int"),
            ],
            api_writable=False,
        ),
    ]
}
# The Certinia PSA managed package: its ``pse__`` objects and the resource fields of Contact.
OBJECTS.update(certinia.objects(OBJECTS))

_LOWER_OBJECTS = {name.lower(): name for name in OBJECTS}


def object_spec(name: str) -> ObjectSpec | None:
    """The spec of an sObject by case-insensitive name."""
    canonical = _LOWER_OBJECTS.get(name.lower())
    return OBJECTS[canonical] if canonical else None


def object_for_id(id_: str) -> str | None:
    """The sObject type a record id belongs to, from its key prefix."""
    prefix = id_[:3]
    return next((s.name for s in OBJECTS.values() if s.prefix == prefix), None)


#: (label, default probability, forecast category, closed, won) of the standard sales process.
STANDARD_STAGES: list[tuple[str, int, str, bool, bool]] = [
    ("Prospecting", 10, "Pipeline", False, False),
    ("Qualification", 10, "Pipeline", False, False),
    ("Needs Analysis", 20, "Pipeline", False, False),
    ("Value Proposition", 50, "Pipeline", False, False),
    ("Id. Decision Makers", 60, "Pipeline", False, False),
    ("Perception Analysis", 70, "Pipeline", False, False),
    ("Proposal/Price Quote", 75, "Pipeline", False, False),
    ("Negotiation/Review", 90, "Pipeline", False, False),
    ("Closed Won", 100, "Closed", True, True),
    ("Closed Lost", 0, "Omitted", True, False),
]

# -- record ids --------------------------------------------------------------------
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_SHAPE = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")
#: Pod and reserved characters of the emulated org's ids (keeps them realistic-looking).
_POD = "Hp0"


def _checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitive."""
    out = []
    for chunk in range(3):
        part = id15[chunk * 5 : chunk * 5 + 5]
        bits = sum(1 << i for i, ch in enumerate(part) if "A" <= ch <= "Z")
        out.append(_SUFFIX_CHARS[bits])
    return "".join(out)


def make_id(prefix: str, counter: int) -> str:
    """The 18-character id of record number ``counter`` of the type with ``prefix``."""
    id15 = f"{prefix}{_POD}{counter:09d}"
    return id15 + _checksum(id15)


def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None if it is not id-shaped."""
    if not _ID_SHAPE.fullmatch(value):
        return None
    id15 = value[:15]
    return id15 + _checksum(id15)


def id_counter(id_: str) -> int:
    """The counter a generated id was made from (0 for foreign ids)."""
    digits = id_[6:15]
    return int(digits) if digits.isdigit() else 0


# -- timestamps --------------------------------------------------------------------
def format_ms(ms: int) -> str:
    """Epoch milliseconds as Salesforce writes a dateTime: ``2025-01-01T00:00:00.000+0000``."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?"
)


def parse_datetime_ms(text: str) -> int | None:
    """Epoch milliseconds of an ISO-8601 / Salesforce dateTime string, or None."""
    m = _DATETIME.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    ms = int(moment.timestamp()) * 1000 + int((m.group(7) or "0")[:3].ljust(3, "0"))
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ms -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    return ms


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_date(text: str) -> bool:
    """Whether ``text`` is a valid ``YYYY-MM-DD`` date."""
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True
