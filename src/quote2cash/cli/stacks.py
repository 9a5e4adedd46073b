"""Any stack of vendor sandboxes from a name: which CRM, PSA and ERP, seeded with the
generated firm, and the hub configuration that points at them.

A stack is written ``crm,psa,erp`` (``salesforce,kantata,netsuite``,
``hubspot,certinia,business_central``; ``bc``, ``sf``, ``ns`` and ``hs`` are
accepted for short). The flows never learn which vendors they talk to: only
the configuration differs. Seeding is one small function per vendor (the
Salesforce, Kantata, Certinia and NetSuite ones live in
:mod:`quote2cash.sandbox.seed`). The PSA is a :class:`~quote2cash.cli.psa_side.PsaSide`:
its sandbox and what the demo does there. Certinia lives in a Salesforce org:
the CRM's own when the CRM is Salesforce (one sandbox serves both roles),
otherwise an org of its own.

The legacy flat-file ERP can join any stack whose ERP numbers subsidiaries
like NetSuite (1, 2, … in the firm's entity order): :func:`cutover_routing`
routes one legal entity's projects to it until a cutover date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from quote2cash.cli.psa_side import KantataSide, PsaSide, open_psa
from quote2cash.errors import UsageError
from quote2cash.ports import ErpMasterData, SourceEvent
from quote2cash.sandbox._base import FaultInjector, Sandbox
from quote2cash.sandbox.business_central import BusinessCentralSandbox
from quote2cash.sandbox.business_central.schema import SETS as BC_SETS
from quote2cash.sandbox.firm import ENTITIES, PRACTICES, TERMS, Firm
from quote2cash.sandbox.flatfile import FlatFileErpSimulator
from quote2cash.sandbox.hubspot import HubSpotSandbox
from quote2cash.sandbox.kantata import KantataSandbox
from quote2cash.sandbox.netsuite import NetSuiteSandbox
from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.seed import (
    SANDBOX_ENV,
    Seeded,
    hub_config,
    seed_netsuite,
    seed_salesforce,
)

CRMS = ("salesforce", "hubspot")
PSAS = ("kantata", "certinia")
ERPS = ("netsuite", "business_central")
ALIASES = {"sf": "salesforce", "hs": "hubspot", "ns": "netsuite", "bc": "business_central"}
#: HubSpot's burst limit on the top tiers: requests per 10 seconds.
HUBSPOT_RATE = 190
#: Salesforce stage -> HubSpot default-pipeline stage id.
HUBSPOT_STAGES = {
    "Qualification": "qualifiedtobuy",
    "Needs Analysis": "presentationscheduled",
    "Proposal/Price Quote": "decisionmakerboughtin",
    "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}
#: The firm's billing models (CRM labels) as the HubSpot property's internal values.
HUBSPOT_BILLING = {
    "Time & Materials": "time_and_materials",
    "Fixed Fee": "fixed_fee",
    "Milestone": "milestone",
    "Retainer": "retainer",
    "Subscription": "subscription",
}
#: Currencies the HubSpot portal's ``deal_currency_code`` offers.
HUBSPOT_CURRENCIES = {"USD", "GBP", "EUR", "SGD", "CAD", "CHF"}
#: Department (cost centre) codes of the practices in Business Central (``Code[20]``).
BC_DEPARTMENTS = {
    "Strategy": "STRATEGY",
    "Technology": "TECHNOLOGY",
    "Operations": "OPERATIONS",
    "Data & AI": "DATA-AI",
    "Finance Transformation": "FIN-TRANSFORM",
}
#: The hub's default ledger accounts (``posting.accounts``), created in every BC company.
BC_ACCOUNTS = {
    "1210": ("Unbilled receivables", "Assets"),
    "1220": ("Re-billable expenses", "Assets"),
    "2150": ("Expense clearing", "Liabilities"),
    "4000": ("Services revenue", "Income"),
    "6100": ("Project cost", "Expense"),
    "6190": ("Cost absorption", "Expense"),
}


@dataclass(frozen=True)
class Stack:
    """Which vendor plays each role."""

    crm: str = "salesforce"
    psa: str = "kantata"
    erp: str = "netsuite"

    @classmethod
    def parse(cls, text: str) -> Stack:
        """A stack from ``crm,psa,erp`` (vendor kinds or their short names), in any order."""
        names = [ALIASES.get(n.strip().lower(), n.strip().lower()) for n in text.split(",") if n.strip()]
        picked: dict[str, str] = {}
        for name in names:
            role = next(
                (r for r, kinds in (("crm", CRMS), ("psa", PSAS), ("erp", ERPS)) if name in kinds), None
            )
            if role is None:
                known = ", ".join((*CRMS, *PSAS, *ERPS))
                raise UsageError(f"--stack: there is no sandbox for {name!r} (known: {known})")
            if role in picked:
                raise UsageError(f"--stack names two {role.upper()}s: {picked[role]} and {name}")
            picked[role] = name
        missing = [r for r in ("crm", "psa", "erp") if r not in picked]
        if missing:
            raise UsageError(f"--stack {text!r} names no {' and no '.join(m.upper() for m in missing)}")
        return cls(picked["crm"], picked["psa"], picked["erp"])

    @property
    def name(self) -> str:
        """``crm,psa,erp``."""
        return f"{self.crm},{self.psa},{self.erp}"


DEFAULT_STACK = Stack()
HUBSPOT_BC = Stack("hubspot", "kantata", "business_central")
HUBSPOT_CERTINIA_BC = Stack("hubspot", "certinia", "business_central")


def cutover_routing(legal_entity: str, cutover: date, legacy: str, cloud: str = "erp") -> dict[str, Any]:
    """``erp_routing`` for one entity moving from a legacy ERP to the cloud ERP on ``cutover``.

    The entity's projects starting on or after the cutover go to the cloud
    ERP; those started before stay on the legacy ERP (and so do their
    postings, whatever their date); every other entity is on the cloud ERP.
    """
    return {
        "rules": [
            {
                "system": cloud,
                "legal_entities": [legal_entity],
                "projects_starting_from": cutover.isoformat(),
            },
            {"system": legacy, "legal_entities": [legal_entity]},
        ],
        "default": cloud,
    }


def aligned_master(md: ErpMasterData) -> dict[str, Any]:
    """The legacy ERP's reference data with the codes of another ERP's (as a migration of
    reference data leaves it), in the simulator's ``masterdata.json`` shape."""
    return {
        "subsidiaries": [
            {"id": s, "name": f"Subsidiary {s}", "active": active} for s, active in md.subsidiaries.items()
        ],
        "currencies": [{"code": code, "id": code} for code in md.currencies],
        "terms": [{"id": i, "name": name} for name, i in md.terms.items()],
        "departments": [
            {"id": i, "name": name, "active": i in md.active_departments}
            for name, i in md.departments.items()
        ],
        "classes": [],
        "periods": [
            {
                "name": p.start.strftime("%Y-%m"),
                "start": p.start.isoformat(),
                "end": p.end.isoformat(),
                "closed": p.closed,
            }
            for p in md.periods
        ],
    }


# -- seeding, one function per vendor -----------------------------------------------------------
def seed_hubspot(firm: Firm, box: HubSpotSandbox) -> Seeded:
    """HubSpot: the firm's property definitions, a company per account, open deals (associated
    with their company as primary) and their line items; returns their ids."""
    from quote2cash.connectors.hubspot import FIRM_PROPERTIES

    have = {t: set(box.property_names(t)) for t in FIRM_PROPERTIES}
    for object_type, definitions in FIRM_PROPERTIES.items():
        for definition in definitions:
            if definition["name"] not in have[object_type]:
                box.define_property(object_type, definition)
    out = Seeded()
    for a in firm.accounts:
        website = str(a["Website"])
        props = {
            "name": a["Name"],
            "website": website,
            "domain": website.split("//", 1)[-1].removeprefix("www."),
            "country": a["BillingCountry"],
            "industry": a.get("Industry"),
            "q2c_region": a["Region__c"],
            "q2c_currency": a["CurrencyIsoCode"],
            "q2c_payment_terms": a["Payment_Terms__c"],
            "q2c_tax_region": a.get("Tax_Region__c"),
            "q2c_tax_id": a.get("Tax_Id__c"),
        }
        out.accounts[a["key"]] = box.create("companies", {k: v for k, v in props.items() if v is not None})
    for o in firm.opportunities:
        props = {
            "dealname": o["Name"],
            "pipeline": "default",
            "dealstage": HUBSPOT_STAGES[o["StageName"]],
            "amount": str(o["Amount"]),
            "closedate": o["CloseDate"],
            "q2c_billing_model": HUBSPOT_BILLING[o["Billing_Model__c"]],
            "q2c_practice": o["Practice__c"],
            "q2c_start_date": o["Start_Date__c"],
            "q2c_end_date": o["End_Date__c"],
            "q2c_terms_approved": "false",
        }
        if o["CurrencyIsoCode"] in HUBSPOT_CURRENCIES:
            props["deal_currency_code"] = o["CurrencyIsoCode"]
        deal = box.create("deals", props)
        box.portal.associate("deals", deal, "companies", out.accounts[o["account"]], [341, 5])
        out.opportunities[o["key"]] = deal
        for line in firm.lines[o["key"]]:
            box.create(
                "line_items",
                {
                    "name": line["Role__c"],
                    "quantity": str(line["Quantity"]),
                    "price": str(line["UnitPrice"]),
                    "description": line["Description"],
                    "q2c_role": line["Role__c"],
                    "q2c_service_date": line["ServiceDate"],
                },
                deal=deal,
            )
    return out


def seed_business_central(
    firm: Firm, box: BusinessCentralSandbox, today: date = date(2026, 11, 2)
) -> dict[str, str]:
    """Business Central: a company per active legal entity with its currencies, payment terms,
    department values, the hub's ledger accounts and monthly periods (those before last month
    closed), and the firm's existing customers; returns legal entity -> company id.

    The dormant entity gets no company: its deals stop on the inactive-subsidiary rule.
    """
    companies: dict[str, str] = {}
    for e in ENTITIES:
        if e.inactive:
            continue
        company = box.add_company(e.name[:30])
        companies[e.code] = company
        for code in sorted(set(e.allowed) - {e.currency}):
            box.add_currency(company, code)
        for t in TERMS:
            days = int(t.split()[1])
            box.add_payment_terms(company, f"{days} DAYS", t, days)
        box.add_dimension(company, "DEPARTMENT", "Department")
        for practice in PRACTICES:
            box.add_dimension_value(company, "DEPARTMENT", BC_DEPARTMENTS[practice], practice)
        for number, (name, category) in BC_ACCOUNTS.items():
            box.add_account(company, number, name, category=category)
        for year in (2026, 2027):
            for month in range(1, 13):
                box.add_period(company, year, month, closed=(year, month) < (today.year, today.month - 1))
    for c in firm.erp_customers:
        held = companies.get(c["subsidiary"])
        if held is None:
            continue
        entity = next(e for e in ENTITIES if e.code == c["subsidiary"])
        box.env.create(
            BC_SETS["customers"],
            held,
            None,
            {
                "displayName": c["companyName"][:100],
                "website": c["url"][:80],
                "currencyCode": "" if c["currency"] == entity.currency else c["currency"],
            },
        )
    return companies


# -- the sandboxes of one stack ------------------------------------------------------------------
@dataclass
class StackSandboxes:
    """The running sandboxes of one stack, and the legacy file ERP when it takes part.

    ``salesforce``, ``kantata``, ``certinia``, ``netsuite``, ``hubspot`` and
    ``business_central`` name the vendor's sandbox when the stack has it; ``psa``
    is the PSA side (its sandbox is ``psa.box``, the CRM's own with Certinia on Salesforce).
    """

    stack: Stack
    folder: Path
    crm: SalesforceSandbox | HubSpotSandbox
    psa: PsaSide
    erp: NetSuiteSandbox | BusinessCentralSandbox
    legacy: FlatFileErpSimulator | None = None
    companies: dict[str, str] = field(default_factory=dict)  # legal entity -> BC company id

    @classmethod
    def open(cls, stack: Stack, folder: Path, *, seed: int = 0, legacy: bool = False) -> StackSandboxes:
        """Open (or reopen) the stack's sandboxes in ``folder``; ``legacy`` adds the file ERP."""
        folder.mkdir(parents=True, exist_ok=True)
        crm: SalesforceSandbox | HubSpotSandbox = (
            SalesforceSandbox(folder / "salesforce.sqlite", seed=seed)
            if stack.crm == "salesforce"
            else HubSpotSandbox(folder / "hubspot.sqlite", seed=seed, rate_max=HUBSPOT_RATE)
        )
        erp: NetSuiteSandbox | BusinessCentralSandbox = (
            NetSuiteSandbox(folder / "netsuite.sqlite", seed=seed)
            if stack.erp == "netsuite"
            else BusinessCentralSandbox(
                folder / "business_central.sqlite",
                seed=seed,
                client_secret=SANDBOX_ENV["Q2C_SANDBOX_BC_SECRET"],
                tls_folder=folder / "business_central-tls",
            )
        )
        if legacy and stack.erp != "netsuite":
            raise UsageError("the legacy file ERP numbers subsidiaries like NetSuite: use it with netsuite")
        simulator = FlatFileErpSimulator(folder / "legacy-erp") if legacy else None
        return cls(stack, folder, crm, open_psa(stack.psa, folder, crm, seed=seed), erp, simulator)

    @classmethod
    def of(cls, boxes: Any) -> StackSandboxes:
        """The stack view of the default stack's :class:`~quote2cash.sandbox.seed.Sandboxes`
        (or a stack's sandboxes, returned as they are)."""
        if isinstance(boxes, StackSandboxes):
            return boxes
        return cls(DEFAULT_STACK, Path("."), boxes.salesforce, KantataSide(boxes.kantata), boxes.netsuite)

    def boxes(self) -> list[Sandbox]:
        """The HTTP sandboxes: CRM, PSA, ERP (one sandbox once, when it plays two roles)."""
        return list(dict.fromkeys([self.crm, self.psa.box, self.erp]))

    def start(self) -> StackSandboxes:
        """Serve the sandboxes on loopback and start the legacy ERP's import job."""
        for box in self.boxes():
            box.start(0)
        if self.legacy is not None:
            self.legacy.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the files."""
        for box in self.boxes():
            box.stop()
            box.store.close()
        if self.legacy is not None:
            self.legacy.close()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the legacy ERP has answered every file written to it."""
        if self.legacy is not None:
            self.legacy.wait_idle(timeout)

    # -- vendor by name --------------------------------------------------------------------------
    def _need(self, box: Any, kind: type[Any], name: str) -> Any:
        if not isinstance(box, kind):
            raise AttributeError(f"the stack {self.stack.name} has no {name} sandbox")
        return box

    @property
    def salesforce(self) -> SalesforceSandbox:
        """The Salesforce sandbox (the stack's CRM)."""
        box: SalesforceSandbox = self._need(self.crm, SalesforceSandbox, "salesforce")
        return box

    @property
    def hubspot(self) -> HubSpotSandbox:
        """The HubSpot sandbox (the stack's CRM)."""
        box: HubSpotSandbox = self._need(self.crm, HubSpotSandbox, "hubspot")
        return box

    @property
    def kantata(self) -> KantataSandbox:
        """The Kantata sandbox (the stack's PSA)."""
        box: KantataSandbox = self._need(self.psa.box, KantataSandbox, "kantata")
        return box

    @property
    def certinia(self) -> SalesforceSandbox:
        """The Salesforce org holding the Certinia PSA (the CRM's own when the CRM is Salesforce)."""
        box: SalesforceSandbox = self._need(self.psa.box, SalesforceSandbox, "certinia")
        return box

    @property
    def netsuite(self) -> NetSuiteSandbox:
        """The NetSuite sandbox (the stack's ERP)."""
        box: NetSuiteSandbox = self._need(self.erp, NetSuiteSandbox, "netsuite")
        return box

    @property
    def business_central(self) -> BusinessCentralSandbox:
        """The Business Central sandbox (the stack's ERP)."""
        box: BusinessCentralSandbox = self._need(self.erp, BusinessCentralSandbox, "business_central")
        return box

    # -- seeding and configuration ------------------------------------------------------------------
    def seed(self, firm: Firm, today: date = date(2026, 11, 2)) -> Seeded:
        """Load the firm into every sandbox of the stack; returns the CRM ids of accounts and deals."""
        if isinstance(self.erp, NetSuiteSandbox):
            seed_netsuite(firm, self.erp, today)
        else:
            self.companies = seed_business_central(firm, self.erp, today)
        self.psa.seed(firm)
        if isinstance(self.crm, SalesforceSandbox):
            return seed_salesforce(firm, self.crm)
        return seed_hubspot(firm, self.crm)

    def config(self, database_url: str, **hub: Any) -> dict[str, Any]:
        """A hub configuration (as loaded from YAML) for this stack's sandboxes."""
        raw = hub_config(
            "http://crm.invalid", "http://psa.invalid", "http://erp.invalid", database_url, **hub
        )
        systems = raw["systems"]
        systems["psa"] = self.psa.system()
        if isinstance(self.crm, SalesforceSandbox):
            systems["crm"]["base_url"] = self.crm.url
        else:
            systems["crm"] = {
                "kind": "hubspot",
                "base_url": self.crm.url,
                "access_token_env": "Q2C_SANDBOX_HUBSPOT_TOKEN",
                "timeout_seconds": 5,
                "limits": {"concurrency": 8},
            }
        if isinstance(self.erp, NetSuiteSandbox):
            systems["erp"]["base_url"] = self.erp.url
        else:
            bc = self.erp
            systems["erp"] = {
                "kind": "business_central",
                "base_url": bc.url,
                "tenant": bc.tenant,
                "environment": bc.environment,
                "client_id": bc.client_id,
                "client_secret_env": "Q2C_SANDBOX_BC_SECRET",
                "authority_host": bc.login_url,
                "ca_bundle": bc.ca_file,
                "local_currencies": {e.name[:30]: e.currency for e in ENTITIES if not e.inactive},
                "timeout_seconds": 5,
                "limits": {"concurrency": 8},
            }
            for code, entity in raw["legal_entities"].items():
                # A legal entity is a company; the dormant one has none (its deals stop on that).
                entity["erp_subsidiary"] = self.companies.get(code, f"no-company-{code}")
        if self.legacy is not None:
            systems["legacy"] = {"kind": "flatfile", "folder": str(self.legacy.folder)}
        return raw

    # -- the CRM, whichever it is -----------------------------------------------------------------
    def close_deal(self, deal_id: str, stage: str, approved: bool) -> None:
        """Move a deal to ``Closed Won`` or ``Closed Lost`` (Salesforce names), terms approved or not."""
        if isinstance(self.crm, SalesforceSandbox):
            self.crm.update("Opportunity", deal_id, {"StageName": stage, "Terms_Approved__c": approved})
        else:
            self.crm.update(
                "deals",
                deal_id,
                {"dealstage": HUBSPOT_STAGES[stage], "q2c_terms_approved": "true" if approved else "false"},
            )

    def won_event(self, deal_id: str) -> SourceEvent:
        """The closed-won event of a deal, as the CRM's webhook would deliver it again."""
        if isinstance(self.crm, SalesforceSandbox):
            from quote2cash.connectors.salesforce.adapter import closed_won_event

            return closed_won_event(self.crm.get("Opportunity", deal_id))
        from quote2cash.connectors.hubspot.adapter import FEED_PROPERTIES, STAMP, parse_stamp
        from quote2cash.connectors.hubspot.adapter import closed_won_event as hubspot_event

        props = self.crm.get("deals", deal_id)
        feed: dict[str, str | None] = {k: props.get(k) for k in FEED_PROPERTIES}
        return hubspot_event(deal_id, feed, parse_stamp(props.get(STAMP), f"deals/{deal_id}"))

    def subject(self, deal_id: str) -> str:
        """The subject of a deal's events (and flow runs): ``Opportunity/<id>`` or ``Deal/<id>``."""
        return f"{'Opportunity' if isinstance(self.crm, SalesforceSandbox) else 'Deal'}/{deal_id}"

    def deals(self) -> list[dict[str, Any]]:
        """Every deal in the CRM, with the ids the hub wrote back as ``erp_project_id`` and
        ``psa_project_id`` (None where not written)."""
        if isinstance(self.crm, SalesforceSandbox):
            return [
                {
                    **o,
                    "erp_project_id": o.get("ERP_Project_Id__c"),
                    "psa_project_id": o.get("PSA_Workspace_Id__c"),
                }
                for o in self.crm.records("Opportunity")
            ]
        return [
            {
                **d,
                "erp_project_id": d.get("q2c_erp_project_id"),
                "psa_project_id": d.get("q2c_psa_project_id"),
            }
            for d in self.crm.records("deals")
        ]

    def add_deal(
        self,
        name: str,
        *,
        region: str = "North America",
        currency: str = "USD",
        start: str = "2026-12-01",
        lines: list[tuple[str, int]] | None = None,
        won: bool = True,
    ) -> tuple[str, str]:
        """A client and a time-and-materials deal in the CRM, won with approved terms unless
        ``won`` is False; returns (account id, deal id)."""
        domain = name.lower().replace(" ", "") + ".example.com"
        lines = lines if lines is not None else [("Consultant", 80), ("Engagement Manager", 20)]
        if isinstance(self.crm, SalesforceSandbox):
            sf = self.crm
            account = sf.insert(
                "Account",
                {
                    "Name": name,
                    "Website": f"https://{domain}",
                    "Region__c": region,
                    "CurrencyIsoCode": currency,
                    "Payment_Terms__c": "Net 30",
                    "BillingCountry": "US",
                },
            )
            deal = sf.insert(
                "Opportunity",
                {
                    "AccountId": account,
                    "Name": f"{name} — Delivery",
                    "StageName": "Negotiation/Review",
                    "CloseDate": "2026-11-20",
                    "Amount": 48000.0,
                    "CurrencyIsoCode": currency,
                    "Billing_Model__c": "Time & Materials",
                    "Practice__c": "Technology",
                    "Start_Date__c": start,
                    "End_Date__c": "2027-03-31",
                    "Terms_Approved__c": False,
                },
            )
            for role, hours in lines:
                sf.insert(
                    "OpportunityLineItem",
                    {
                        "OpportunityId": deal,
                        "Role__c": role,
                        "Quantity": float(hours),
                        "UnitPrice": 180.0,
                        "ServiceDate": start,
                        "Description": f"{role} {hours} h",
                    },
                )
        else:
            hs = self.crm
            account = hs.create(
                "companies",
                {
                    "name": name,
                    "domain": domain,
                    "website": f"https://{domain}",
                    "country": "US",
                    "q2c_region": region,
                    "q2c_currency": currency,
                    "q2c_payment_terms": "Net 30",
                },
            )
            deal = hs.create(
                "deals",
                {
                    "dealname": f"{name} — Delivery",
                    "pipeline": "default",
                    "dealstage": "contractsent",
                    "amount": "48000",
                    "closedate": "2026-11-20",
                    "deal_currency_code": currency,
                    "q2c_billing_model": "time_and_materials",
                    "q2c_practice": "Technology",
                    "q2c_start_date": start,
                    "q2c_end_date": "2027-03-31",
                    "q2c_terms_approved": "false",
                },
            )
            hs.portal.associate("deals", deal, "companies", account, [341, 5])
            for role, hours in lines:
                hs.create(
                    "line_items",
                    {
                        "name": role,
                        "quantity": str(hours),
                        "price": "180",
                        "q2c_role": role,
                        "q2c_service_date": start,
                    },
                    deal=deal,
                )
        if won:
            self.close_deal(deal, "Closed Won", True)
        return account, deal

    # -- the ERP, whichever it is -------------------------------------------------------------------
    def erp_customers(self) -> list[str]:
        """The hub's external id (or, in Business Central, the number) of every ERP customer it wrote."""
        if isinstance(self.erp, NetSuiteSandbox):
            return [str(c["externalId"]) for c in self.erp.records("customer") if c.get("externalId")]
        return [
            str(c["number"])
            for c in self.erp.records("customers")
            if str(c.get("number", "")).startswith("Q")
        ]

    def erp_projects(self) -> list[str]:
        """The hub's key (or number) of every ERP project."""
        if isinstance(self.erp, NetSuiteSandbox):
            return [str(j["externalId"]) for j in self.erp.records("job") if j.get("externalId")]
        return [str(p["number"]) for p in self.erp.records("projects")]

    def erp_postings(self, kind: str) -> list[str]:
        """The posting keys of every ERP record of a kind (a key twice is a duplicate)."""
        if isinstance(self.erp, NetSuiteSandbox):
            return [
                str(r["custbody_q2c_source_ref"])
                for rtype in ("journalentry", "timebill", "expensereport")
                for r in self.erp.records(rtype)
                if r.get("custbody_q2c_kind") == kind
            ]
        from quote2cash.connectors.business_central.adapter import parse_comment

        keys = []
        for line in self.erp.records("journalLines"):
            fields = parse_comment(str(line.get("comment") or ""))
            if fields is not None and fields["kind"] == kind:
                keys.append(fields["key"])
        return keys

    def inject_faults(self, faults: Callable[[], FaultInjector]) -> None:
        """Real-world weather: throttling and server errors on the ERP and the PSA, a couple of
        timeouts on PSA writes that did land, and a few CRM server errors (a sandbox playing
        two roles gets the weather of both)."""
        for box in self.boxes():
            box.faults = faults()
        self.erp.inject("throttle", probability=0.04, retry_after=0.05)
        if isinstance(self.erp, NetSuiteSandbox):
            # Business Central creates with POST: a 503 there leaves the create in doubt, and
            # the connector stops on it after looking the record up (a case, not a retry).
            self.erp.inject("error", status=503, probability=0.02)
        self.psa.inject_faults()
        self.crm.inject("error", status=503, probability=0.01)
