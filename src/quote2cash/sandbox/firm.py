"""A realistic professional-services firm, generated from a seed.

"Northwind Consulting" has five legal entities (one of them dormant), clients
across regions and currencies — some already in the ERP, some with
near-duplicate names — deals with staffing lines, consultants, rate cards and
project templates, plus a few deliberately bad records that the hub must turn
into exception cases rather than bad data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

ROLES = [
    "Partner",
    "Engagement Manager",
    "Senior Consultant",
    "Consultant",
    "Analyst",
    "Architect",
    "Developer",
]
PRACTICES = ["Strategy", "Technology", "Operations", "Data & AI", "Finance Transformation"]
BILLING = ["Time & Materials", "Fixed Fee", "Milestone", "Retainer", "Subscription"]
BASE_RATE = {
    "Partner": 450,
    "Engagement Manager": 320,
    "Senior Consultant": 240,
    "Consultant": 180,
    "Analyst": 120,
    "Architect": 280,
    "Developer": 160,
}
FX = {
    "USD": Decimal("1"),
    "GBP": Decimal("0.8"),
    "EUR": Decimal("0.92"),
    "SGD": Decimal("1.35"),
    "CAD": Decimal("1.36"),
    "CHF": Decimal("0.88"),
}


@dataclass(frozen=True)
class Entity:
    """A legal entity of the firm."""

    code: str
    name: str
    country: str
    currency: str
    region: str
    allowed: tuple[str, ...]
    tax_regions: tuple[str, ...]
    inactive: bool = False


ENTITIES = [
    Entity(
        "US01",
        "Northwind Consulting Inc",
        "US",
        "USD",
        "North America",
        ("USD",),
        ("US-CA", "US-NY", "US-TX"),
    ),
    Entity("UK01", "Northwind Consulting Ltd", "GB", "GBP", "UK & Ireland", ("GBP", "EUR"), ("GB", "IE")),
    Entity("DE01", "Northwind Beratung GmbH", "DE", "EUR", "DACH", ("EUR", "CHF"), ("DE", "AT", "CH")),
    Entity("SG01", "Northwind Asia Pte Ltd", "SG", "SGD", "APAC", ("SGD", "USD"), ("SG", "MY")),
    Entity(
        "CA01", "Northwind Canada ULC", "CA", "CAD", "Canada", ("CAD",), ("CA-ON", "CA-QC"), inactive=True
    ),
]
TERMS = ["Net 15", "Net 30", "Net 45", "Net 60"]
TEMPLATES = {
    "T&M Delivery": ["Discovery", "Delivery", "Handover"],
    "Fixed-Fee Delivery": ["Mobilise", "Design", "Build", "Close"],
    "Milestone Delivery": ["Phase 1", "Phase 2", "Phase 3"],
    "Retainer Service": ["Monthly Service"],
    "Managed Service": ["Onboarding", "Run"],
}

_ADJ = [
    "Blue",
    "Northern",
    "Silver",
    "Granite",
    "Harbor",
    "Summit",
    "Atlas",
    "Crescent",
    "Pioneer",
    "Evergreen",
    "Vertex",
    "Lumen",
    "Cobalt",
    "Sterling",
    "Redwood",
    "Beacon",
    "Orion",
    "Meridian",
    "Falcon",
    "Keystone",
]
_NOUN = [
    "Logistics",
    "Health",
    "Capital",
    "Foods",
    "Energy",
    "Retail",
    "Robotics",
    "Insurance",
    "Media",
    "Pharma",
    "Telecom",
    "Analytics",
    "Mobility",
    "Materials",
    "Biotech",
]
_SUFFIX = {"US": "Inc", "GB": "Ltd", "DE": "GmbH", "SG": "Pte Ltd", "CA": "Corp"}
_FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Isla",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rafael",
    "Sara",
    "Tomas",
]
_LAST = [
    "Adams",
    "Berg",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Khan",
    "Larsen",
    "Moreau",
    "Nguyen",
    "Okafor",
    "Patel",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Weber",
]


def rate_cards() -> dict[str, dict[str, Decimal]]:
    """The firm's standard rate card per currency: role -> hourly bill rate."""
    return {cur: {r: (Decimal(BASE_RATE[r]) * FX[cur]).quantize(Decimal("1")) for r in ROLES} for cur in FX}


@dataclass
class Firm:
    """Everything generated for one seed."""

    seed: int
    accounts: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by opportunity key
    erp_customers: list[dict[str, Any]] = field(default_factory=list)
    consultants: list[dict[str, Any]] = field(default_factory=list)
    rate_cards: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> role -> rate
    bad: dict[str, str] = field(default_factory=dict)  # account/opportunity key -> what is wrong


def _company(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        if name not in used:
            used.add(name)
            return name


def generate(seed: int = 7, deals: int = 200, clients: int | None = None, today: date | None = None) -> Firm:
    """Generate the firm; ``deals`` opportunities over ``clients`` accounts (default deals // 4, ≥ 50)."""
    rng = random.Random(seed)
    today = today or date(2026, 11, 2)
    firm = Firm(seed=seed)
    n_clients = clients or max(50, deals // 4)
    used: set[str] = set()
    active = [e for e in ENTITIES if not e.inactive]
    firm.rate_cards = rate_cards()

    for i in range(n_clients):
        entity = active[i % len(active)]
        base = _company(rng, used)
        name = f"{base} {_SUFFIX[entity.country]}"
        domain = (
            base.lower().replace(" ", "")
            + {"US": ".com", "GB": ".co.uk", "DE": ".de", "SG": ".sg"}[entity.country]
        )
        key = f"A{i:04d}"
        account = {
            "key": key,
            "Name": name,
            "Website": f"https://www.{domain}",
            "BillingCountry": entity.country,
            "Region__c": entity.region,
            "CurrencyIsoCode": entity.currency if rng.random() < 0.85 else rng.choice(entity.allowed),
            "Payment_Terms__c": rng.choice(TERMS[:3]),
            "Tax_Region__c": rng.choice(entity.tax_regions),
            "Tax_Id__c": f"{entity.country}{rng.randrange(10**8, 10**9)}",
            "Industry": rng.choice(
                ["Manufacturing", "Healthcare", "Financial Services", "Retail", "Technology"]
            ),
        }
        firm.accounts.append(account)
        roll = rng.random()
        if roll < 0.12:
            # Already an ERP customer (same domain, name written differently): the hub must match it.
            firm.erp_customers.append(
                {
                    "companyName": name.upper().replace(" INC", ", Inc.").replace(" LTD", " Limited"),
                    "url": f"http://{domain}",
                    "subsidiary": entity.code,
                    "currency": account["CurrencyIsoCode"],
                }
            )
        elif roll < 0.18:
            # A near-duplicate already in the ERP under another domain: a person must decide.
            firm.erp_customers.append(
                {
                    "companyName": f"{base} {_SUFFIX[entity.country]}.",
                    "url": f"http://{base.lower().replace(' ', '-')}-group.com",
                    "subsidiary": entity.code,
                    "currency": entity.currency,
                }
            )
            firm.bad[key] = "customer.probable_duplicate"

    # Deliberately bad accounts.
    def bad_account(region: str, country: str, currency: str, problem: str, terms: str = "Net 30") -> None:
        base = _company(rng, used)
        key = f"A{len(firm.accounts):04d}"
        firm.accounts.append(
            {
                "key": key,
                "Name": f"{base} Holdings",
                "Website": f"https://{base.lower().replace(' ', '')}.example",
                "BillingCountry": country,
                "Region__c": region,
                "CurrencyIsoCode": currency,
                "Payment_Terms__c": terms,
                "Tax_Region__c": None,
                "Tax_Id__c": None,
                "Industry": "Technology",
            }
        )
        firm.bad[key] = problem

    # One client group with an account per entity (same web domain): one ERP customer per entity.
    group = _company(rng, used)
    for entity in active[:2]:
        firm.accounts.append(
            {
                "key": f"A{len(firm.accounts):04d}",
                "Name": f"{group} {_SUFFIX[entity.country]}",
                "Website": f"https://www.{group.lower().replace(' ', '')}.com",
                "BillingCountry": entity.country,
                "Region__c": entity.region,
                "CurrencyIsoCode": entity.currency,
                "Payment_Terms__c": TERMS[1],
                "Tax_Region__c": entity.tax_regions[0],
                "Tax_Id__c": None,
                "Industry": "Retail",
            }
        )

    bad_account("Canada", "CA", "CAD", "customer.subsidiary_inactive")
    bad_account("North America", "US", "JPY", "customer.currency_not_allowed")
    bad_account("LATAM", "BR", "BRL", "mapping.unmapped_value")
    bad_account("UK & Ireland", "GB", "GBP", "customer.payment_terms_invalid", terms="Net 120")

    for c in range(max(12, deals // 10)):
        entity = active[c % len(active)]
        role = ROLES[c % len(ROLES)]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        firm.consultants.append(
            {
                "full_name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{c}@northwind.example",
                "headline": role,
                "legal_entity": entity.code,
            }
        )

    for d in range(deals):
        account = (
            firm.accounts[d % len(firm.accounts)] if d < len(firm.accounts) else rng.choice(firm.accounts)
        )
        model = rng.choices(BILLING, weights=[45, 25, 15, 10, 5])[0]
        practice = rng.choice(PRACTICES)
        start = today + timedelta(days=rng.randrange(7, 60))
        months = rng.choice([2, 3, 4, 6, 9, 12])
        currency = account["CurrencyIsoCode"]
        key = f"O{d:04d}"
        terms: dict[str, Any] = {}
        if d == 7:
            # Contracted by another entity than the account's own: the deal's terms win.
            other = next(e for e in active if e.region != account["Region__c"])
            currency = other.currency
            terms["Legal_Entity__c"] = other.code
        lines: list[dict[str, Any]] = []
        for n in range(rng.randrange(1, 4)):
            role = rng.choice(ROLES)
            hours = Decimal(rng.choice([40, 80, 120, 160, 240, 320]))
            rate = firm.rate_cards.get(currency, firm.rate_cards["USD"])[role]
            lines.append(
                {
                    "key": f"{key}-L{n}",
                    "Role__c": role,
                    "Quantity": hours,
                    "UnitPrice": rate,
                    "ServiceDate": (start + timedelta(days=14 * n)).isoformat(),
                    "Description": f"{role}, {hours} h",
                }
            )
        if d == 5:
            lines.append(
                {
                    "key": f"{key}-LX",
                    "Role__c": "Quantum Whisperer",
                    "Quantity": Decimal(40),
                    "UnitPrice": Decimal(500),
                    "ServiceDate": start.isoformat(),
                    "Description": "?",
                }
            )
            firm.bad[key] = "psa.role_unknown"
        if d == 9:
            currency = "JPY"  # a currency the account's legal entity does not invoice in
            firm.bad[key] = "deal.currency_not_allowed"
        amount = sum((line["Quantity"] * line["UnitPrice"] for line in lines), Decimal(0))
        firm.lines[key] = lines
        firm.opportunities.append(
            {
                "key": key,
                "account": account["key"],
                "Name": f"{account['Name'].split(' ')[0]} {account['Name'].split(' ')[1]} — {practice} {d + 1}",
                "StageName": rng.choice(
                    ["Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"]
                ),
                "CloseDate": (today + timedelta(days=rng.randrange(1, 30))).isoformat(),
                "Amount": amount,
                "CurrencyIsoCode": currency,
                "Billing_Model__c": model,
                "Practice__c": practice,
                "Start_Date__c": start.isoformat(),
                "End_Date__c": (start + timedelta(days=30 * months)).isoformat(),
                "Terms_Approved__c": False,
                **terms,
            }
        )
    return firm
