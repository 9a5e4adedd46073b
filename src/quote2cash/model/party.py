"""Parties: customers (with their legal entity) and contacts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from quote2cash.model.common import Canonical
from quote2cash.model.money import CurrencyCode


class LegalEntity(BaseModel):
    """A subsidiary of the firm that contracts and books revenue."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="hub code of the legal entity, e.g. 'US01'")
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    base_currency: CurrencyCode
    allowed_currencies: tuple[str, ...] = ()
    tax_regions: tuple[str, ...] = ()
    payment_terms: tuple[str, ...] = ()
    active: bool = True


class Customer(Canonical):
    """A client of the firm, contracting with one legal entity."""

    name: str = Field(min_length=1)
    website: str | None = None
    domain: str | None = Field(default=None, description="normalised web domain, for identity matching")
    tax_id: str | None = None
    country: str | None = None
    region: str | None = Field(default=None, description="CRM sales region; maps to a legal entity")
    legal_entity: str | None = Field(default=None, description="legal entity code")
    currency: CurrencyCode | None = None
    payment_terms: str | None = None
    tax_region: str | None = None
    industry: str | None = None


class Contact(Canonical):
    """A person at a customer."""

    customer_id: str
    first_name: str | None = None
    last_name: str
    email: str | None = None
    phone: str | None = None
    title: str | None = None
