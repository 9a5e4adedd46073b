"""The Stripe account a sandbox emulates: its objects, clock, events and the simple resources.

Objects are stored as the API shows them (the 2022-04-12 shapes of Stripe's
published OpenAPI description) in the sandbox's DocStore, one kind per
object type, so a restart on the same file keeps them. Every change emits an
event (``customer.created``, ``invoice.finalized``, …) that is listed by
``/v1/events`` and handed to the webhook deliverer.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from quote2cash.sandbox._base import DocStore
from quote2cash.sandbox.stripe._wire import (
    StripeError,
    check_amount,
    check_currency,
    merge_metadata,
    missing,
    new_id,
)

#: Object type of each id prefix (for ``expand`` and error messages).
PREFIXES = {
    "cus": "customer",
    "prod": "product",
    "price": "price",
    "ii": "invoiceitem",
    "in": "invoice",
    "sub": "subscription",
    "si": "subscription_item",
    "cn": "credit_note",
    "ch": "charge",
    "re": "refund",
    "txr": "tax_rate",
    "evt": "event",
    "we": "webhook_endpoint",
}
#: Test payment methods Stripe accepts by name, and the decline each one causes (None: succeeds).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str] | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_amex": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
}
_UPPER = string.ascii_uppercase + string.digits
_SEARCH_CLAUSE = re.compile(
    r"""^\s*(metadata\[['"]([^'"]+)['"]\]|email|name|phone)\s*:\s*['"]([^'"]*)['"]\s*$"""
)


class Account:
    """One Stripe account's objects, with the operations of the simple resources.

    Attributes:
        store: where objects live (kind = object type).
        on_event: called with each new event (the webhook deliverer listens here).
        clock_offset: seconds added to the wall clock (:meth:`now`), moved by ``advance``.
    """

    def __init__(self, store: DocStore) -> None:
        self.store = store
        self.on_event: Callable[[dict[str, Any]], None] = lambda event: None
        self.clock_offset = 0.0
        self.request = threading.local()

    # -- basics -----------------------------------------------------------------------------
    def now(self) -> int:
        """The account's clock, in Unix seconds."""
        return int(time.time() + self.clock_offset)

    def make_id(self, prefix: str) -> str:
        """A new id with ``prefix`` (creation order is text order)."""
        return new_id(prefix, self.store.next_id(f"stripe_id:{prefix}", 0))

    def get(self, kind: str, id_: str, *, param: str = "id", status: int = 404) -> dict[str, Any]:
        """The stored object, or Stripe's ``resource_missing``."""
        doc = self.store.get(kind, id_) if isinstance(id_, str) else None
        if doc is None or doc.get("deleted"):
            raise missing(kind, str(id_), param=param, status=status)
        return doc

    def ref(self, kind: str, id_: Any, param: str) -> dict[str, Any]:
        """An object named by a parameter (a missing one is a 400)."""
        return self.get(kind, id_, param=param, status=400)

    def save(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store an object under its type."""
        return self.store.put(doc["object"], doc["id"], doc)

    def newest_first(
        self, kind: str, keep: Callable[[dict[str, Any]], bool] = lambda d: True
    ) -> list[dict[str, Any]]:
        """Every live object of a type, newest first (ids sort by creation)."""
        docs = [d for d in self.store.all(kind) if not d.get("deleted") and keep(d)]
        return sorted(docs, key=lambda d: d["id"], reverse=True)

    def emit(self, type_: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record an event about ``obj`` and hand it to the webhook deliverer."""
        event: dict[str, Any] = {
            "id": self.make_id("evt"),
            "object": "event",
            "api_version": getattr(self.request, "version", None) or "2022-04-12",
            "created": self.now(),
            "data": {"object": deepcopy(public(obj))},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": getattr(self.request, "id", None),
                "idempotency_key": getattr(self.request, "idempotency_key", None),
            },
            "type": type_,
        }
        if previous is not None:
            event["data"]["previous_attributes"] = previous
        self.save(event)
        self.on_event(event)
        return event

    def update(self, doc: dict[str, Any], changes: dict[str, Any], event: str | None) -> dict[str, Any]:
        """Apply changes to an object, save it and emit ``event`` with the previous values."""
        previous = {k: deepcopy(doc.get(k)) for k, v in changes.items() if doc.get(k) != v}
        doc.update(changes)
        self.save(doc)
        if event is not None and previous:
            self.emit(event, doc, previous)
        return doc

    def expand(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        """A copy of ``obj`` with the named id fields replaced by their objects."""
        out = deepcopy(obj)
        for path in paths:
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head not in node:
            raise StripeError(f"This property cannot be expanded ({path}).", param="expand")
        value = node[head]
        if isinstance(value, str):
            kind = PREFIXES.get(value.split("_", 1)[0])
            if kind is None:
                raise StripeError(f"This property cannot be expanded ({path}).", param="expand")
            node[head] = value = deepcopy(public(self.get(kind, value)))
        if isinstance(value, list):
            for item in value:
                self._expand(item, rest, path)
        elif isinstance(value, dict):
            self._expand(value, rest, path)
        elif value is not None:
            raise StripeError(f"This property cannot be expanded ({path}).", param="expand")

    # -- customers ----------------------------------------------------------------------------
    def create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/customers``."""
        default_pm = p.get("payment_method") or (p.get("invoice_settings") or {}).get(
            "default_payment_method"
        )
        if default_pm:
            self.payment_method(default_pm, "payment_method")
        doc: dict[str, Any] = {
            "id": self.make_id("cus"),
            "object": "customer",
            "address": p.get("address") or None,
            "balance": p.get("balance") or 0,
            "created": self.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": p.get("description") or None,
            "discount": None,
            "email": p.get("email") or None,
            "invoice_prefix": p.get("invoice_prefix") or "".join(secrets.choice(_UPPER) for _ in range(8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": default_pm or None,
                "footer": (p.get("invoice_settings") or {}).get("footer") or None,
            },
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "name": p.get("name") or None,
            "next_invoice_sequence": p.get("next_invoice_sequence") or 1,
            "phone": p.get("phone") or None,
            "preferred_locales": p.get("preferred_locales") or [],
            "shipping": None,
            "tax_exempt": p.get("tax_exempt") or "none",
            "test_clock": None,
        }
        self.save(doc)
        self.emit("customer.created", doc)
        return doc

    def update_customer(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/customers/{id}``."""
        doc = self.get("customer", id_)
        changes: dict[str, Any] = {}
        for key in ("name", "email", "description", "phone", "address", "tax_exempt", "invoice_prefix"):
            if key in p:
                changes[key] = p[key] or (None if key != "tax_exempt" else "none")
        if "balance" in p:
            changes["balance"] = p["balance"] or 0
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        settings = dict(doc["invoice_settings"])
        for key, value in (p.get("invoice_settings") or {}).items():
            if key == "default_payment_method" and value:
                self.payment_method(value, "invoice_settings[default_payment_method]")
            settings[key] = value or None
        if settings != doc["invoice_settings"]:
            changes["invoice_settings"] = settings
        return self.update(doc, changes, "customer.updated")

    def delete_customer(self, id_: str) -> dict[str, Any]:
        """``DELETE /v1/customers/{id}``: the customer is gone, a tombstone answers."""
        doc = self.get("customer", id_)
        self.store.put("customer", id_, {**doc, "deleted": True})
        self.emit("customer.deleted", doc)
        return {"id": id_, "object": "customer", "deleted": True}

    def search_customers(self, query: str) -> list[dict[str, Any]]:
        """``GET /v1/customers/search``: clauses ``field:'value'`` joined by ``AND``."""
        tests: list[Callable[[dict[str, Any]], bool]] = []
        for clause in re.split(r"\s+AND\s+", query.strip()) if query.strip() else []:
            match = _SEARCH_CLAUSE.match(clause)
            if match is None:
                raise StripeError(
                    f"Invalid search query: {query!r}. Supported here: field:'value' clauses on "
                    "metadata['key'], email, name, phone joined by AND.",
                    param="query",
                )
            field, meta_key, value = match.groups()
            tests.append(_matcher(field, meta_key, value))
        if not tests:
            raise StripeError("Missing required param: query.", code="parameter_missing", param="query")
        return self.newest_first("customer", lambda d: all(t(d) for t in tests))

    def payment_method(self, id_: Any, param: str) -> str:
        """A test payment method by name, or ``resource_missing``."""
        if id_ not in TEST_PAYMENT_METHODS:
            raise StripeError(
                f"No such PaymentMethod: '{id_}'", code="resource_missing", param=param, status=400
            )
        return str(id_)

    # -- products and prices ---------------------------------------------------------------
    def create_product(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/products``."""
        id_ = p.get("id") or self.make_id("prod")
        if self.store.get("product", id_) is not None:
            raise StripeError(
                f"Product already exists with ID '{id_}'.", code="resource_already_exists", param="id"
            )
        now = self.now()
        doc = {
            "id": id_,
            "object": "product",
            "active": p.get("active", True) if p.get("active") != "" else True,
            "created": now,
            "description": p.get("description") or None,
            "images": p.get("images") or [],
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "name": p["name"],
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": p.get("statement_descriptor") or None,
            "tax_code": p.get("tax_code") or None,
            "unit_label": p.get("unit_label") or None,
            "updated": now,
            "url": p.get("url") or None,
        }
        self.save(doc)
        self.emit("product.created", doc)
        return doc

    def update_product(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/products/{id}``."""
        doc = self.get("product", id_)
        changes: dict[str, Any] = {
            k: (p[k] or None) for k in ("name", "description", "unit_label", "url") if k in p
        }
        if "active" in p:
            changes["active"] = bool(p["active"])
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        if changes:
            changes["updated"] = self.now()
        return self.update(doc, changes, "product.updated")

    def create_price(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/prices``: one-time or recurring, per unit."""
        currency = check_currency(p["currency"])
        if p.get("product") and p.get("product_data"):
            raise StripeError(
                "You may only specify one of these parameters: product, product_data.", param="product"
            )
        if p.get("product"):
            product = self.ref("product", p["product"], "product")["id"]
        elif p.get("product_data"):
            product = self.create_product({"name": p["product_data"].get("name"), **p["product_data"]})["id"]
        else:
            raise StripeError("Missing required param: product.", code="parameter_missing", param="product")
        unit_amount, decimal = p.get("unit_amount"), p.get("unit_amount_decimal")
        if unit_amount not in (None, "") and decimal not in (None, ""):
            raise StripeError(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                param="unit_amount",
            )
        if unit_amount in (None, "") and decimal in (None, ""):
            raise StripeError(
                "Missing required param: unit_amount.", code="parameter_missing", param="unit_amount"
            )
        if unit_amount not in (None, ""):
            check_amount(unit_amount, currency, "unit_amount")
            decimal = str(unit_amount)
        recurring = p.get("recurring") or None
        if recurring is not None:
            recurring = {
                "aggregate_usage": None,
                "interval": recurring["interval"],
                "interval_count": recurring.get("interval_count") or 1,
                "usage_type": recurring.get("usage_type") or "licensed",
            }
        doc = {
            "id": self.make_id("price"),
            "object": "price",
            "active": p.get("active", True) if p.get("active") != "" else True,
            "billing_scheme": "per_unit",
            "created": self.now(),
            "currency": currency,
            "livemode": False,
            "lookup_key": p.get("lookup_key") or None,
            "metadata": merge_metadata({}, p.get("metadata")),
            "nickname": p.get("nickname") or None,
            "product": product,
            "recurring": recurring,
            "tax_behavior": p.get("tax_behavior") or "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount if unit_amount not in (None, "") else _whole(decimal),
            "unit_amount_decimal": str(decimal),
        }
        self.save(doc)
        self.emit("price.created", doc)
        return doc

    def update_price(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/prices/{id}``: metadata, nickname, active, lookup key."""
        doc = self.get("price", id_)
        changes: dict[str, Any] = {k: (p[k] or None) for k in ("nickname", "lookup_key") if k in p}
        if "active" in p:
            changes["active"] = bool(p["active"])
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        return self.update(doc, changes, "price.updated")

    # -- tax rates -------------------------------------------------------------------------------
    def create_tax_rate(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/tax_rates``."""
        try:
            percentage = float(p["percentage"])
        except ValueError:
            raise StripeError(f"Invalid decimal: {p['percentage']}", param="percentage") from None
        if not 0 <= percentage <= 100:
            raise StripeError("Invalid percentage: must be between 0 and 100", param="percentage")
        doc = {
            "id": self.make_id("txr"),
            "object": "tax_rate",
            "active": p.get("active", True) if p.get("active") != "" else True,
            "country": p.get("country") or None,
            "created": self.now(),
            "description": p.get("description") or None,
            "display_name": p["display_name"],
            "inclusive": p["inclusive"],
            "jurisdiction": p.get("jurisdiction") or None,
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "percentage": percentage,
            "state": None,
            "tax_type": p.get("tax_type") or None,
        }
        self.save(doc)
        self.emit("tax_rate.created", doc)
        return doc

    # -- webhook endpoints ------------------------------------------------------------------------
    def create_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/webhook_endpoints``; only this answer carries the signing secret."""
        if not re.match(r"^https?://", p["url"]):
            raise StripeError(f"Invalid URL: {p['url']}", code="url_invalid", param="url")
        doc = {
            "id": self.make_id("we"),
            "object": "webhook_endpoint",
            "api_version": p.get("api_version") or None,
            "application": None,
            "created": self.now(),
            "description": p.get("description") or None,
            "enabled_events": p["enabled_events"],
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "secret": "whsec_" + secrets.token_urlsafe(24),
            "status": "enabled",
            "url": p["url"],
        }
        self.save(doc)
        return doc

    def update_endpoint(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/webhook_endpoints/{id}``."""
        doc = self.get("webhook_endpoint", id_)
        changes: dict[str, Any] = {k: p[k] for k in ("url", "enabled_events") if k in p}
        if "description" in p:
            changes["description"] = p["description"] or None
        if "disabled" in p:
            changes["status"] = "disabled" if p["disabled"] else "enabled"
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        return self.update(doc, changes, None)

    def delete_endpoint(self, id_: str) -> dict[str, Any]:
        """``DELETE /v1/webhook_endpoints/{id}``."""
        self.get("webhook_endpoint", id_)
        self.store.delete("webhook_endpoint", id_)
        return {"id": id_, "object": "webhook_endpoint", "deleted": True}


#: Fields the sandbox keeps on an object that the API does not show.
_HIDDEN = {"webhook_endpoint": ("secret",), "invoice": ("subscription_lines", "days_until_due")}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """An object as a retrieve answers it (a webhook endpoint's secret is shown only at creation)."""
    hidden = _HIDDEN.get(str(doc.get("object")))
    if hidden:
        return {k: v for k, v in doc.items() if k not in hidden}
    return doc


def _matcher(field: str, meta_key: str | None, value: str) -> Callable[[dict[str, Any]], bool]:
    if meta_key is not None:
        return lambda d: d["metadata"].get(meta_key) == value
    return lambda d: d.get(field) == value


def _whole(decimal: Any) -> int | None:
    text = str(decimal)
    return int(text) if re.fullmatch(r"-?\d+", text) else None
