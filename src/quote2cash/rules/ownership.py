"""Field-level ownership (SPEC §1): which system is the system of record of each field.

Ownership is declared per record and field (``customer.payment_terms: erp``)
in the hub configuration, over the defaults below, which state the split of
SPEC §1. Every write the hub makes passes :meth:`Ownership.split` first:

- a field owned by another system than the target is written (the hub carries
  the owner's value to the target, e.g. the CRM's account name to the ERP);
- a field owned by the target itself is written only when the hub creates the
  record (it seeds it from the deal), never on an update: after creation the
  target is its system of record, and a change made elsewhere is refused and
  recorded, never propagated.

Owners are roles (``crm``, ``psa``, ``erp``, ``billing``) or ``hub`` for what
only the hub produces (its integration status and messages). A field with no
declared owner belongs to the system the hub read it from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

OwnerName = Literal["crm", "psa", "erp", "billing", "hub"]

#: Today's split (SPEC §1). A firm changes any of it under ``ownership:`` in its config.
DEFAULT_OWNERSHIP: dict[str, OwnerName] = {
    # The account and the deal are the CRM's; the customer financial master is the ERP's.
    "customer.name": "crm",
    "customer.website": "crm",
    "customer.tax_id": "erp",
    "customer.currency": "erp",
    "customer.payment_terms": "erp",
    "customer.legal_entity": "erp",
    # The project's commercial terms come from the deal; its structure and dates are the PSA's.
    "project.name": "crm",
    "project.billing_model": "crm",
    "project.currency": "crm",
    "project.budget": "crm",
    "project.start_date": "psa",
    "project.end_date": "psa",
    "project.department": "erp",
    # What the hub writes back to the CRM deal and account: mirrors of the other systems' ids.
    "deal.status": "hub",
    "deal.message": "hub",
    "deal.erp_customer_id": "erp",
    "deal.erp_project_id": "erp",
    "deal.psa_project_id": "psa",
    "account.erp_customer_id": "erp",
}


@dataclass(frozen=True)
class Refusal:
    """A field the hub did not write because the target owns it."""

    field: str
    owner: str
    value: Any


@dataclass(frozen=True)
class Ownership:
    """The owners of fields (``record.field`` → owner), defaults included."""

    owners: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OWNERSHIP))

    @classmethod
    def of(cls, overrides: Mapping[str, str]) -> Ownership:
        """The default split with a configuration's overrides applied."""
        return cls({**DEFAULT_OWNERSHIP, **overrides})

    def owner(self, record: str, name: str) -> str | None:
        """The declared owner of ``record.name`` (None: not declared)."""
        return self.owners.get(f"{record}.{name}")

    def split(
        self, target: str, record: str, fields: Mapping[str, Any], *, creating: bool
    ) -> tuple[dict[str, Any], list[Refusal]]:
        """The fields the hub may write to ``target`` (a role), and the ones it must not."""
        allowed: dict[str, Any] = {}
        refused: list[Refusal] = []
        for name, value in fields.items():
            owner = self.owner(record, name)
            if owner == target and not creating:
                refused.append(Refusal(f"{record}.{name}", owner, value))
            else:
                allowed[name] = value
        return allowed, refused


__all__ = ["DEFAULT_OWNERSHIP", "OwnerName", "Ownership", "Refusal"]
