"""Salesforce as the hub's CRM (:class:`quote2cash.ports.Crm`).

Deals are read two queries a batch of up to 200 (the opportunities with their
accounts through the ``Account.`` lookup, then their lines); a deal's write-back
is one call (account and opportunity in one sObject Collections call).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import httpx

from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.salesforce.client import SalesforceClient
from quote2cash.connectors.salesforce.errors import from_vendor
from quote2cash.connectors.salesforce.settings import SalesforceSettings
from quote2cash.errors import VendorPayloadError
from quote2cash.mappings import Mapping
from quote2cash.model import BusinessEvent, Customer, Money, Opportunity, OpportunityLine
from quote2cash.ports import BillingStatus, Capabilities, Deal, DealStatus, EventPage, SourceEvent

MAPPING = Path(__file__).with_name("mapping.yaml")
EPOCH = "1970-01-01T00:00:00.000Z"
CLOSED_WON = "opportunity.closed_won"
ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "Website",
    "Tax_Id__c",
    "BillingCountry",
    "Region__c",
    "CurrencyIsoCode",
    "Payment_Terms__c",
    "Tax_Region__c",
    "Industry",
    "SystemModstamp",
    "ERP_Customer_Id__c",
)
OPPORTUNITY_FIELDS = (
    "Id",
    "AccountId",
    "Name",
    "StageName",
    "IsWon",
    "IsClosed",
    "CloseDate",
    "Amount",
    "CurrencyIsoCode",
    "Legal_Entity__c",
    "Billing_Model__c",
    "Terms_Approved__c",
    "Practice__c",
    "Start_Date__c",
    "End_Date__c",
    "Rate_Card__c",
    "SystemModstamp",
)


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce's ``2025-01-01T00:00:00.000+0000`` as an aware datetime."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError) as exc:
        raise VendorPayloadError(
            f"salesforce sent SystemModstamp {value!r}, which is not a Salesforce datetime",
            system="salesforce",
        ) from exc


def soql_literal(value: datetime) -> str:
    """A SOQL datetime literal with milliseconds, UTC."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def soql_id(value: str) -> str:
    """A record id as a SOQL literal; anything but an id is refused (no injection)."""
    if not value.isalnum() or len(value) not in (15, 18):
        raise VendorPayloadError(
            f"'{value}' is not a Salesforce record id", system="salesforce", record=value
        )
    return f"'{value}'"


def closed_won_event(record: dict[str, Any]) -> SourceEvent:
    """The source event of a closed-won opportunity record."""
    for key in ("Id", "SystemModstamp"):
        if not record.get(key):
            raise VendorPayloadError(f"salesforce opportunity record is missing '{key}'", system="salesforce")
    opp_id = str(record["Id"])
    event = BusinessEvent(
        type=CLOSED_WON,
        source="salesforce",
        subject=f"Opportunity/{opp_id}",
        time=parse_sf_datetime(str(record["SystemModstamp"])),
        payload={k: v for k, v in record.items() if k != "attributes"},
    )
    # One closed-won per deal: a later edit of a won deal is not a second win.
    return SourceEvent(f"Opportunity/{opp_id}:closed_won", event)


def _decimal(value: Any, field: str, record: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        return Decimal(str(value))
    except InvalidOperation:
        raise VendorPayloadError(
            f"the CRM deal {record} holds {value!r} in {field}, which is not a number; correct it in the CRM",
            code="deal.malformed",
            system="salesforce",
            record=record,
            details={"field": field},
        ) from None


class SalesforceCrm(ClientBacked[SalesforceClient]):
    """The CRM port over one Salesforce org."""

    capabilities = Capabilities(bulk_size=200, upsert_by_external_id=True)

    def __init__(self, name: str, client: SalesforceClient, mapping: Mapping) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping

    # -- the port -----------------------------------------------------------------------
    def won_deals(self, cursor: str | None) -> EventPage:
        """Opportunities closed-won with approved terms changed since the cursor."""
        since = cursor or EPOCH
        soql = (
            "SELECT Id, AccountId, Name, StageName, IsWon, CloseDate, Terms_Approved__c, SystemModstamp FROM Opportunity "
            f"WHERE IsWon = true AND Terms_Approved__c = true AND SystemModstamp > {since} "
            "ORDER BY SystemModstamp ASC"
        )
        events = [closed_won_event(r) for r in self.client.query(soql)]
        last = soql_literal(events[-1].event.time) if events else cursor
        return EventPage(events, last)

    def get_deal(self, opportunity_id: str) -> Deal:
        """One deal (:meth:`get_deals` of one id); its read error is raised."""
        found = self.get_deals([opportunity_id])[opportunity_id]
        if isinstance(found, Exception):
            raise found
        return found

    def get_deals(self, opportunity_ids: Sequence[str]) -> dict[str, Deal | Exception]:
        """The opportunities with their accounts (one query through the lookup) and their
        lines (one query), :attr:`capabilities` ``bulk_size`` deals a pair of queries.
        A deal that cannot be read maps to its error; the others are unaffected."""
        out: dict[str, Deal | Exception] = {}
        literals: dict[str, str] = {}
        for opp_id in dict.fromkeys(opportunity_ids):
            try:
                literals[opp_id] = soql_id(opp_id)
            except VendorPayloadError as exc:
                out[opp_id] = exc
        valid = list(literals)
        fields = ", ".join([*OPPORTUNITY_FIELDS, *(f"Account.{f}" for f in ACCOUNT_FIELDS)])
        size = self.capabilities.bulk_size
        for start in range(0, len(valid), size):
            chunk = valid[start : start + size]
            ids = ", ".join(literals[i] for i in chunk)
            # An id is 15 characters (case-sensitive) or 18 (the same with a checksum).
            opps = {
                str(r["Id"])[:15]: r
                for r in self.client.query(f"SELECT {fields} FROM Opportunity WHERE Id IN ({ids})")
            }
            lines: dict[str, list[dict[str, Any]]] = {key: [] for key in opps}
            if opps:
                for line in self.client.query(
                    "SELECT Id, OpportunityId, Description, Quantity, UnitPrice, ServiceDate, Role__c "
                    f"FROM OpportunityLineItem WHERE OpportunityId IN ({ids})"
                ):
                    lines.setdefault(str(line.get("OpportunityId"))[:15], []).append(line)
            for opp_id in chunk:
                opp = opps.get(opp_id[:15])
                try:
                    if opp is None:
                        raise VendorPayloadError(
                            f"the CRM has no opportunity {opp_id}", system="salesforce", record=opp_id
                        )
                    out[opp_id] = self._deal(opp_id, opp, lines[opp_id[:15]])
                except Exception as exc:  # this deal's data; the others are read
                    out[opp_id] = exc
        return out

    def _deal(self, opportunity_id: str, opp: dict[str, Any], lines: list[dict[str, Any]]) -> Deal:
        """One opportunity record (its account nested) and its line records, in the canonical model."""
        account = opp.get("Account")
        if not isinstance(account, dict):
            raise VendorPayloadError(
                f"opportunity {opportunity_id} has no account", system="salesforce", record=opportunity_id
            )
        customer = cast(Customer, self.mapping.to_model("customer_from_salesforce", account))
        opportunity = cast(Opportunity, self.mapping.to_model("opportunity_from_salesforce", opp))
        currency = str(opp.get("CurrencyIsoCode") or account.get("CurrencyIsoCode") or "")
        amount = _decimal(opp.get("Amount"), "Amount", opportunity_id)
        deal_lines = []
        for line in lines:
            record = f"{opportunity_id}/line {line.get('Id')}"
            hours = _decimal(line.get("Quantity"), "Quantity", record) or Decimal(0)
            if hours < 0:
                raise VendorPayloadError(
                    f"the CRM deal {opportunity_id} has a line with negative hours ({hours}); correct it",
                    code="deal.malformed",
                    system="salesforce",
                    record=record,
                )
            price = _decimal(line.get("UnitPrice"), "UnitPrice", record) or Decimal(0)
            deal_lines.append(
                OpportunityLine(
                    source_id=str(line["Id"]),
                    role=str(line.get("Role__c") or "Consultant"),
                    hours=hours,
                    rate=Money.of(price, currency or "USD"),
                    start_date=str(line["ServiceDate"])[:10] if line.get("ServiceDate") else None,
                    description=line.get("Description"),
                )
            )
        update: dict[str, Any] = {"lines": deal_lines}
        if amount is not None and currency:
            update["amount"] = Money.of(amount, currency)
        opportunity = opportunity.model_copy(update=update)
        erp_id = account.get("ERP_Customer_Id__c")
        return Deal(opportunity, customer, str(erp_id) if erp_id else None)

    def write_back_customer(self, customer_id: str, erp_customer_id: str) -> None:
        """Record the ERP customer id on the account (an idempotent PATCH)."""
        fields = self.mapping.apply(
            "account_status_to_salesforce", {"account_erp_customer_id": erp_customer_id}
        )
        self.client.update("Account", customer_id, fields)

    def write_back_deal(self, opportunity_id: str, status: DealStatus) -> None:
        """Ids and status on the opportunity, and the ERP customer id on its account, in one call.

        The fields come from the mapping (``deal_status_to_salesforce``); a ``withheld``
        field (the CRM owns it) is not written at all.
        """
        values: dict[str, Any] = {
            "status": status.status,
            "message": status.message,
            "erp_customer_id": status.erp_customer_id,
            "erp_project_id": status.erp_project_id,
            "psa_project_id": status.psa_project_id,
            "account_erp_customer_id": status.erp_customer_id,
        }
        wanted = [k for k in values if k not in status.withheld]
        fields = self.mapping.apply("deal_status_to_salesforce", values, only=wanted)
        records = [{"attributes": {"type": "Opportunity"}, "Id": opportunity_id, **fields}]
        if status.customer_id and status.erp_customer_id and "account_erp_customer_id" in wanted:
            account = self.mapping.apply("account_status_to_salesforce", values)
            records.append({"attributes": {"type": "Account"}, "Id": status.customer_id, **account})
        for result in self.client.update_many("Opportunity", records):
            if not result.success:
                first = (result.errors or [{}])[0]
                raise from_vendor(
                    400,
                    str(first.get("statusCode") or "UNKNOWN"),
                    str(first.get("message") or "the CRM refused the write-back"),
                    opportunity_id,
                    {"fields": first.get("fields")},
                )

    def write_back_billing(self, status: BillingStatus) -> None:
        """Billed to date, last invoice and payment status on the opportunity and its account, in one call."""
        common = {
            "Last_Invoice_Number__c": status.last_invoice,
            "Last_Invoice_Status__c": status.last_status,
            "Payment_Status__c": status.payment_status,
            "Days_Outstanding__c": status.days_outstanding,
        }
        records = [
            {
                "attributes": {"type": "Opportunity"},
                "Id": status.opportunity_id,
                "Billed_To_Date__c": float(status.billed.amount),
                **common,
            },
            {
                "attributes": {"type": "Account"},
                "Id": status.account_id,
                "Billed_To_Date__c": float(status.account_billed.amount),
                **common,
            },
        ]
        for result in self.client.update_many("Opportunity", records):
            if not result.success:
                first = (result.errors or [{}])[0]
                raise from_vendor(
                    400,
                    str(first.get("statusCode") or "UNKNOWN"),
                    str(first.get("message") or "the CRM refused the billing write-back"),
                    status.opportunity_id,
                    {"fields": first.get("fields")},
                )


def build(
    name: str, settings: SalesforceSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> SalesforceCrm:
    """The adapter of a configured Salesforce system."""
    client = SalesforceClient(
        settings.base_url,
        settings.client_id,
        settings.secret("client_secret"),
        api_version=settings.api_version,
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
    )
    return SalesforceCrm(name, client, Mapping.load(settings.mapping or MAPPING))
