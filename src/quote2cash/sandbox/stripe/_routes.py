"""The Stripe v1 resources the sandbox serves: path, method, accepted parameters, handler.

Each route names the parameters Stripe's endpoint takes (from its published
OpenAPI description); any other is refused with ``parameter_unknown`` before
anything runs, as Stripe does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quote2cash.sandbox.stripe._recurring import Billing
from quote2cash.sandbox.stripe._state import public
from quote2cash.sandbox.stripe._wire import Spec, StripeError, created_filter, list_spec, page

#: ``handler(billing, ids, params, api_version) -> (status, body)``
Handler = Callable[[Billing, tuple[str, ...], dict[str, Any], str], tuple[int, dict[str, Any]]]

_ADDRESS = {"city": str, "country": str, "line1": str, "line2": str, "postal_code": str, "state": str}
_PERIOD = {"start": int, "end": int}
_COLLECTION = ("charge_automatically", "send_invoice")

CUSTOMER = {
    "address": _ADDRESS,
    "balance": int,
    "description": str,
    "email": str,
    "invoice_prefix": str,
    "invoice_settings": {
        "default_payment_method": str,
        "footer": str,
        "custom_fields": [{"name": str, "value": str}],
    },
    "metadata": "meta",
    "name": str,
    "next_invoice_sequence": int,
    "payment_method": str,
    "phone": str,
    "preferred_locales": [str],
    "tax_exempt": ("exempt", "none", "reverse"),
}
PRODUCT = {
    "active": bool,
    "description": str,
    "id": str,
    "images": [str],
    "metadata": "meta",
    "name": str,
    "statement_descriptor": str,
    "tax_code": str,
    "unit_label": str,
    "url": str,
}
PRICE = {
    "active": bool,
    "billing_scheme": ("per_unit",),
    "currency": str,
    "lookup_key": str,
    "metadata": "meta",
    "nickname": str,
    "product": str,
    "product_data": {
        "name": str,
        "active": bool,
        "metadata": "meta",
        "statement_descriptor": str,
        "unit_label": str,
    },
    "recurring": {
        "interval": ("day", "month", "week", "year"),
        "interval_count": int,
        "usage_type": ("licensed",),
    },
    "tax_behavior": ("exclusive", "inclusive", "unspecified"),
    "unit_amount": int,
    "unit_amount_decimal": str,
}
ITEM = {
    "amount": int,
    "currency": str,
    "customer": str,
    "description": str,
    "discountable": bool,
    "invoice": str,
    "metadata": "meta",
    "period": _PERIOD,
    "price": str,
    "quantity": int,
    "tax_rates": [str],
    "unit_amount": int,
    "unit_amount_decimal": str,
}
INVOICE = {
    "auto_advance": bool,
    "collection_method": _COLLECTION,
    "currency": str,
    "customer": str,
    "days_until_due": int,
    "default_payment_method": str,
    "default_tax_rates": [str],
    "description": str,
    "due_date": int,
    "footer": str,
    "metadata": "meta",
    "pending_invoice_items_behavior": ("exclude", "include", "include_and_require"),
    "statement_descriptor": str,
}
SUBSCRIPTION = {
    "cancel_at_period_end": bool,
    "collection_method": _COLLECTION,
    "customer": str,
    "days_until_due": int,
    "default_payment_method": str,
    "default_tax_rates": [str],
    "items": [{"price": str, "quantity": int, "metadata": "meta"}],
    "metadata": "meta",
    "off_session": bool,
    "payment_behavior": (
        "allow_incomplete",
        "default_incomplete",
        "error_if_incomplete",
        "pending_if_incomplete",
    ),
    "proration_behavior": ("always_invoice", "create_prorations", "none"),
}
CREDIT_NOTE = {
    "amount": int,
    "credit_amount": int,
    "invoice": str,
    "lines": [
        {
            "amount": int,
            "description": str,
            "invoice_line_item": str,
            "quantity": int,
            "type": ("custom_line_item", "invoice_line_item"),
            "unit_amount": int,
        }
    ],
    "memo": str,
    "metadata": "meta",
    "out_of_band_amount": int,
    "reason": ("duplicate", "fraudulent", "order_change", "product_unsatisfactory"),
    "refund_amount": int,
}
TAX_RATE = {
    "active": bool,
    "country": str,
    "description": str,
    "display_name": str,
    "inclusive": bool,
    "jurisdiction": str,
    "metadata": "meta",
    "percentage": str,
    "tax_type": str,
}
ENDPOINT = {
    "api_version": str,
    "connect": bool,
    "description": str,
    "enabled_events": [str],
    "metadata": "meta",
    "url": str,
}


@dataclass(frozen=True)
class Route:
    """One endpoint: ``METHOD`` + path pattern, its parameters, its handler."""

    method: str
    pattern: re.Pattern[str]
    spec: Spec
    handler: Handler


def _ok(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, public(body)


def _lister(kind: str, url: str, **filters: str) -> Handler:
    """A list endpoint over one object type, filtered by equal fields (``param -> field``)."""

    def handle(b: Billing, ids: tuple[str, ...], q: dict[str, Any], v: str) -> tuple[int, dict[str, Any]]:
        created = created_filter(q)
        wanted = {field: q[param] for param, field in filters.items() if q.get(param) not in (None, "")}

        def keep(d: dict[str, Any]) -> bool:
            return created(d) and all(_field(d, f) == value for f, value in wanted.items())

        return 200, page(b.newest_first(kind, keep), q, url, view=public)

    return handle


def _field(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _events(b: Billing, ids: tuple[str, ...], q: dict[str, Any], v: str) -> tuple[int, dict[str, Any]]:
    created = created_filter(q)
    types = set(q.get("types") or []) | ({q["type"]} if q.get("type") else set())
    patterns = [re.compile("^" + re.escape(t).replace(r"\*", ".*") + "$") for t in types]

    def keep(d: dict[str, Any]) -> bool:
        return created(d) and (not patterns or any(p.match(d["type"]) for p in patterns))

    return 200, page(b.newest_first("event", keep), q, "/v1/events")


def _search(b: Billing, ids: tuple[str, ...], q: dict[str, Any], v: str) -> tuple[int, dict[str, Any]]:
    found = b.search_customers(q.get("query") or "")
    limit = q.get("limit") or 10
    if not 1 <= limit <= 100:
        raise StripeError("Invalid limit: must be an integer between 1 and 100", param="limit")
    start = int(q["page"]) if str(q.get("page") or "").isdigit() else 0
    chunk = found[start : start + limit]
    more = start + limit < len(found)
    return 200, {
        "object": "search_result",
        "data": [public(d) for d in chunk],
        "has_more": more,
        "next_page": str(start + limit) if more else None,
        "url": "/v1/customers/search",
    }


def _customer(b: Billing, ids: tuple[str, ...], q: dict[str, Any], v: str) -> tuple[int, dict[str, Any]]:
    doc = b.store.get("customer", ids[0])
    if doc is not None and doc.get("deleted"):
        return 200, {"id": doc["id"], "object": "customer", "deleted": True}
    return _ok(b.get("customer", ids[0]))


def _lines(kind: str) -> Handler:
    def handle(b: Billing, ids: tuple[str, ...], q: dict[str, Any], v: str) -> tuple[int, dict[str, Any]]:
        doc = b.get(kind, ids[0])
        return 200, page(doc["lines"]["data"], q, doc["lines"]["url"])

    return handle


def _get(kind: str) -> Handler:
    return lambda b, ids, q, v: _ok(b.get(kind, ids[0]))


_ID = r"([A-Za-z0-9_]+)"
_LIST = list_spec()
_NONE = Spec({})


def _r(method: str, path: str, spec: Spec | dict[str, Any], handler: Handler, *required: str) -> Route:
    pattern = re.compile("^/v1/" + path.replace("{id}", _ID) + "$")
    return Route(method, pattern, spec if isinstance(spec, Spec) else Spec(spec, required=required), handler)


ROUTES: list[Route] = [
    # customers
    _r("POST", "customers", CUSTOMER, lambda b, ids, p, v: _ok(b.create_customer(p))),
    _r("GET", "customers", list_spec(email=str), _lister("customer", "/v1/customers", email="email")),
    _r(
        "GET",
        "customers/search",
        Spec({"query": str, "limit": int, "page": str}, required=("query",)),
        _search,
    ),
    _r("GET", "customers/{id}", _NONE, _customer),
    _r("POST", "customers/{id}", CUSTOMER, lambda b, ids, p, v: _ok(b.update_customer(ids[0], p))),
    _r("DELETE", "customers/{id}", _NONE, lambda b, ids, p, v: (200, b.delete_customer(ids[0]))),
    # catalogue
    _r("POST", "products", PRODUCT, lambda b, ids, p, v: _ok(b.create_product(p)), "name"),
    _r("GET", "products", list_spec(active=bool), _lister("product", "/v1/products", active="active")),
    _r("GET", "products/{id}", _NONE, _get("product")),
    _r("POST", "products/{id}", PRODUCT, lambda b, ids, p, v: _ok(b.update_product(ids[0], p))),
    _r("POST", "prices", PRICE, lambda b, ids, p, v: _ok(b.create_price(p)), "currency"),
    _r(
        "GET",
        "prices",
        list_spec(active=bool, currency=str, product=str, type=("one_time", "recurring")),
        _lister("price", "/v1/prices", active="active", currency="currency", product="product", type="type"),
    ),
    _r("GET", "prices/{id}", _NONE, _get("price")),
    _r("POST", "prices/{id}", PRICE, lambda b, ids, p, v: _ok(b.update_price(ids[0], p))),
    _r(
        "POST",
        "tax_rates",
        TAX_RATE,
        lambda b, ids, p, v: _ok(b.create_tax_rate(p)),
        "display_name",
        "inclusive",
        "percentage",
    ),
    _r("GET", "tax_rates", list_spec(active=bool), _lister("tax_rate", "/v1/tax_rates", active="active")),
    _r("GET", "tax_rates/{id}", _NONE, _get("tax_rate")),
    # invoice items
    _r("POST", "invoiceitems", ITEM, lambda b, ids, p, v: _ok(b.create_item(p)), "customer"),
    _r(
        "GET",
        "invoiceitems",
        list_spec(customer=str, invoice=str),
        _lister("invoiceitem", "/v1/invoiceitems", customer="customer", invoice="invoice"),
    ),
    _r("GET", "invoiceitems/{id}", _NONE, _get("invoiceitem")),
    _r(
        "POST",
        "invoiceitems/{id}",
        {"description": str, "metadata": "meta"},
        lambda b, ids, p, v: _ok(b.update_item(ids[0], p)),
    ),
    _r("DELETE", "invoiceitems/{id}", _NONE, lambda b, ids, p, v: (200, b.delete_item(ids[0]))),
    # invoices
    _r("POST", "invoices", INVOICE, lambda b, ids, p, v: _ok(b.create_invoice(p, api_version=v)), "customer"),
    _r(
        "GET",
        "invoices",
        list_spec(
            customer=str,
            status=("draft", "open", "paid", "uncollectible", "void"),
            subscription=str,
            collection_method=_COLLECTION,
        ),
        _lister(
            "invoice",
            "/v1/invoices",
            customer="customer",
            status="status",
            subscription="subscription",
            collection_method="collection_method",
        ),
    ),
    _r("GET", "invoices/{id}", _NONE, _get("invoice")),
    _r(
        "POST",
        "invoices/{id}",
        {
            k: v
            for k, v in INVOICE.items()
            if k not in ("customer", "currency", "pending_invoice_items_behavior")
        },
        lambda b, ids, p, v: _ok(b.update_invoice(ids[0], p)),
    ),
    _r("DELETE", "invoices/{id}", _NONE, lambda b, ids, p, v: (200, b.delete_invoice(ids[0]))),
    _r("GET", "invoices/{id}/lines", _LIST, _lines("invoice")),
    _r(
        "POST",
        "invoices/{id}/finalize",
        {"auto_advance": bool},
        lambda b, ids, p, v: _ok(b.finalize(ids[0], p)),
    ),
    _r("POST", "invoices/{id}/send", _NONE, lambda b, ids, p, v: _ok(b.send(ids[0]))),
    _r(
        "POST",
        "invoices/{id}/pay",
        {"forgive": bool, "off_session": bool, "paid_out_of_band": bool, "payment_method": str},
        lambda b, ids, p, v: _ok(b.pay(ids[0], p)),
    ),
    _r("POST", "invoices/{id}/void", _NONE, lambda b, ids, p, v: _ok(b.void(ids[0]))),
    _r(
        "POST",
        "invoices/{id}/mark_uncollectible",
        _NONE,
        lambda b, ids, p, v: _ok(b.mark_uncollectible(ids[0])),
    ),
    # payments
    _r(
        "GET",
        "charges",
        list_spec(customer=str, invoice=str),
        _lister("charge", "/v1/charges", customer="customer", invoice="invoice"),
    ),
    _r("GET", "charges/{id}", _NONE, _get("charge")),
    _r(
        "POST",
        "refunds",
        {
            "amount": int,
            "charge": str,
            "metadata": "meta",
            "reason": ("duplicate", "fraudulent", "requested_by_customer"),
        },
        lambda b, ids, p, v: _ok(b.refund(p)),
    ),
    _r("GET", "refunds", list_spec(charge=str), _lister("refund", "/v1/refunds", charge="charge")),
    _r("GET", "refunds/{id}", _NONE, _get("refund")),
    # credit notes
    _r("POST", "credit_notes", CREDIT_NOTE, lambda b, ids, p, v: _ok(b.create_credit_note(p)), "invoice"),
    _r(
        "GET",
        "credit_notes",
        list_spec(customer=str, invoice=str),
        _lister("credit_note", "/v1/credit_notes", customer="customer", invoice="invoice"),
    ),
    _r("GET", "credit_notes/{id}", _NONE, _get("credit_note")),
    _r("GET", "credit_notes/{id}/lines", _LIST, _lines("credit_note")),
    _r("POST", "credit_notes/{id}/void", _NONE, lambda b, ids, p, v: _ok(b.void_credit_note(ids[0]))),
    # subscriptions
    _r("POST", "subscriptions", SUBSCRIPTION, lambda b, ids, p, v: _ok(b.create_subscription(p)), "customer"),
    _r(
        "GET",
        "subscriptions",
        list_spec(customer=str, price=str, status=("active", "canceled", "incomplete", "past_due", "all")),
        _lister("subscription", "/v1/subscriptions", customer="customer", status="status"),
    ),
    _r("GET", "subscriptions/{id}", _NONE, _get("subscription")),
    _r(
        "POST",
        "subscriptions/{id}",
        {"cancel_at_period_end": bool, "default_payment_method": str, "metadata": "meta"},
        lambda b, ids, p, v: _ok(b.update_subscription(ids[0], p)),
    ),
    _r(
        "DELETE",
        "subscriptions/{id}",
        {"invoice_now": bool, "prorate": bool},
        lambda b, ids, p, v: _ok(b.cancel_subscription(ids[0])),
    ),
    # events and webhook endpoints
    _r("GET", "events", list_spec(type=str, types=[str], delivery_success=bool), _events),
    _r("GET", "events/{id}", _NONE, _get("event")),
    _r(
        "POST",
        "webhook_endpoints",
        ENDPOINT,
        lambda b, ids, p, v: (200, b.create_endpoint(p)),
        "url",
        "enabled_events",
    ),
    _r("GET", "webhook_endpoints", _LIST, _lister("webhook_endpoint", "/v1/webhook_endpoints")),
    _r("GET", "webhook_endpoints/{id}", _NONE, _get("webhook_endpoint")),
    _r(
        "POST",
        "webhook_endpoints/{id}",
        {"description": str, "disabled": bool, "enabled_events": [str], "metadata": "meta", "url": str},
        lambda b, ids, p, v: _ok(b.update_endpoint(ids[0], p)),
    ),
    _r("DELETE", "webhook_endpoints/{id}", _NONE, lambda b, ids, p, v: (200, b.delete_endpoint(ids[0]))),
]


def route(method: str, path: str) -> tuple[Route, tuple[str, ...]]:
    """The route of a request; Stripe's 404 for a URL it does not know."""
    for r in ROUTES:
        match = r.pattern.match(path)
        if match and r.method == method:
            return r, match.groups()
    raise StripeError(
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
        "https://support.stripe.com/.",
        status=404,
    )
