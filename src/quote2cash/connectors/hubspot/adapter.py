"""HubSpot as the hub's CRM (:class:`quote2cash.ports.Crm`).

**Closed-won feed.** Deals in the watched pipeline's won stage with approved
terms are searched in ascending ``hs_lastmodifieddate`` order from the
cursor, paged with ``after``. A search query reaches only its first
``search_result_cap`` results (10 000 on HubSpot), so before a page would
pass the cap the feed starts a new *window* from the last stamp it read. The
cursor is that stamp plus the ids already read at exactly that millisecond
(``<ms>:<id>,<id>``), so a window restarted with ``GTE <ms>`` skips them: no
deal is skipped or read twice at a window edge, ties included. Should more
deals share one millisecond than a window holds, that millisecond is paged by
``hs_object_id`` instead, and the cursor then reads ``<ms>:*`` (everything
at that millisecond read).

**Deals** are read five calls for up to 100 of them: the deals, their company
and line-item associations (v4 batch reads), then the companies and lines
(batch reads).

**Write-back** sets the hub's properties on the deal and its company
(``q2c_*``, :data:`WRITE_BACK_PROPERTIES`); the adapter creates any that are
missing the first time it writes, once per object type.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import httpx

from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.hubspot.client import HubSpotClient
from quote2cash.connectors.hubspot.errors import SYSTEM
from quote2cash.connectors.hubspot.settings import HubSpotSettings
from quote2cash.errors import NotFoundError, UsageError, VendorPayloadError
from quote2cash.mappings import Mapping
from quote2cash.model import BusinessEvent, Customer, Money, Opportunity, OpportunityLine
from quote2cash.ports import Capabilities, Deal, DealStatus, EventPage, SourceEvent

MAPPING = Path(__file__).with_name("mapping.yaml")
CLOSED_WON = "opportunity.closed_won"
STAMP = "hs_lastmodifieddate"
FEED_PROPERTIES = ["dealname", "dealstage", "pipeline", "q2c_terms_approved", STAMP]
DEAL_PROPERTIES = [
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
    "deal_currency_code",
    "hs_is_closed_won",
    "hs_is_closed",
    "q2c_billing_model",
    "q2c_terms_approved",
    "q2c_practice",
    "q2c_start_date",
    "q2c_end_date",
    "q2c_rate_card",
    STAMP,
]
COMPANY_PROPERTIES = [
    "name",
    "domain",
    "website",
    "country",
    "industry",
    "q2c_region",
    "q2c_tax_id",
    "q2c_currency",
    "q2c_payment_terms",
    "q2c_tax_region",
    "q2c_erp_customer_id",
    STAMP,
]
LINE_PROPERTIES = ["name", "quantity", "price", "description", "q2c_role", "q2c_service_date"]
PRIMARY_COMPANY = 5


def _text(name: str, label: str, group: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "string", "fieldType": "text", "groupName": group}


#: The properties the hub writes, by object type; created when missing.
WRITE_BACK_PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "deals": [
        _text("q2c_erp_customer_id", "ERP customer id", "dealinformation"),
        _text("q2c_erp_project_id", "ERP project id", "dealinformation"),
        _text("q2c_psa_project_id", "PSA project id", "dealinformation"),
        _text("q2c_integration_status", "Integration status", "dealinformation"),
        {
            **_text("q2c_integration_message", "Integration message", "dealinformation"),
            "fieldType": "textarea",
        },
    ],
    "companies": [_text("q2c_erp_customer_id", "ERP customer id", "companyinformation")],
}

#: The properties the firm keeps its commercial terms in (set up once in the portal, e.g. from these).
FIRM_PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "deals": [
        {
            "name": "q2c_billing_model",
            "label": "Billing model",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "dealinformation",
            "options": [
                {"label": label, "value": value, "hidden": False}
                for label, value in (
                    ("Time & Materials", "time_and_materials"),
                    ("Fixed Fee", "fixed_fee"),
                    ("Milestone", "milestone"),
                    ("Retainer", "retainer"),
                    ("Subscription", "subscription"),
                )
            ],
        },
        {
            "name": "q2c_terms_approved",
            "label": "Commercial terms approved",
            "type": "bool",
            "fieldType": "booleancheckbox",
            "groupName": "dealinformation",
        },
        _text("q2c_practice", "Practice", "dealinformation"),
        {**_text("q2c_start_date", "Start date", "dealinformation"), "type": "date", "fieldType": "date"},
        {**_text("q2c_end_date", "End date", "dealinformation"), "type": "date", "fieldType": "date"},
        _text("q2c_rate_card", "Rate card", "dealinformation"),
    ],
    "companies": [
        _text(name, label, "companyinformation")
        for name, label in (
            ("q2c_region", "Sales region"),
            ("q2c_tax_id", "Tax id"),
            ("q2c_currency", "Currency"),
            ("q2c_payment_terms", "Payment terms"),
            ("q2c_tax_region", "Tax region"),
        )
    ],
    "line_items": [
        _text("q2c_role", "Role", "lineiteminformation"),
        {
            **_text("q2c_service_date", "Service date", "lineiteminformation"),
            "type": "date",
            "fieldType": "date",
        },
    ],
}


def parse_stamp(value: Any, record: str) -> int:
    """A HubSpot datetime (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    text = str(value or "")
    try:
        if text.isdigit():
            return int(text)
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise VendorPayloadError(
            f"hubspot sent {STAMP} {value!r}, which is not a HubSpot datetime", system=SYSTEM, record=record
        ) from None


def encode_cursor(stamp: int, seen: set[str], exclusive: bool) -> str:
    """``<ms>:<ids read at ms>``, or ``<ms>:*`` once every deal at that millisecond was read."""
    return f"{stamp}:*" if exclusive else f"{stamp}:{','.join(sorted(seen, key=int))}"


def decode_cursor(cursor: str | None) -> tuple[int | None, set[str], bool]:
    """(stamp, ids read at the stamp, whether all of the stamp was read) of a cursor."""
    if not cursor:
        return None, set(), False
    stamp, _, ids = cursor.partition(":")
    if not stamp.isdigit():
        raise UsageError(f"'{cursor}' is not a HubSpot closed-won cursor (<ms>:<ids>)")
    return int(stamp), {i for i in ids.split(",") if i and i != "*"}, ids == "*"


def closed_won_event(id_: str, props: dict[str, str | None], stamp: int) -> SourceEvent:
    """The source event of a closed-won deal."""
    event = BusinessEvent(
        type=CLOSED_WON,
        source=SYSTEM,
        subject=f"Deal/{id_}",
        time=datetime.fromtimestamp(stamp / 1000, UTC),
        payload={"id": id_, **props},
    )
    # One closed-won per deal: a later edit of a won deal is not a second win.
    return SourceEvent(f"Deal/{id_}:closed_won", event)


def _decimal(value: Any, field: str, record: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise VendorPayloadError(
            f"the CRM deal {record} holds {value!r} in {field}, which is not a number; correct it in the CRM",
            code="deal.malformed",
            system=SYSTEM,
            record=record,
            details={"field": field},
        ) from None


class HubSpotCrm(ClientBacked[HubSpotClient]):
    """The CRM port over one HubSpot portal."""

    capabilities = Capabilities(bulk_size=100, upsert_by_external_id=True)

    def __init__(self, name: str, client: HubSpotClient, mapping: Mapping, settings: HubSpotSettings) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self._ensured: set[str] = set()
        self._ensure_lock = threading.Lock()

    # -- the closed-won feed ----------------------------------------------------------
    def won_deals(self, cursor: str | None) -> EventPage:
        """Deals closed-won with approved terms changed since the cursor, oldest first."""
        stamp, seen, exclusive = decode_cursor(cursor)
        events: list[SourceEvent] = []
        while len(events) < self.settings.max_events_per_poll:
            before = len(events)
            stamp, seen, exclusive, exhausted = self._window(stamp, seen, exclusive, events)
            if exhausted:
                break
            if len(events) == before and stamp is not None:
                # A whole window of deals shares one millisecond: read that millisecond by id.
                self._same_stamp(stamp, seen, events)
                seen, exclusive = set(), True
        if stamp is None:
            return EventPage(events, cursor)
        return EventPage(events, encode_cursor(stamp, seen, exclusive))

    def _filters(self) -> list[dict[str, Any]]:
        return [
            {"property_name": "pipeline", "operator": "EQ", "value": self.settings.pipeline},
            {"property_name": "dealstage", "operator": "EQ", "value": self.settings.won_stage},
            {"property_name": "q2c_terms_approved", "operator": "EQ", "value": "true"},
        ]

    def _window(
        self, stamp: int | None, seen: set[str], exclusive: bool, events: list[SourceEvent]
    ) -> tuple[int | None, set[str], bool, bool]:
        """Read one window from the stamp; returns the new (stamp, seen, exclusive) and whether the feed is done."""
        filters = self._filters()
        if stamp is not None:
            filters.append(
                {"property_name": STAMP, "operator": "GT" if exclusive else "GTE", "value": str(stamp)}
            )
        size, cap = self.settings.search_page_size, self.settings.search_result_cap
        after: int | None = None
        while True:
            records, nxt = self.client.search(
                "deals", filters, sort=STAMP, properties=FEED_PROPERTIES, limit=min(size, cap), after=after
            )
            for id_, props in records:
                at = parse_stamp(props.get(STAMP), f"deals/{id_}")
                if stamp is not None and (at < stamp or (at == stamp and (exclusive or id_ in seen))):
                    continue
                if stamp is None or at > stamp:
                    stamp, seen, exclusive = at, set(), False
                seen.add(id_)
                events.append(closed_won_event(id_, props, at))
                if len(events) >= self.settings.max_events_per_poll:
                    return stamp, seen, exclusive, False
            if nxt is None:
                return stamp, seen, exclusive, True
            if nxt >= cap:
                return stamp, seen, exclusive, False  # a new window, from the last stamp read
            after = nxt

    def _same_stamp(self, stamp: int, seen: set[str], events: list[SourceEvent]) -> None:
        """Read every deal at exactly ``stamp`` in id order, restarting windows after the last id."""
        base = [*self._filters(), {"property_name": STAMP, "operator": "EQ", "value": str(stamp)}]
        size, cap = self.settings.search_page_size, self.settings.search_result_cap
        last: str | None = None
        while True:
            filters = base + (
                [{"property_name": "hs_object_id", "operator": "GT", "value": last}] if last else []
            )
            after: int | None = None
            while True:
                records, nxt = self.client.search(
                    "deals",
                    filters,
                    sort="hs_object_id",
                    properties=FEED_PROPERTIES,
                    limit=min(size, cap),
                    after=after,
                )
                for id_, props in records:
                    last = id_
                    if id_ not in seen:
                        seen.add(id_)
                        events.append(closed_won_event(id_, props, stamp))
                if nxt is None:
                    return
                if nxt >= cap:
                    break
                after = nxt

    # -- one deal ------------------------------------------------------------------------
    def get_deal(self, opportunity_id: str) -> Deal:
        """One deal (:meth:`get_deals` of one id); its read error is raised."""
        found = self.get_deals([opportunity_id])[opportunity_id]
        if isinstance(found, Exception):
            raise found
        return found

    def get_deals(self, opportunity_ids: Sequence[str]) -> dict[str, Deal | Exception]:
        """The deals, their (primary) companies and their line items, mapped to the canonical
        model: five batch calls (deals, their companies and their lines by association, then
        the companies and the lines) for up to 100 deals. A deal that cannot be read maps
        to its error; the others are unaffected."""
        ids = list(dict.fromkeys(opportunity_ids))
        deals = self.client.batch_read("deals", ids, DEAL_PROPERTIES)
        found = [i for i in ids if i in deals]
        companies = self.client.associated("deals", "companies", found) if found else {}
        line_links = self.client.associated("deals", "line_items", found) if found else {}
        primary = {
            deal_id: next((c for c, types in links if PRIMARY_COMPANY in types), links[0][0])
            for deal_id, links in companies.items()
            if links
        }
        records = self.client.batch_read("companies", sorted(set(primary.values())), COMPANY_PROPERTIES)
        line_ids = sorted({i for links in line_links.values() for i, _ in links}, key=int)
        lines = self.client.batch_read("line_items", line_ids, LINE_PROPERTIES) if line_ids else {}
        out: dict[str, Deal | Exception] = {}
        for deal_id in ids:
            try:
                if deal_id not in deals:
                    raise NotFoundError(f"the CRM has no deal {deal_id}", system=SYSTEM, record=deal_id)
                own = {i: lines[i] for i, _ in line_links.get(deal_id, []) if i in lines}
                out[deal_id] = self._deal(deal_id, deals[deal_id], primary.get(deal_id), records, own)
            except Exception as exc:  # this deal's data; the others are read
                out[deal_id] = exc
        return out

    def _deal(
        self,
        deal_id: str,
        deal: dict[str, str | None],
        company_id: str | None,
        companies: dict[str, dict[str, str | None]],
        lines: dict[str, dict[str, str | None]],
    ) -> Deal:
        """One deal record, its company and its line records, in the canonical model."""
        if company_id is None:
            raise VendorPayloadError(
                f"the CRM deal {deal_id} has no associated company; associate one in HubSpot",
                code="deal.malformed",
                system=SYSTEM,
                record=deal_id,
            )
        company = companies.get(company_id)
        if company is None:
            raise VendorPayloadError(
                f"the company {company_id} of deal {deal_id} cannot be read", system=SYSTEM, record=deal_id
            )
        customer = cast(
            Customer, self.mapping.to_model("customer_from_hubspot", {"id": company_id, **company})
        )
        opportunity = cast(
            Opportunity,
            self.mapping.to_model(
                "opportunity_from_hubspot", {"id": deal_id, **deal}, {"company_id": company_id}
            ),
        )
        currency = str(deal.get("deal_currency_code") or company.get("q2c_currency") or "")
        amount = _decimal(deal.get("amount"), "amount", deal_id)
        update: dict[str, Any] = {
            "lines": [self._line(deal_id, i, lines[i], currency) for i in sorted(lines, key=int)]
        }
        if amount is not None and currency:
            update["amount"] = Money.of(amount, currency)
        erp_id = company.get("q2c_erp_customer_id")
        return Deal(opportunity.model_copy(update=update), customer, str(erp_id) if erp_id else None)

    @staticmethod
    def _line(deal_id: str, line_id: str, line: dict[str, str | None], currency: str) -> OpportunityLine:
        record = f"{deal_id}/line {line_id}"
        hours = _decimal(line.get("quantity"), "quantity", record) or Decimal(0)
        if hours < 0:
            raise VendorPayloadError(
                f"the CRM deal {deal_id} has a line with negative hours ({hours}); correct it",
                code="deal.malformed",
                system=SYSTEM,
                record=record,
            )
        price = _decimal(line.get("price"), "price", record) or Decimal(0)
        start = line.get("q2c_service_date")
        return OpportunityLine(
            source_id=line_id,
            role=str(line.get("q2c_role") or "Consultant"),
            hours=hours,
            rate=Money.of(price, currency or "USD"),
            start_date=str(start)[:10] if start else None,
            description=line.get("description") or line.get("name"),
        )

    # -- write-back --------------------------------------------------------------------
    def ensure_properties(self, object_type: str) -> None:
        """Create the hub's write-back properties of an object type that the portal lacks (once)."""
        with self._ensure_lock:
            if object_type in self._ensured:
                return
            have = self.client.property_names(object_type)
            for definition in WRITE_BACK_PROPERTIES[object_type]:
                if definition["name"] not in have:
                    self.client.create_property(object_type, definition)
            self._ensured.add(object_type)

    def write_back_customer(self, customer_id: str, erp_customer_id: str) -> None:
        """Record the ERP customer id on the company."""
        self.ensure_properties("companies")
        self.client.update("companies", customer_id, {"q2c_erp_customer_id": erp_customer_id})

    def write_back_deal(self, opportunity_id: str, status: DealStatus) -> None:
        """Ids and status on the deal, and the ERP customer id on its company; a ``withheld``
        field (the CRM owns it) is not written."""
        self.ensure_properties("deals")
        props: dict[str, str] = {}
        for name, field, value in (
            ("q2c_integration_status", "status", status.status),
            # An empty value clears the property in HubSpot.
            ("q2c_integration_message", "message", status.message or ""),
            ("q2c_erp_customer_id", "erp_customer_id", status.erp_customer_id),
            ("q2c_erp_project_id", "erp_project_id", status.erp_project_id),
            ("q2c_psa_project_id", "psa_project_id", status.psa_project_id),
        ):
            if value is not None and field not in status.withheld:
                props[name] = value
        self.client.update("deals", opportunity_id, props)
        if status.customer_id and status.erp_customer_id and "account_erp_customer_id" not in status.withheld:
            self.write_back_customer(status.customer_id, status.erp_customer_id)


def build(
    name: str, settings: HubSpotSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> HubSpotCrm:
    """The adapter of a configured HubSpot system.

    The official SDK speaks urllib3, so an httpx ``transport`` cannot replace
    its network; run tests against the HubSpot sandbox on loopback instead.
    """
    if transport is not None:
        raise UsageError(
            f"system {name}: the HubSpot connector uses the official SDK, which cannot take an httpx "
            "transport; point base_url at a HubSpot sandbox instead"
        )
    client = HubSpotClient(
        settings.base_url,
        settings.secret("access_token"),
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
    )
    return HubSpotCrm(name, client, Mapping.load(settings.mapping or MAPPING), settings)
