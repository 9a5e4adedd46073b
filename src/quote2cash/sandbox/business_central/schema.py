"""The entities of Business Central API v2.0 the sandbox serves, field by field.

Each entity set names its EDM type (``Microsoft.NAV.customer``), its fields
with their types, which fields are read-only, its unique key besides ``id``
(``number``, ``code``) and the HTTP methods the API allows on it. A field not
listed is refused with ``BadRequest_PropertyNotFound``, as Business Central does.
``code`` fields are upper-cased and length-checked like BC ``Code[n]`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["guid", "text", "code", "date", "datetime", "decimal", "int", "bool", "enum"]


@dataclass(frozen=True)
class Field:
    """One property of an entity: its EDM type, maximum length and whether the client may write it."""

    type: FieldType
    length: int | None = None
    read_only: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntitySet:
    """One entity set of the API.

    Attributes:
        name: the URL segment (``customers``).
        entity_type: the EDM type name after ``Microsoft.NAV.``.
        caption: the table caption used in error messages.
        fields: every property, ``id`` and ``lastModifiedDateTime`` included.
        key: the unique field besides ``id`` (BC's primary key), with its caption.
        methods: HTTP methods allowed on it over the API.
        number_prefix: prefix of a number assigned when a create gives none.
        parent: the entity set it is nested under (``journalLines`` under ``journals``).
    """

    name: str
    entity_type: str
    caption: str
    fields: dict[str, Field]
    key: tuple[str, str] | None = None
    methods: frozenset[str] = frozenset({"GET"})
    number_prefix: str | None = None
    parent: str | None = None
    children: tuple[str, ...] = field(default=())


_ID = Field("guid", read_only=True)
_STAMP = Field("datetime", read_only=True)
_RW = frozenset({"GET", "POST", "PATCH", "DELETE"})
_ACCOUNT_TYPES = ("G/L Account", "Customer", "Vendor", "Bank Account", "Fixed Asset", "Employee")

COMPANIES = EntitySet(
    "companies",
    "company",
    "Company",
    {
        "id": _ID,
        "systemVersion": Field("text", read_only=True),
        "timestamp": Field("int", read_only=True),
        "name": Field("text", 30, read_only=True),
        "displayName": Field("text", 250, read_only=True),
        "businessProfileId": Field("text", 250, read_only=True),
        "systemCreatedAt": _STAMP,
        "systemCreatedBy": Field("guid", read_only=True),
        "systemModifiedAt": _STAMP,
        "systemModifiedBy": Field("guid", read_only=True),
    },
)

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in [
        EntitySet(
            "customers",
            "customer",
            "Customer",
            {
                "id": _ID,
                "number": Field("code", 20),
                "displayName": Field("text", 100),
                "type": Field("enum", options=("Company", "Person")),
                "addressLine1": Field("text", 100),
                "addressLine2": Field("text", 50),
                "city": Field("text", 30),
                "state": Field("text", 30),
                "country": Field("code", 10),
                "postalCode": Field("code", 20),
                "phoneNumber": Field("text", 30),
                "email": Field("text", 80),
                "website": Field("text", 80),
                "salespersonCode": Field("code", 20),
                "balanceDue": Field("decimal", read_only=True),
                "creditLimit": Field("decimal"),
                "taxLiable": Field("bool"),
                "taxAreaId": Field("guid"),
                "taxAreaDisplayName": Field("text", 100, read_only=True),
                "taxRegistrationNumber": Field("text", 20),
                "currencyId": Field("guid"),
                "currencyCode": Field("code", 10),
                "paymentTermsId": Field("guid"),
                "shipmentMethodId": Field("guid"),
                "paymentMethodId": Field("guid"),
                "blocked": Field("enum", options=(" ", "Ship", "Invoice", "All")),
                "lastModifiedDateTime": _STAMP,
            },
            key=("number", "No."),
            methods=_RW,
            number_prefix="C",
        ),
        EntitySet(
            "projects",
            "project",
            "Job",
            {
                "id": _ID,
                "number": Field("code", 20),
                "displayName": Field("text", 100),
                "lastModifiedDateTime": _STAMP,
            },
            key=("number", "No."),
            methods=_RW,
            number_prefix="J",
        ),
        EntitySet(
            "currencies",
            "currency",
            "Currency",
            {
                "id": _ID,
                "code": Field("code", 10),
                "displayName": Field("text", 30),
                "symbol": Field("text", 10),
                "amountDecimalPlaces": Field("text", 5),
                "amountRoundingPrecision": Field("decimal"),
                "lastModifiedDateTime": _STAMP,
            },
            key=("code", "Code"),
        ),
        EntitySet(
            "paymentTerms",
            "paymentTerm",
            "Payment Terms",
            {
                "id": _ID,
                "code": Field("code", 10),
                "displayName": Field("text", 100),
                "dueDateCalculation": Field("text", 32),
                "discountDateCalculation": Field("text", 32),
                "discountPercent": Field("decimal"),
                "calculateDiscountOnCreditMemos": Field("bool"),
                "lastModifiedDateTime": _STAMP,
            },
            key=("code", "Code"),
        ),
        EntitySet(
            "dimensions",
            "dimension",
            "Dimension",
            {
                "id": _ID,
                "code": Field("code", 20),
                "displayName": Field("text", 30),
                "lastModifiedDateTime": _STAMP,
            },
            key=("code", "Code"),
            children=("dimensionValues",),
        ),
        EntitySet(
            "dimensionValues",
            "dimensionValue",
            "Dimension Value",
            {
                "id": _ID,
                "code": Field("code", 20),
                "dimensionId": Field("guid", read_only=True),
                "displayName": Field("text", 50),
                "consolidationCode": Field("code", 20),
                "lastModifiedDateTime": _STAMP,
            },
            parent="dimensions",
        ),
        EntitySet(
            "accountingPeriods",
            "accountingPeriod",
            "Accounting Period",
            {
                "id": _ID,
                "startingDate": Field("date"),
                "name": Field("text", 10),
                "newFiscalYear": Field("bool"),
                "closed": Field("bool", read_only=True),
                "dateLocked": Field("bool", read_only=True),
                "lastModifiedDateTime": _STAMP,
            },
        ),
        EntitySet(
            "accounts",
            "account",
            "G/L Account",
            {
                "id": _ID,
                "number": Field("code", 20),
                "displayName": Field("text", 100),
                "category": Field(
                    "enum",
                    options=(" ", "Assets", "Liabilities", "Equity", "Income", "CostOfGoodsSold", "Expense"),
                ),
                "subCategory": Field("text", 80),
                "blocked": Field("bool"),
                "accountType": Field(
                    "enum", options=("Posting", "Heading", "Total", "Begin-Total", "End-Total")
                ),
                "directPosting": Field("bool"),
                "netChange": Field("decimal", read_only=True),
                "lastModifiedDateTime": _STAMP,
            },
            key=("number", "No."),
        ),
        EntitySet(
            "journals",
            "journal",
            "Gen. Journal Batch",
            {
                "id": _ID,
                "code": Field("code", 10),
                "displayName": Field("text", 100),
                "templateDisplayName": Field("text", 10, read_only=True),
                "lastModifiedDateTime": _STAMP,
                "balancingAccountId": Field("guid"),
                "balancingAccountNumber": Field("code", 20, read_only=True),
            },
            key=("code", "Name"),
            methods=_RW,
            children=("journalLines",),
        ),
        EntitySet(
            "journalLines",
            "journalLine",
            "Gen. Journal Line",
            {
                "id": _ID,
                "journalId": Field("guid", read_only=True),
                "journalDisplayName": Field("code", 10, read_only=True),
                "lineNumber": Field("int"),
                "accountType": Field("enum", options=_ACCOUNT_TYPES),
                "accountId": Field("guid"),
                "accountNumber": Field("code", 20),
                "postingDate": Field("date"),
                "documentNumber": Field("code", 20),
                "externalDocumentNumber": Field("code", 35),
                "amount": Field("decimal"),
                "description": Field("text", 100),
                "comment": Field("text", 250),
                "taxCode": Field("code", 20),
                "balanceAccountType": Field("enum", options=_ACCOUNT_TYPES),
                "balancingAccountId": Field("guid"),
                "balancingAccountNumber": Field("code", 20),
                "lastModifiedDateTime": _STAMP,
            },
            methods=_RW,
            parent="journals",
        ),
        EntitySet(
            "salesInvoices",
            "salesInvoice",
            "Sales Header",
            {
                "id": _ID,
                "number": Field("code", 20, read_only=True),
                "externalDocumentNumber": Field("code", 35),
                "invoiceDate": Field("date"),
                "postingDate": Field("date"),
                "dueDate": Field("date"),
                "customerId": Field("guid"),
                "customerNumber": Field("code", 20),
                "customerName": Field("text", 100, read_only=True),
                "currencyCode": Field("code", 10),
                "paymentTermsId": Field("guid"),
                "totalAmountExcludingTax": Field("decimal", read_only=True),
                "totalAmountIncludingTax": Field("decimal", read_only=True),
                "status": Field(
                    "enum",
                    options=("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective"),
                    read_only=True,
                ),
                "lastModifiedDateTime": _STAMP,
            },
            methods=_RW,
            number_prefix="S-INV",
        ),
    ]
}

#: Sub-entities a journal line accepts inline on create (deep insert), and returns with ``$expand``.
DIMENSION_SET_LINE = {"code": Field("code", 20), "valueCode": Field("code", 20)}


__all__ = ["COMPANIES", "DIMENSION_SET_LINE", "SETS", "EntitySet", "Field", "FieldType"]
