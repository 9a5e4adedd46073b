"""F1 — customer master sync: CRM account → ERP customer, ERP id back to the CRM.

Runs as part of lead-to-project (and on its own for an account). Every write
is idempotent by construction: the ERP customer is upserted by the hub's
external id, and the cross-reference is recorded in the same transaction as
the step's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from dbos import DBOS

from quote2cash.errors import BusinessRuleError, Owner, ProbableDuplicateError, TransientError
from quote2cash.model import Customer
from quote2cash.rules import Candidate, domain_of, match_customer, validate_customer
from quote2cash.runtime.hub import current
from quote2cash.store import audit, repo

CUSTOMER = "customer"
P = ParamSpec("P")
R = TypeVar("R")


def is_transient(error: BaseException) -> bool:
    """Only transient errors are retried by a step; business errors go to a person."""
    return isinstance(error, TransientError)


def remote_step() -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A DBOS step that calls a vendor: transient errors retried, business errors not.

    The connector already retried each request; these retries cover an
    in-doubt write (looked up again before it is re-sent) and longer outages.
    """
    step: Callable[[Callable[P, R]], Callable[P, R]] = DBOS.step(
        retries_allowed=True,
        max_attempts=4,
        interval_seconds=0.2,
        backoff_rate=2.0,
        should_retry=is_transient,
    )
    return step


def customer_key(account_id: str) -> str:
    """The hub's external id of a customer in target systems (deterministic)."""
    return f"Q2C-C-{account_id}"


@remote_step()
def erp_master_data() -> dict[str, Any]:
    """Subsidiaries, currencies, terms, departments and classes from the ERP, by name."""
    erp = current().erp
    subs = {
        r["id"]: {"name": r.get("name"), "inactive": str(r.get("isinactive", "F")).upper() in ("T", "TRUE")}
        for r in erp.suiteql("SELECT id, name, isinactive FROM subsidiary")
    }
    by_name: dict[str, dict[str, str]] = {}
    for table, col in (
        ("currency", "symbol"),
        ("term", "name"),
        ("department", "name"),
        ("classification", "name"),
    ):
        by_name[table] = {str(r[col]): str(r["id"]) for r in erp.suiteql(f"SELECT id, {col} FROM {table}")}
    return {"subsidiaries": subs, **by_name}


@remote_step()
def erp_customer_candidates() -> list[dict[str, Any]]:
    """Existing ERP customers, for identity matching."""
    rows = current().erp.suiteql("SELECT id, companyname, url, vatregnumber, externalid FROM customer")
    return [dict(r) for r in rows]


@remote_step()
def upsert_erp_customer(external_id: str, body: dict[str, Any]) -> str:
    """Create or update the ERP customer by the hub's external id."""
    return current().erp.upsert("customer", external_id, body)


@remote_step()
def write_back_account(account_id: str, fields: dict[str, Any]) -> None:
    """Write ids back to the CRM account (idempotent PATCH)."""
    current().crm.update("Account", account_id, fields)


def _record_customer(
    conn: sa.Connection,
    canonical_id: str,
    erp_id: str,
    how: str,
    subject: str,
    correlation_id: str,
    after: dict[str, Any],
) -> None:
    repo.put_xref(conn, "netsuite", CUSTOMER, canonical_id, erp_id)
    repo.ledger_done(conn, f"netsuite:{CUSTOMER}:{canonical_id}", {"id": erp_id})
    repo.record_step(conn, "lead_to_project", subject, "erp_customer", "netsuite", erp_id)
    audit.append(
        conn,
        actor="flow:customer_sync",
        action=f"customer.{how}",
        subject=f"Account/{canonical_id}",
        correlation_id=correlation_id,
        systems=["netsuite"] if how == "created" else [],
        after=after,
    )


def sync_customer(customer: Customer, *, subject: str, correlation_id: str) -> dict[str, Any]:
    """Make sure the customer exists in the ERP; returns ``{"erp_id", "how"}``.

    ``how`` is ``existing`` (already linked), ``matched`` (linked to a customer
    the ERP already had) or ``created``. Raises a :class:`BusinessRuleError`
    when validation fails or a probable duplicate needs a person's decision.
    """
    hub = current()
    canonical_id = customer.source_id
    known = hub.tx(repo.get_xref, "netsuite", CUSTOMER, canonical_id)
    if known is not None:
        return {"erp_id": known, "how": "existing"}

    entity = hub.legal_entities.get(customer.legal_entity or "")
    master = erp_master_data()
    sub_id = hub.subsidiary_of.get(customer.legal_entity or "")
    sub = master["subsidiaries"].get(sub_id) if sub_id else None
    validate_customer(customer, entity, subsidiary_active=None if sub is None else not sub["inactive"])
    assert entity is not None and sub_id is not None
    currency = customer.currency or entity.base_currency
    if currency not in master["currency"]:
        raise BusinessRuleError(
            f"currency {currency} of customer '{customer.name}' is not set up in the ERP",
            code="customer.currency_unknown_in_erp",
            owner=Owner.FINANCE,
            record=canonical_id,
        )
    terms_id = master["term"].get(customer.payment_terms or "")
    if customer.payment_terms and terms_id is None:
        raise BusinessRuleError(
            f"payment terms '{customer.payment_terms}' of customer '{customer.name}' do not exist in the ERP",
            code="customer.payment_terms_unknown_in_erp",
            owner=Owner.FINANCE,
            record=canonical_id,
        )

    key = customer_key(canonical_id)
    decision = hub.tx(repo.get_identity_decision, canonical_id)
    if decision is None or decision["decision"] != "create_new":
        if decision is not None and decision["decision"] == "link":
            erp_id = str(decision["external_id"])
            hub.tx(
                _record_customer,
                canonical_id,
                erp_id,
                "matched",
                subject,
                correlation_id,
                {"linked_to": erp_id, "by": decision["decided_by"]},
            )
            return {"erp_id": erp_id, "how": "matched"}
        candidates = [
            Candidate(
                external_id=str(c["id"]),
                name=str(c.get("companyname") or ""),
                domain=domain_of(c.get("url")),
                tax_id=c.get("vatregnumber"),
            )
            for c in erp_customer_candidates()
            if c.get("externalid") != key
        ]
        result = match_customer(customer.name, domain_of(customer.website), customer.tax_id, candidates)
        if result.kind == "match" and result.candidate is not None:
            erp_id = result.candidate.external_id
            hub.tx(
                _record_customer,
                canonical_id,
                erp_id,
                "matched",
                subject,
                correlation_id,
                {"linked_to": erp_id, "reason": result.reason},
            )
            return {"erp_id": erp_id, "how": "matched"}
        if result.kind == "probable_duplicate" and result.candidate is not None:
            c = result.candidate
            raise ProbableDuplicateError(
                f"CRM account '{customer.name}' ({canonical_id}) looks like the existing ERP customer "
                f"'{c.name}' (id {c.external_id}): {result.reason}. No second customer was created. "
                f"Decide: link the account to the existing customer, or create a new one.",
                record=canonical_id,
                system="netsuite",
                details={"candidate_id": c.external_id, "candidate_name": c.name, "score": result.score},
            )

    body = hub.mapping.apply(
        "customer_to_netsuite",
        customer.model_dump(mode="json"),
        {
            "subsidiary": sub_id,
            "currency": master["currency"][currency],
            "terms": terms_id,
            "external_id": key,
        },
    )
    hub.tx(
        repo.ledger_begin,
        f"netsuite:{CUSTOMER}:{canonical_id}",
        "netsuite",
        "upsert customer",
        correlation_id,
    )
    erp_id = upsert_erp_customer(key, body)
    hub.tx(_record_customer, canonical_id, erp_id, "created", subject, correlation_id, body)
    return {"erp_id": erp_id, "how": "created"}
