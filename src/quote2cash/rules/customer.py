"""Validation of a customer before it is written to the ERP, with messages a
sales-ops or finance person can act on."""

from __future__ import annotations

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.model import Customer, LegalEntity


def validate_customer(
    customer: Customer, entity: LegalEntity | None, *, subsidiary_active: bool | None
) -> None:
    """Raise :class:`BusinessRuleError` for the first rule the customer breaks.

    ``subsidiary_active`` is what the ERP says of the entity's subsidiary right
    now (None if it does not know the subsidiary at all).
    """
    who = f"customer '{customer.name}' (CRM account {customer.source_id})"
    if entity is None:
        raise BusinessRuleError(
            f"{who} belongs to legal entity '{customer.legal_entity}', which is not configured in the hub",
            code="customer.unknown_legal_entity",
            owner=Owner.INTEGRATION,
            record=customer.source_id,
        )
    if not entity.active or subsidiary_active is not True:
        state = "does not exist" if subsidiary_active is None else "is inactive"
        raise BusinessRuleError(
            f"{who} would be created under subsidiary '{entity.name}' ({entity.code}), which {state} in "
            "the ERP. Ask finance to activate the subsidiary, or correct the account's region in the CRM.",
            code="customer.subsidiary_inactive",
            owner=Owner.FINANCE,
            record=customer.source_id,
        )
    allowed = set(entity.allowed_currencies) | {entity.base_currency}
    if customer.currency and customer.currency not in allowed:
        raise BusinessRuleError(
            f"{who} is set to bill in {customer.currency}, but {entity.name} only invoices in "
            f"{', '.join(sorted(allowed))}. Correct the account currency in the CRM.",
            code="customer.currency_not_allowed",
            owner=Owner.SALES_OPS,
            record=customer.source_id,
        )
    if customer.payment_terms and entity.payment_terms and customer.payment_terms not in entity.payment_terms:
        raise BusinessRuleError(
            f"{who} has payment terms '{customer.payment_terms}', which {entity.name} does not offer "
            f"(allowed: {', '.join(entity.payment_terms)}). Correct the terms in the CRM.",
            code="customer.payment_terms_invalid",
            owner=Owner.SALES_OPS,
            record=customer.source_id,
        )
    if customer.tax_region and entity.tax_regions and customer.tax_region not in entity.tax_regions:
        raise BusinessRuleError(
            f"{who} has tax region '{customer.tax_region}', which is not valid for {entity.name} "
            f"(valid: {', '.join(entity.tax_regions)}).",
            code="customer.tax_region_invalid",
            owner=Owner.FINANCE,
            record=customer.source_id,
        )
