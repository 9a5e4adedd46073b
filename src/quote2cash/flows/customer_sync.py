"""F1 — customer master sync: CRM account → ERP customer, ERP id back to the CRM.

Runs as part of lead-to-project. A customer belongs to a legal entity: the
ERP customer of a CRM account is kept per entity (:func:`customer_ref`), and
identity matching only ever links to a customer of the same subsidiary. A
match in another subsidiary is never re-used: it is a governance case for
finance, or (``customers.other_entity_match: create``) this entity gets its
own customer. Every write is idempotent by construction: the ERP customer is
upserted by the hub's external id, and the cross-reference is recorded in the
same transaction as the step's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbos import DBOS

from quote2cash.errors import BusinessRuleError, Owner, ProbableDuplicateError
from quote2cash.model import Customer, LegalEntity
from quote2cash.ports import CustomerRecord, ErpMasterData, ErpRefs
from quote2cash.rules import Candidate, domain_of, match_customer, validate_customer
from quote2cash.runtime.flow import Run
from quote2cash.runtime.hub import current
from quote2cash.store import repo

CUSTOMER = "customer"


def customer_ref(account_id: str, legal_entity: str) -> str:
    """The hub's id of a CRM account's customer in one legal entity."""
    return f"{account_id}@{legal_entity}"


def customer_key(ref: str) -> str:
    """The hub's external id of a customer in target systems (deterministic)."""
    return f"Q2C-C-{ref}"


@dataclass(frozen=True)
class Synced:
    """The ERP customer of a CRM account, and how the hub came to it."""

    erp_id: str
    how: str  # existing | matched | created


# -- remote steps: at-least-once, idempotent -------------------------------------------------
@DBOS.step()
def erp_master_data(erp: str, fresh: bool = False) -> ErpMasterData:
    """The ERP's reference data (reused by the adapter for its freshness window unless ``fresh``)."""
    return current().erp(erp).master_data(fresh=fresh)


def sync_customer(
    run: Run,
    customer: Customer,
    erp: str,
    master: ErpMasterData,
    candidates: list[CustomerRecord] | None,
    decision: dict[str, Any] | None,
) -> Synced:
    """Make sure the customer exists in the ERP ``erp``.

    ``candidates`` are the ERP's customers for identity matching and
    ``decision`` a person's earlier decision on a probable duplicate (both
    read with the deal, in one step). Raises a :class:`BusinessRuleError` when
    validation fails or a probable duplicate needs a person's decision. A rule
    that fails on reused master data is checked again on fresh data first:
    finance may just have fixed it.
    """
    try:
        return _sync(run, customer, erp, master, candidates, decision)
    except BusinessRuleError as exc:
        if exc.code not in MASTER_DATA_RULES:
            raise
    return _sync(run, customer, erp, erp_master_data(erp, True), candidates, decision)


MASTER_DATA_RULES = frozenset(
    {
        "customer.subsidiary_inactive",
        "customer.currency_unknown_in_erp",
        "customer.payment_terms_unknown_in_erp",
    }
)


def _sync(
    run: Run,
    customer: Customer,
    erp: str,
    master: ErpMasterData,
    candidates: list[CustomerRecord] | None,
    decision: dict[str, Any] | None,
) -> Synced:
    hub = run.hub
    canonical_id = customer_ref(customer.source_id, customer.legal_entity or "")
    known = run.known(erp, CUSTOMER, canonical_id)
    if known is not None:
        _update_created(run, customer, erp, canonical_id)
        return Synced(known, "existing")

    entity = hub.legal_entities.get(customer.legal_entity or "")
    sub_id = hub.subsidiary_of.get(customer.legal_entity or "")
    active = master.subsidiaries.get(sub_id) if sub_id else None
    validate_customer(customer, entity, subsidiary_active=active)
    assert entity is not None and sub_id is not None
    currency = customer.currency or entity.base_currency
    if currency not in master.currencies:
        raise BusinessRuleError(
            f"currency {currency} of customer '{customer.name}' is not set up in the ERP",
            code="customer.currency_unknown_in_erp",
            owner=Owner.FINANCE,
            record=canonical_id,
        )
    terms_id = master.terms.get(customer.payment_terms or "")
    if customer.payment_terms and terms_id is None:
        raise BusinessRuleError(
            f"payment terms '{customer.payment_terms}' of customer '{customer.name}' do not exist in the ERP",
            code="customer.payment_terms_unknown_in_erp",
            owner=Owner.FINANCE,
            record=canonical_id,
        )

    # Matching and creating are one critical section per ERP: two accounts of the same firm,
    # in runs side by side, would otherwise both find no customer and both create one. The
    # candidates are read again inside it (the adapter's list, which learns each creation).
    with hub.lock(f"identity:{erp}"):
        if candidates is not None:
            candidates = hub.erp(erp).customers()
        return _match_or_create(
            run, customer, erp, canonical_id, sub_id, entity, terms_id, currency, master, candidates, decision
        )


def _match_or_create(
    run: Run,
    customer: Customer,
    erp: str,
    canonical_id: str,
    sub_id: str,
    entity: LegalEntity,
    terms_id: str | None,
    currency: str,
    master: ErpMasterData,
    candidates: list[CustomerRecord] | None,
    decision: dict[str, Any] | None,
) -> Synced:
    hub = run.hub
    key = customer_key(canonical_id)
    by_id = {c.id: c for c in candidates or []}
    if decision is not None and decision["decision"] == "link":
        erp_id = str(decision["external_id"])
        chosen = by_id.get(erp_id)
        if chosen is not None and chosen.subsidiary not in (None, sub_id):
            raise _other_entity(customer, canonical_id, erp, chosen, entity.code, "was chosen to link to")
        return _link(run, erp, canonical_id, erp_id, {"linked_to": erp_id, "by": decision["decided_by"]})
    if decision is None:
        own: list[Candidate] = []
        others: list[Candidate] = []
        for c in candidates or []:
            if c.external_id == key:
                continue
            pool = own if c.subsidiary in (None, sub_id) else others
            pool.append(
                Candidate(external_id=c.id, name=c.name, domain=domain_of(c.website), tax_id=c.tax_id)
            )
        domain = domain_of(customer.website)
        result = match_customer(customer.name, domain, customer.tax_id, own)
        if result.kind == "match" and result.candidate is not None:
            erp_id = result.candidate.external_id
            return _link(run, erp, canonical_id, erp_id, {"linked_to": erp_id, "reason": result.reason})
        if result.kind == "probable_duplicate" and result.candidate is not None:
            found = result.candidate
            raise ProbableDuplicateError(
                f"CRM account '{customer.name}' ({canonical_id}) looks like the existing ERP customer "
                f"'{found.name}' (id {found.external_id}): {result.reason}. No second customer was created. "
                f"Decide: link the account to the existing customer, or create a new one.",
                record=canonical_id,
                system=erp,
                details={
                    "candidate_id": found.external_id,
                    "candidate_name": found.name,
                    "score": result.score,
                },
            )
        elsewhere = match_customer(customer.name, domain, customer.tax_id, others)
        if elsewhere.candidate is not None and hub.config.customers.other_entity_match == "case":
            raise _other_entity(
                customer, canonical_id, erp, by_id[elsewhere.candidate.external_id], entity.code, "matches"
            )

    refs = ErpRefs(subsidiary=sub_id, currency=master.currencies[currency], terms=terms_id)

    def send(first: bool) -> str:
        return current().erp(erp).upsert_customer(customer, key, refs)  # an upsert: safe to repeat

    erp_id = run.write(
        "erp_customer",
        erp,
        CUSTOMER,
        canonical_id,
        "upsert customer",
        send,
        {"external_id": key, **customer.model_dump(mode="json")},
        audit_action="customer.created",
    )
    hub.tx(repo.set_synced, erp, CUSTOMER, canonical_id, customer.source_version, _seen(customer))
    return Synced(erp_id, "created")


def _seen(customer: Customer) -> dict[str, Any]:
    """The account's values of the customer fields the hub carries to the ERP."""
    return {name: getattr(customer, name) for name in SYNCED_FIELDS}


#: Customer fields carried from the CRM account to the ERP customer, subject to ownership.
SYNCED_FIELDS = ("name", "website", "tax_id", "currency", "payment_terms")


def _update_created(run: Run, customer: Customer, erp: str, canonical_id: str) -> None:
    """Keep a customer the hub created in step with its CRM account, field by field.

    Only what changed in the CRM since the last sync is considered; of that, the
    fields the CRM owns are written (an update by the hub's external id), and a
    change to a field the ERP owns (payment terms, currency, tax id) is refused,
    recorded and counted, never propagated. A customer the hub linked to rather
    than created stays entirely the ERP's.
    """
    hub = run.hub
    synced = hub.read(repo.get_synced, erp, CUSTOMER, canonical_id)
    if synced is None or synced[0] is None or synced[0] == customer.source_version:
        return
    before = synced[1]
    seen = _seen(customer)
    changed = {k: v for k, v in seen.items() if before.get(k) != v}
    allowed, refused = hub.ownership.split("erp", "customer", changed, creating=False)
    if allowed:
        refs = ErpRefs(subsidiary=hub.subsidiary_of[customer.legal_entity or ""])
        only = frozenset(allowed)

        def send(first: bool) -> str:
            return current().erp(erp).upsert_customer(customer, customer_key(canonical_id), refs, only=only)

        run.write(
            "erp_customer_update",
            erp,
            CUSTOMER,
            canonical_id,
            "update customer",
            send,
            {"changed": allowed},
            audit_action="customer.updated",
        )
    run.refused(erp, f"customer {canonical_id}", refused)
    hub.tx(repo.set_synced, erp, CUSTOMER, canonical_id, customer.source_version, seen)


def _other_entity(
    customer: Customer, canonical_id: str, erp: str, other: CustomerRecord, entity: str, how: str
) -> BusinessRuleError:
    return BusinessRuleError(
        f"CRM account '{customer.name}' ({customer.source_id}), for a deal of legal entity {entity}, "
        f"{how} ERP customer '{other.name}' (id {other.id}), which belongs to subsidiary {other.subsidiary}, "
        f"not to {entity}'s. A customer is never re-used across legal entities, and nothing was created. "
        f"Choose: create {entity}'s own customer (resubmit with create-new), link the account to a "
        f"customer of {entity} (resubmit with link-to and its id), or correct the account in the CRM.",
        code="customer.other_entity_match",
        owner=Owner.FINANCE,
        record=canonical_id,
        system=erp,
        details={
            "candidate_id": other.id,
            "candidate_name": other.name,
            "candidate_subsidiary": other.subsidiary,
            "legal_entity": entity,
        },
    )


def _link(run: Run, erp: str, canonical_id: str, erp_id: str, after: dict[str, str]) -> Synced:
    run.record("erp_customer", erp, CUSTOMER, canonical_id, erp_id, after, audit_action="customer.matched")
    return Synced(erp_id, "matched")
