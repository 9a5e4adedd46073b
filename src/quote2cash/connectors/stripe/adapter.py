"""Stripe Billing as the hub's billing system (:class:`quote2cash.ports.Billing`).

Every write carries a deterministic idempotency key derived from the hub's
external id, so a step that runs again (after a crash or an in-doubt
timeout) gets Stripe's first answer instead of a second record. Stripe keeps
keys for 24 hours, so records also carry the hub's ids in ``metadata``
(``q2c_external_id`` on customers, ``q2c_key`` on invoices, items,
subscriptions and credit notes) and are looked up by them before a create.

Invoices are sent to customers (``collection_method=send_invoice``) with
``auto_advance=false``: the hub finalizes and sends them itself. Amounts are
converted to Stripe's units of the invoice currency (:mod:`.amounts`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
import structlog

from quote2cash.connectors._http import Limiter, RetryPolicy
from quote2cash.connectors.stripe.amounts import exact, from_stripe, to_stripe
from quote2cash.connectors.stripe.client import StripeApi, idempotency_key
from quote2cash.connectors.stripe.settings import StripeSettings
from quote2cash.connectors.stripe.webhooks import CHANGES, billing_event
from quote2cash.errors import BusinessRuleError, HubError, NotFoundError, VendorPayloadError
from quote2cash.model import Customer, Invoice, InvoiceLine, InvoiceStatus, IssuedInvoice, Money
from quote2cash.ports import BilledInvoice, BillingChanges, Capabilities, SourceEvent

log = structlog.get_logger("quote2cash.stripe")

_STATUS = {s.value: s for s in InvoiceStatus}
_PAGE = 100


def _quoted(value: str) -> str:
    # Search queries quote values with single quotes; a quote inside is escaped.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _any(params: dict[str, Any]) -> Any:
    # The SDK types its parameters as TypedDicts; the adapter builds them as plain dicts.
    return params


def _opts(key: str) -> Any:
    return {"idempotency_key": key}


class StripeBilling:
    """The billing port over one Stripe account."""

    def __init__(self, name: str, api: StripeApi, settings: StripeSettings) -> None:
        self.name = name
        self.api = api
        self.settings = settings
        self.capabilities = Capabilities(
            bulk_size=1, external_references=True, max_concurrency=settings.limits.concurrency
        )

    @property
    def calls(self) -> int:
        """Requests sent so far."""
        return self.api.calls

    @property
    def retries(self) -> int:
        """Requests retried so far."""
        return self.api.retries

    def close(self) -> None:
        """Release connections."""
        self.api.close()

    @property
    def v1(self) -> Any:
        """The SDK's v1 services."""
        return self.api.sdk.v1

    # -- customers -------------------------------------------------------------------------------
    def upsert_customer(self, customer: Customer, external_id: str) -> str:
        """Find the customer by ``metadata[q2c_external_id]`` and update it, or create it."""
        params: dict[str, Any] = {
            "name": customer.name,
            "metadata": {
                "q2c_external_id": external_id,
                "q2c_source": f"{customer.source_system}:{customer.source_id}",
                "q2c_legal_entity": customer.legal_entity or "",
                "tax_id": customer.tax_id or "",
                "website": customer.website or "",
            },
        }
        if customer.country:
            params["address"] = {"country": customer.country}
        found = self.find_customer(external_id)
        if found is not None:
            self.api.call(
                lambda: self.v1.customers.update(
                    found,
                    _any(params),
                    _opts(idempotency_key("customer", external_id, "update", _digest(params))),
                ),
                what="update customer",
                record=external_id,
            )
            return found
        created = self.api.call(
            lambda: self.v1.customers.create(_any(params), _opts(idempotency_key("customer", external_id))),
            what="create customer",
            record=external_id,
        )
        return str(created.id)

    def find_customer(self, external_id: str) -> str | None:
        """The Stripe id of the customer carrying the hub's external id, if there is one."""
        query = f"metadata['q2c_external_id']:{_quoted(external_id)}"
        result = self.api.call(
            lambda: self.v1.customers.search(_any({"query": query, "limit": 10})),
            what="search customers",
            record=external_id,
        )
        ids = [str(c.id) for c in result.data]
        if len(ids) > 1:
            raise BusinessRuleError(
                f"{len(ids)} Stripe customers carry the hub's external id {external_id}: {', '.join(ids)}",
                code="vendor.ambiguous_match",
                system="stripe",
                record=external_id,
                details={"ids": ids},
            )
        return ids[0] if ids else None

    # -- invoices ----------------------------------------------------------------------------------
    def create_invoice(self, invoice: Invoice, billing_customer_id: str, idempotency_key_: str) -> str:
        """A draft invoice with one invoice item per line; the same key returns the same invoice.

        A draft left by an earlier attempt (found by ``metadata[q2c_key]``) is
        completed with the lines it lacks.
        """
        key = idempotency_key_
        currency = invoice.currency
        for line in invoice.lines:
            if line.unit_amount.currency != currency:
                raise BusinessRuleError(
                    f"invoice {invoice.source_id} is in {currency} but a line is in {line.unit_amount.currency}",
                    code="vendor.rejected",
                    system="stripe",
                    record=key,
                    details={"vendor_code": "currency_mismatch"},
                )
        existing = self._find_invoice(billing_customer_id, key)
        if existing is None:
            params = {
                "customer": billing_customer_id,
                "currency": currency.lower(),
                "collection_method": "send_invoice",
                "days_until_due": self._days_until_due(invoice),
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "metadata": {
                    "q2c_key": key,
                    "q2c_customer_id": invoice.customer_id,
                    "q2c_source": f"{invoice.source_system}:{invoice.source_id}",
                    "q2c_legal_entity": invoice.legal_entity or "",
                },
            }
            if self.settings.statement_descriptor:
                params["statement_descriptor"] = self.settings.statement_descriptor
            created = self.api.call(
                lambda: self.v1.invoices.create(_any(params), _opts(idempotency_key("invoice", key))),
                what="create invoice",
                record=key,
            )
            existing = _plain(created)
        invoice_id = str(existing["id"])
        if existing.get("status") != "draft":
            return invoice_id
        present = {
            str((line.get("metadata") or {}).get("q2c_line"))
            for line in self._lines(invoice_id)
            if (line.get("metadata") or {}).get("q2c_key") == key
        }
        for n, line in enumerate(invoice.lines):
            if str(n) in present:
                continue
            item = self._item_params(line, n, key, billing_customer_id, invoice_id, currency)
            self.api.call(
                functools.partial(
                    self.v1.invoice_items.create,
                    _any(item),
                    _opts(idempotency_key("invoice", key, "line", str(n))),
                ),
                what="create invoice item",
                record=f"{key}/{n}",
            )
        return invoice_id

    def _days_until_due(self, invoice: Invoice) -> int:
        if invoice.due_date and invoice.issue_date:
            return max((invoice.due_date - invoice.issue_date).days, 0)
        return self.settings.days_until_due

    @staticmethod
    def _item_params(
        line: InvoiceLine, n: int, key: str, customer: str, invoice_id: str, currency: str
    ) -> dict[str, Any]:
        quantity, unit = line.quantity, line.unit_amount.amount
        metadata = {
            "q2c_key": key,
            "q2c_line": str(n),
            "q2c_quantity": str(quantity),
            "q2c_unit_amount": str(unit),
            "q2c_source_ref": line.source_ref or "",
            "q2c_project_id": line.project_id or "",
        }
        params: dict[str, Any] = {
            "customer": customer,
            "invoice": invoice_id,
            "currency": currency.lower(),
            "description": line.description,
            "metadata": metadata,
        }
        if quantity == quantity.to_integral_value() and exact(unit, currency):
            # Whole quantities of an amount Stripe can carry: Stripe shows quantity × unit price.
            params.update(quantity=int(quantity), unit_amount=to_stripe(unit, currency))
        else:
            # Fractional hours or sub-unit rates: the line total, rounded once, with the terms in the text.
            params.update(amount=to_stripe(unit * quantity, currency))
            params["description"] = (
                f"{line.description} ({quantity.normalize()} × {unit.normalize()} {currency})"
            )
        return params

    def _find_invoice(self, customer: str, key: str) -> dict[str, Any] | None:
        for doc in self._pages(
            lambda after: self.v1.invoices.list(_any({"customer": customer, "limit": _PAGE, **after})),
            "list invoices",
            key,
        ):
            if (doc.get("metadata") or {}).get("q2c_key") == key:
                return doc
        return None

    def _lines(self, invoice_id: str) -> list[dict[str, Any]]:
        return list(
            self._pages(
                lambda after: self.v1.invoices.line_items.list(invoice_id, _any({"limit": _PAGE, **after})),
                "list invoice lines",
                invoice_id,
            )
        )

    def _pages(
        self, fetch: Callable[[dict[str, Any]], Any], what: str, record: str
    ) -> Iterator[dict[str, Any]]:
        after: dict[str, Any] = {}
        while True:
            page = self.api.call(functools.partial(fetch, after), what=what, record=record)
            data = [_plain(d) for d in page.data]
            yield from data
            if not page.has_more or not data:
                return
            after = {"starting_after": data[-1]["id"]}

    def finalize_invoice(self, invoice_id: str) -> IssuedInvoice:
        """Finalize and send the invoice (each step once); returns it with its number and status."""
        doc = self._retrieve(invoice_id)
        if doc["status"] == "draft":
            doc = _plain(
                self.api.call(
                    lambda: self.v1.invoices.finalize_invoice(
                        invoice_id,
                        _any({"auto_advance": False}),
                        _opts(idempotency_key("finalize", invoice_id)),
                    ),
                    what="finalize invoice",
                    record=invoice_id,
                )
            )
        if doc["status"] == "open" and doc.get("collection_method") == "send_invoice":
            doc = _plain(
                self.api.call(
                    lambda: self.v1.invoices.send_invoice(
                        invoice_id, None, _opts(idempotency_key("send", invoice_id))
                    ),
                    what="send invoice",
                    record=invoice_id,
                )
            )
        return self.canonical(doc)

    def get_invoice(self, invoice_id: str) -> IssuedInvoice:
        """The invoice as Stripe holds it now."""
        return self.canonical(self._retrieve(invoice_id))

    def _retrieve(self, invoice_id: str) -> dict[str, Any]:
        return _plain(
            self.api.call(
                lambda: self.v1.invoices.retrieve(invoice_id), what="retrieve invoice", record=invoice_id
            )
        )

    def void_invoice(self, invoice_id: str) -> None:
        """Void an open invoice; a draft is deleted (Stripe voids only finalized invoices)."""
        doc = self._retrieve(invoice_id)
        status = doc["status"]
        if status == "void":
            return
        if status == "draft":
            try:
                self.api.call(
                    lambda: self.v1.invoices.delete(invoice_id),
                    what="delete draft invoice",
                    record=invoice_id,
                )
            except NotFoundError:
                return
            return
        if status not in ("open", "uncollectible"):
            raise BusinessRuleError(
                f"invoice {doc.get('number') or invoice_id} is {status}: it cannot be voided; issue a credit note",
                code="vendor.rejected",
                system="stripe",
                record=invoice_id,
                details={"vendor_code": "invoice_not_voidable", "status": status},
            )
        self.api.call(
            lambda: self.v1.invoices.void_invoice(
                invoice_id, None, _opts(idempotency_key("void", invoice_id))
            ),
            what="void invoice",
            record=invoice_id,
        )

    def canonical(self, doc: dict[str, Any]) -> IssuedInvoice:
        """A Stripe invoice as the hub's canonical invoice (with Stripe's number and amounts)."""
        try:
            currency = str(doc["currency"]).upper()
            metadata = doc.get("metadata") or {}
            raw = doc["lines"]["data"] if not doc["lines"].get("has_more") else self._lines(str(doc["id"]))
            lines = [self._line(line, currency) for line in _in_hub_order(raw)]
            if not lines:
                raise VendorPayloadError(
                    f"stripe invoice {doc['id']} has no lines", system="stripe", record=str(doc["id"])
                )

            def money(units: Any) -> Money:
                return Money.of(from_stripe(units or 0, currency), currency)

            finalized = (doc.get("status_transitions") or {}).get("finalized_at")
            return IssuedInvoice(
                source_system="stripe",
                source_id=str(doc["id"]),
                source_version=str(doc.get("status")),
                customer_id=str(metadata.get("q2c_customer_id") or doc.get("customer")),
                currency=currency,
                lines=lines,
                status=_STATUS.get(str(doc.get("status")), InvoiceStatus.DRAFT),
                issue_date=_day(finalized),
                due_date=_day(doc.get("due_date")),
                legal_entity=metadata.get("q2c_legal_entity") or None,
                number=doc.get("number"),
                subtotal=money(doc["subtotal"]),
                tax=money(doc.get("tax")),
                amount_total=money(doc["total"]),
                amount_due=money(doc["amount_due"]),
                amount_paid=money(doc["amount_paid"]),
                amount_remaining=money(doc["amount_remaining"]),
                hosted_url=doc.get("hosted_invoice_url"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VendorPayloadError(
                f"stripe invoice {doc.get('id')} cannot be read: {type(exc).__name__}: {exc}",
                system="stripe",
                record=str(doc.get("id")),
            ) from exc

    @staticmethod
    def _line(line: dict[str, Any], currency: str) -> InvoiceLine:
        metadata = line.get("metadata") or {}
        if metadata.get("q2c_quantity") and metadata.get("q2c_unit_amount"):
            quantity, unit = Decimal(metadata["q2c_quantity"]), Decimal(metadata["q2c_unit_amount"])
        else:
            quantity = Decimal(line.get("quantity") or 1)
            unit = from_stripe(line["amount"], currency) / quantity
        return InvoiceLine(
            description=str(line.get("description") or ""),
            quantity=quantity,
            unit_amount=Money.of(unit, currency),
            project_id=metadata.get("q2c_project_id") or None,
            source_ref=metadata.get("q2c_source_ref") or None,
        )

    def invoices_between(self, start: date, end: date) -> list[BilledInvoice]:
        """Finalized invoices created from ``start`` to ``end`` (both included), for reconciliation."""
        gte = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        lt = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp()) + 86400
        out = []
        for doc in self._pages(
            lambda after: self.v1.invoices.list(
                _any({"created": {"gte": gte, "lt": lt}, "limit": _PAGE, **after})
            ),
            "list invoices",
            f"{start}..{end}",
        ):
            if doc.get("status") == "draft":
                continue
            out.append(
                BilledInvoice(
                    id=str(doc["id"]),
                    number=doc.get("number"),
                    status=str(doc.get("status")),
                    currency=str(doc["currency"]).upper(),
                    total_minor=int(doc.get("total") or 0),
                    tax_minor=int(doc.get("tax") or 0),
                    hub_key=(doc.get("metadata") or {}).get("q2c_key") or None,
                )
            )
        return out

    # -- changes, for when a webhook was missed ---------------------------------------------------
    def changes_since(self, cursor: str | None) -> BillingChanges:
        """The invoice events after the cursor (a Stripe event id), oldest first, translated as
        the webhook route translates them; from the oldest Stripe keeps (30 days) when None."""
        query: dict[str, Any] = {"types": sorted(CHANGES), "limit": _PAGE}
        events: list[dict[str, Any]] = []
        if cursor is None:
            listed = self._pages(
                lambda after: self.v1.events.list(_any({**query, **after})), "list events", "*"
            )
            events = list(listed)
            events.reverse()
        else:
            before = cursor
            while True:
                try:
                    page = self.api.call(
                        functools.partial(self.v1.events.list, _any({**query, "ending_before": before})),
                        what="list events",
                        record=cursor,
                    )
                except NotFoundError:
                    # Stripe keeps events 30 days: a cursor older than that is read from the oldest
                    # kept again (what was accepted before is a duplicate by its event id).
                    log.warning("stripe.events_cursor_expired", cursor=cursor)
                    return self.changes_since(None)
                data = [_plain(e) for e in page.data]
                events.extend(reversed(data))
                if not page.has_more or not data:
                    break
                before = data[0]["id"]
        changes: list[SourceEvent] = []
        unreadable: list[HubError] = []
        for event in events:
            try:
                translated = billing_event(event)
            except VendorPayloadError as exc:
                exc.details.setdefault("event", str(event.get("id")))
                unreadable.append(exc)
                continue
            if translated is not None:
                changes.append(SourceEvent(*translated))
        return BillingChanges(changes, events[-1]["id"] if events else cursor, unreadable)

    # -- subscriptions and credit notes -------------------------------------------------------------
    def create_subscription(
        self,
        billing_customer_id: str,
        *,
        key: str,
        product: str,
        price: Money,
        interval: Literal["month", "year"] = "month",
        quantity: int = 1,
    ) -> str:
        """A subscription to a recurring price (e.g. monthly support), invoiced to the customer.

        The product and price are created once per ``key``; the subscription is
        found by ``metadata[q2c_key]`` before it is created.
        """
        for sub in self._pages(
            lambda after: self.v1.subscriptions.list(
                _any({"customer": billing_customer_id, "status": "all", "limit": _PAGE, **after})
            ),
            "list subscriptions",
            key,
        ):
            if (sub.get("metadata") or {}).get("q2c_key") == key and sub.get("status") != "canceled":
                return str(sub["id"])
        currency = price.currency
        prod = self.api.call(
            lambda: self.v1.products.create(
                _any({"name": product, "metadata": {"q2c_key": key}}), _opts(idempotency_key("product", key))
            ),
            what="create product",
            record=key,
        )
        recurring_price = self.api.call(
            lambda: self.v1.prices.create(
                _any(
                    {
                        "product": prod.id,
                        "currency": currency.lower(),
                        "unit_amount": to_stripe(price.amount, currency),
                        "recurring": {"interval": interval},
                        "metadata": {"q2c_key": key},
                    }
                ),
                _opts(idempotency_key("price", key)),
            ),
            what="create price",
            record=key,
        )
        created = self.api.call(
            lambda: self.v1.subscriptions.create(
                _any(
                    {
                        "customer": billing_customer_id,
                        "items": [{"price": recurring_price.id, "quantity": quantity}],
                        "collection_method": "send_invoice",
                        "days_until_due": self.settings.days_until_due,
                        "metadata": {"q2c_key": key},
                    }
                ),
                _opts(idempotency_key("subscription", key)),
            ),
            what="create subscription",
            record=key,
        )
        return str(created.id)

    def credit_note(self, invoice_id: str, amount: Money, key: str, *, memo: str | None = None) -> str:
        """Credit part of an open or paid invoice (once per ``key``); returns the credit note id."""
        for note in self._pages(
            lambda after: self.v1.credit_notes.list(_any({"invoice": invoice_id, "limit": _PAGE, **after})),
            "list credit notes",
            key,
        ):
            if (note.get("metadata") or {}).get("q2c_key") == key:
                return str(note["id"])
        params: dict[str, Any] = {
            "invoice": invoice_id,
            "amount": to_stripe(amount.amount, amount.currency),
            "metadata": {"q2c_key": key},
        }
        if memo:
            params["memo"] = memo
        issued = self.api.call(
            lambda: self.v1.credit_notes.create(_any(params), _opts(idempotency_key("credit_note", key))),
            what="create credit note",
            record=key,
        )
        return str(issued.id)


def _in_hub_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stripe lists invoice items newest first; the hub's lines carry their position in ``q2c_line``."""
    positions = [(line.get("metadata") or {}).get("q2c_line") for line in lines]
    if all(isinstance(p, str) and p.isdigit() for p in positions):
        return [
            line for _, line in sorted(zip(positions, lines, strict=True), key=lambda pair: int(str(pair[0])))
        ]
    return list(reversed(lines))


def _day(stamp: Any) -> date | None:
    return None if stamp in (None, "") else datetime.fromtimestamp(int(stamp), UTC).date()


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object (a dict subclass, nested) as plain JSON data."""
    data: dict[str, Any] = json.loads(json.dumps(obj))
    return data


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def build(
    name: str, settings: StripeSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> StripeBilling:
    """The adapter of a configured Stripe system."""
    api = StripeApi(
        settings.base_url,
        settings.secret("api_key"),
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
        api_version=settings.api_version,
    )
    return StripeBilling(name, api, settings)


__all__ = ["IssuedInvoice", "StripeBilling", "build"]
