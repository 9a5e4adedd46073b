"""Load a generated firm into the three sandboxes, and the hub config that points at them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from quote2cash.sandbox.firm import ENTITIES, PRACTICES, ROLES, TEMPLATES, TERMS, Firm, rate_cards
from quote2cash.sandbox.kantata import KantataSandbox
from quote2cash.sandbox.netsuite import NetSuiteSandbox
from quote2cash.sandbox.salesforce import SalesforceSandbox, certinia

#: An hour's cost as a share of its standard bill rate, in the generated firm.
COST_SHARE = Decimal("0.45")

#: Credentials of the sandboxes; not secrets, but passed like secrets (through the environment).
SANDBOX_ENV = {
    "Q2C_SANDBOX_SF_SECRET": "sandbox-secret",
    "Q2C_SANDBOX_KANTATA_TOKEN": "kantata-sandbox-token",
    "Q2C_SANDBOX_NS_CONSUMER_SECRET": "q2c-cs",
    "Q2C_SANDBOX_NS_TOKEN_SECRET": "q2c-ts",
    "Q2C_SANDBOX_HUBSPOT_TOKEN": "pat-na1-q2c-sandbox",
    "Q2C_SANDBOX_BC_SECRET": "q2c-bc-secret",
    "Q2C_SANDBOX_STRIPE_KEY": "sk_test_q2c_sandbox",
}

#: The audit key of a sandbox hub on PostgreSQL (no file sits beside its database); never a real key.
SANDBOX_AUDIT_KEY = "sandbox-audit-chain-key"


@dataclass
class Sandboxes:
    """The three running sandboxes."""

    salesforce: SalesforceSandbox
    kantata: KantataSandbox
    netsuite: NetSuiteSandbox

    @classmethod
    def open(cls, folder: Path, *, seed: int = 0) -> Sandboxes:
        """Open (or reopen) the sandboxes' files in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(
            SalesforceSandbox(folder / "salesforce.sqlite", seed=seed),
            KantataSandbox(folder / "kantata.sqlite", seed=seed),
            NetSuiteSandbox(folder / "netsuite.sqlite", seed=seed),
        )

    def start(self, ports: tuple[int, int, int] = (0, 0, 0)) -> Sandboxes:
        """Serve all three on loopback."""
        self.salesforce.start(ports[0])
        self.kantata.start(ports[1])
        self.netsuite.start(ports[2])
        return self

    def stop(self) -> None:
        """Stop serving and close the files."""
        for box in (self.salesforce, self.kantata, self.netsuite):
            box.stop()
            box.store.close()

    def config(self, database_url: str, **hub: Any) -> dict[str, Any]:
        """A hub configuration (as loaded from YAML) for these sandboxes."""
        return hub_config(self.salesforce.url, self.kantata.url, self.netsuite.url, database_url, **hub)


def hub_config(sf_url: str, kt_url: str, ns_url: str, database_url: str, **hub: Any) -> dict[str, Any]:
    """The configuration of a hub talking to sandboxes at these URLs.

    It says ``hub.sandbox: true``: only such a config (with every system on
    loopback) may take the sandbox credentials of :data:`SANDBOX_ENV` and a
    sandbox audit key. On SQLite the audit key is a file beside the database;
    elsewhere (PostgreSQL) the config's :data:`SANDBOX_AUDIT_KEY` stands in.
    """
    return {
        "hub": {"database_url": database_url, "sandbox": True, **hub},
        "audit": {"sandbox_key": SANDBOX_AUDIT_KEY},
        "systems": {
            "crm": {
                "kind": "salesforce",
                "base_url": sf_url,
                "client_id": "q2c",
                "client_secret_env": "Q2C_SANDBOX_SF_SECRET",
                "timeout_seconds": 5,
                "limits": {"concurrency": 8},
            },
            "psa": kantata_system(kt_url),
            "erp": {
                "kind": "netsuite",
                "base_url": ns_url,
                "account": "1234567_SB1",
                "consumer_key": "q2c-ck",
                "consumer_secret_env": "Q2C_SANDBOX_NS_CONSUMER_SECRET",
                "token_id": "q2c-tid",
                "token_secret_env": "Q2C_SANDBOX_NS_TOKEN_SECRET",
                "timeout_seconds": 5,
                "limits": {"concurrency": 10},
            },
        },
        # What an hour of each role costs the firm: non-billable time is posted at it.
        "cost_rates": {
            cur: {role: str((rate * COST_SHARE).quantize(Decimal("1"))) for role, rate in rates.items()}
            for cur, rates in rate_cards().items()
        },
        "rate_cards": {
            f"STD-{cur}": {"currency": cur, "rates": {role: str(rate) for role, rate in rates.items()}}
            for cur, rates in rate_cards().items()
        },
        # The firm's client groups hold one account per entity: each gets its own ERP customer.
        "customers": {"other_entity_match": "create"},
        "legal_entities": {
            e.code: {
                "name": e.name,
                "country": e.country,
                "base_currency": e.currency,
                "allowed_currencies": list(e.allowed),
                "tax_regions": list(e.tax_regions),
                "payment_terms": TERMS[:3],
                "erp_subsidiary": str(i + 1),
            }
            for i, e in enumerate(ENTITIES)
        },
    }


def kantata_system(url: str) -> dict[str, Any]:
    """The hub config of the Kantata sandbox at ``url`` as the PSA (``systems.psa``)."""
    return {
        "kind": "kantata",
        "base_url": url,
        "token_env": "Q2C_SANDBOX_KANTATA_TOKEN",
        "timeout_seconds": 5,
        "limits": {"concurrency": 8},
    }


def certinia_system(url: str, *, crm_org: bool) -> dict[str, Any]:
    """The hub config of Certinia in the Salesforce sandbox at ``url`` as the PSA (``systems.psa``);
    ``crm_org``: that org is the CRM's too, so projects link the account and opportunity."""
    return {
        "kind": "certinia",
        "base_url": url,
        "client_id": "q2c",
        "client_secret_env": "Q2C_SANDBOX_SF_SECRET",
        "link_crm_records": crm_org,
        "timeout_seconds": 5,
        "limits": {"concurrency": 8},
    }


def billing_system(url: str) -> dict[str, Any]:
    """The hub config of the Stripe sandbox at ``url`` as the billing system (``systems.billing``);
    its webhooks go to the HTTP API (``api.webhooks.stripe``)."""
    return {
        "kind": "stripe",
        "base_url": url,
        "api_key_env": "Q2C_SANDBOX_STRIPE_KEY",
        "timeout_seconds": 5,
        "days_until_due": 30,
        "limits": {"concurrency": 8},
    }


@dataclass
class Seeded:
    """Ids the seeding produced, by the firm's keys."""

    accounts: dict[str, str] = field(default_factory=dict)
    opportunities: dict[str, str] = field(default_factory=dict)


def seed(firm: Firm, boxes: Sandboxes, today: date = date(2026, 11, 2)) -> Seeded:
    """Load the firm: CRM accounts and open deals, ERP master data and existing customers, PSA catalogue."""
    seed_netsuite(firm, boxes.netsuite, today)
    seed_kantata(firm, boxes.kantata)
    return seed_salesforce(firm, boxes.salesforce)


def seed_netsuite(firm: Firm, ns: NetSuiteSandbox, today: date = date(2026, 11, 2)) -> None:
    """NetSuite: subsidiaries in the entities' order, currencies, terms, departments, periods, customers."""
    currencies = {"USD", "GBP", "EUR", "SGD", "CAD", "CHF"}
    cur_ids = {c: ns.add_currency(c) for c in sorted(currencies)}
    for i, e in enumerate(ENTITIES):
        sub = ns.add_subsidiary(e.name, currency=e.currency, country=e.country, inactive=e.inactive)
        assert str(sub) == str(i + 1), "subsidiary ids must follow the entity order"
    for t in TERMS:
        ns.add_term(t, int(t.split()[1]))
    for p in PRACTICES:
        ns.add_department(p)
    for region in ("Americas", "EMEA", "APAC"):
        ns.add_classification(region)
    for year, month in ((2026, m) for m in range(1, 13)):
        ns.add_period(year, month, closed=(year, month) < (today.year, today.month - 1))
    for k in (2027,):
        for month in range(1, 13):
            ns.add_period(k, month)
    entity_sub = {e.code: str(i + 1) for i, e in enumerate(ENTITIES)}
    for c in firm.erp_customers:
        ns.add_customer(
            {
                "companyName": c["companyName"],
                "url": c["url"],
                "subsidiary": {"id": entity_sub[c["subsidiary"]]},
                "currency": {"id": str(cur_ids[c["currency"]])},
            }
        )


def seed_kantata(firm: Firm, kt: KantataSandbox) -> None:
    """Kantata: roles, the firm's consultants and a project template per billing model."""
    for role in ROLES:
        kt.add_role(role)
    for person in firm.consultants:
        kt.add_user(person["full_name"], person["email"], person["headline"])
    for name, phases in TEMPLATES.items():
        stories: list[Mapping[str, Any]] = []
        for n, phase in enumerate(phases):
            stories.append(
                {"title": phase, "story_type": "deliverable", "offset_days": 30 * n, "duration_days": 30}
            )
            stories.append(
                {
                    "title": f"{phase} — work",
                    "story_type": "task",
                    "parent_title": phase,
                    "offset_days": 30 * n,
                    "duration_days": 25,
                }
            )
            if name.startswith(("Milestone", "Fixed")):
                stories.append(
                    {
                        "title": f"{phase} sign-off",
                        "story_type": "milestone",
                        "parent_title": phase,
                        "offset_days": 30 * n + 29,
                        "duration_days": 0,
                    }
                )
        kt.add_template(name, stories=stories)


def seed_certinia(firm: Firm, sf: SalesforceSandbox) -> dict[str, dict[str, str]]:
    """Certinia in a Salesforce org: the entities' regions, the practices, a project template per
    billing type and the firm's consultants as resources; returns their ids by name."""
    return certinia.seed_catalogue(
        sf,
        regions=[e.region for e in ENTITIES],
        practices=PRACTICES,
        templates=TEMPLATES,
        consultants=firm.consultants,
    )


def seed_salesforce(firm: Firm, sf: SalesforceSandbox) -> Seeded:
    """Salesforce: the firm's accounts, open opportunities and their lines; returns their ids."""
    out = Seeded()
    account_ids = sf.insert_many(
        "Account", [{k: v for k, v in a.items() if k != "key"} for a in firm.accounts]
    )
    out.accounts = {a["key"]: i for a, i in zip(firm.accounts, account_ids, strict=True)}
    opp_rows = [
        {
            **{k: v for k, v in o.items() if k not in ("key", "account")},
            "AccountId": out.accounts[o["account"]],
            "Amount": float(o["Amount"]),
        }
        for o in firm.opportunities
    ]
    opp_ids = sf.insert_many("Opportunity", opp_rows)
    out.opportunities = {o["key"]: i for o, i in zip(firm.opportunities, opp_ids, strict=True)}
    line_rows = [
        {
            "OpportunityId": out.opportunities[key],
            "Role__c": line["Role__c"],
            "Quantity": float(line["Quantity"]),
            "UnitPrice": float(line["UnitPrice"]),
            "ServiceDate": line["ServiceDate"],
            "Description": line["Description"],
        }
        for key, lines in firm.lines.items()
        for line in lines
    ]
    sf.insert_many("OpportunityLineItem", line_rows)
    return out
