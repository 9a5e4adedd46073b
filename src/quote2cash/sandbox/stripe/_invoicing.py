"""Invoice items, invoices, payments, subscriptions and credit notes of the emulated account.

The invoice life cycle is Stripe's: ``draft`` (lines can change) →
``finalize`` (a number is assigned, ``open``) → ``send`` → ``pay`` (``paid``)
or ``void`` / ``mark_uncollectible``. Totals are recomputed from the lines on
every change: ``subtotal``, exclusive and inclusive tax from tax rates,
``total``, ``amount_due`` (less pre-payment credit notes), ``amount_paid``,
``amount_remaining``. Paying takes a test payment method
(``pm_card_visa`` succeeds, ``pm_card_chargeDeclined`` is declined with
``402 card_error``) or ``paid_out_of_band=true``; a paid invoice has a charge
that ``POST /v1/refunds`` can refund.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from quote2cash.sandbox.stripe._state import TEST_PAYMENT_METHODS, Account
from quote2cash.sandbox.stripe._wire import StripeError, check_amount, check_currency, merge_metadata

_MONTHS = {"day": 0, "week": 0, "month": 1, "year": 12}
_SECONDS = {"day": 86400, "week": 7 * 86400}


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def period_end(start: int, interval: str, count: int) -> int:
    """The end of a billing period (calendar months and years, fixed days and weeks)."""
    if interval in _SECONDS:
        return start + _SECONDS[interval] * count
    moment = datetime.fromtimestamp(start, UTC)
    months = moment.month - 1 + _MONTHS[interval] * count
    year, month = moment.year + months // 12, months % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


class Invoicing(Account):
    """Invoice items, invoices, payments and refunds (see the module docstring)."""

    #: Seconds after creation when a draft with ``auto_advance`` is finalized (Stripe: about an hour).
    finalize_after = 3600

    # -- invoice items -------------------------------------------------------------------------
    def create_item(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/invoiceitems``: an amount, a price, or a unit amount times a quantity."""
        customer = self.ref("customer", p["customer"], "customer")
        invoice = self.ref("invoice", p["invoice"], "invoice") if p.get("invoice") else None
        if invoice is not None and invoice["status"] != "draft":
            raise StripeError(
                f"Invoice {invoice['id']} is no longer editable: its status is {invoice['status']}.",
                code="invoice_not_editable",
                param="invoice",
            )
        quantity = p.get("quantity") or 1
        price = None
        if p.get("price"):
            price = self.ref("price", p["price"], "price")
            if price["type"] != "one_time":
                raise StripeError(
                    "The price specified is set to `type=recurring` but this field only accepts prices "
                    "with `type=one_time`.",
                    param="price",
                )
            currency, unit = price["currency"], Decimal(price["unit_amount_decimal"])
        else:
            if not p.get("currency"):
                raise StripeError(
                    "Missing required param: currency.", code="parameter_missing", param="currency"
                )
            currency = check_currency(p["currency"])
            given = [
                k for k in ("amount", "unit_amount", "unit_amount_decimal") if p.get(k) not in (None, "")
            ]
            if len(given) != 1:
                raise StripeError(
                    "You must specify exactly one of amount, price, unit_amount or unit_amount_decimal.",
                    param="amount",
                )
            if given[0] == "amount" and "quantity" in p:
                raise StripeError(
                    "When `amount` is given, `quantity` cannot be: give `unit_amount` and `quantity` instead.",
                    param="quantity",
                )
            unit = Decimal(str(p[given[0]]))
        if invoice is not None and invoice["currency"] != currency:
            raise StripeError(
                f"The currency of the invoice item ({currency}) must match the currency of the invoice "
                f"({invoice['currency']}).",
                param="currency",
            )
        amount = check_amount(_round(unit * quantity), currency)
        period = p.get("period") or {}
        now = self.now()
        doc = {
            "id": self.make_id("ii"),
            "object": "invoiceitem",
            "amount": amount,
            "currency": currency,
            "customer": customer["id"],
            "date": now,
            "description": p.get("description") or None,
            "discountable": p.get("discountable", True) if p.get("discountable") != "" else True,
            "discounts": [],
            "invoice": invoice["id"] if invoice else None,
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "period": {"start": period.get("start") or now, "end": period.get("end") or now},
            "price": price,
            "proration": False,
            "quantity": quantity,
            "subscription": None,
            "tax_rates": [self.ref("tax_rate", t, "tax_rates") for t in p.get("tax_rates") or []],
            "test_clock": None,
            "unit_amount": _round(unit) if unit == unit.to_integral_value() else None,
            "unit_amount_decimal": str(unit.normalize())
            if unit != unit.to_integral_value()
            else str(int(unit)),
        }
        self.save(doc)
        self.emit("invoiceitem.created", doc)
        if invoice is not None:
            self.refresh(invoice, "invoice.updated")
        return doc

    def update_item(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/invoiceitems/{id}``: description and metadata while its invoice is a draft."""
        doc = self.get("invoiceitem", id_)
        self._editable_item(doc)
        changes: dict[str, Any] = {}
        if "description" in p:
            changes["description"] = p["description"] or None
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        self.update(doc, changes, "invoiceitem.updated")
        if doc["invoice"]:
            self.refresh(self.get("invoice", doc["invoice"]), "invoice.updated")
        return doc

    def delete_item(self, id_: str) -> dict[str, Any]:
        """``DELETE /v1/invoiceitems/{id}``: only while pending or on a draft."""
        doc = self.get("invoiceitem", id_)
        self._editable_item(doc)
        self.store.put("invoiceitem", id_, {**doc, "deleted": True})
        self.emit("invoiceitem.deleted", doc)
        if doc["invoice"]:
            self.refresh(self.get("invoice", doc["invoice"]), "invoice.updated")
        return {"id": id_, "object": "invoiceitem", "deleted": True}

    def _editable_item(self, doc: dict[str, Any]) -> None:
        if doc["invoice"] and self.get("invoice", doc["invoice"])["status"] != "draft":
            raise StripeError(
                "Invoice items on a finalized invoice cannot be changed.", code="invoice_not_editable"
            )

    # -- invoices ------------------------------------------------------------------------------
    def create_invoice(self, p: dict[str, Any], *, api_version: str) -> dict[str, Any]:
        """``POST /v1/invoices``: a draft, with the customer's pending items if asked to."""
        customer = self.ref("customer", p["customer"], "customer")
        method = p.get("collection_method") or "charge_automatically"
        if method == "send_invoice" and not p.get("days_until_due") and not p.get("due_date"):
            raise StripeError(
                "Missing required param: days_until_due. Invoices with `collection_method=send_invoice` "
                "need `days_until_due` or `due_date`.",
                code="parameter_missing",
                param="days_until_due",
            )
        if method == "charge_automatically" and (p.get("days_until_due") or p.get("due_date")):
            raise StripeError(
                "`days_until_due` and `due_date` are only allowed with `collection_method=send_invoice`.",
                param="days_until_due",
            )
        # Since API version 2022-08-01 pending items are left alone unless asked for.
        default = "exclude" if api_version >= "2022-08-01" else "include"
        behavior = p.get("pending_invoice_items_behavior") or default
        pending = (
            [
                i
                for i in self.newest_first("invoiceitem")
                if i["customer"] == customer["id"] and not i["invoice"]
            ]
            if behavior != "exclude"
            else []
        )
        if behavior == "include_and_require" and not pending:
            raise StripeError(
                "Nothing to invoice for customer", code="invoice_no_customer_line_items", param="customer"
            )
        currencies = {i["currency"] for i in pending}
        currency = check_currency(p["currency"]) if p.get("currency") else None
        if currency is None:
            if len(currencies) > 1:
                raise StripeError(
                    "The customer's pending invoice items are in more than one currency; give `currency`.",
                    param="currency",
                )
            currency = next(iter(currencies), None) or customer["currency"] or "usd"
        pending = [i for i in pending if i["currency"] == currency]
        now = self.now()
        days = p.get("days_until_due") or None
        auto_advance = bool(p.get("auto_advance")) if p.get("auto_advance") != "" else False
        doc: dict[str, Any] = {
            "id": self.make_id("in"),
            "object": "invoice",
            "account_country": "US",
            "account_name": "quote2cash sandbox",
            "account_tax_ids": None,
            "amount_due": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "application_fee_amount": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": auto_advance,
            "automatic_tax": {"enabled": False, "status": None},
            "billing_reason": "manual",
            "charge": None,
            "collection_method": method,
            "created": now,
            "currency": currency,
            "custom_fields": None,
            "customer": customer["id"],
            "customer_address": customer["address"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "customer_phone": customer["phone"],
            "customer_shipping": None,
            "customer_tax_exempt": customer["tax_exempt"],
            "customer_tax_ids": [],
            "default_payment_method": p.get("default_payment_method") or None,
            "default_source": None,
            "default_tax_rates": [
                self.ref("tax_rate", t, "default_tax_rates") for t in p.get("default_tax_rates") or []
            ],
            "description": p.get("description") or None,
            "discount": None,
            "discounts": [],
            "due_date": p.get("due_date") or (now + days * 86400 if days else None),
            "ending_balance": None,
            "footer": p.get("footer") or None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "last_finalization_error": None,
            "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "paid": False,
            "paid_out_of_band": False,
            "payment_intent": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None},
            "period_end": now,
            "period_start": now,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "quote": None,
            "receipt_number": None,
            "starting_balance": 0,
            "statement_descriptor": p.get("statement_descriptor") or None,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": None,
            "subtotal": 0,
            "tax": None,
            "test_clock": None,
            "total": 0,
            "total_discount_amounts": [],
            "total_tax_amounts": [],
            "transfer_data": None,
            "webhooks_delivered_at": now,
            "days_until_due": days,
        }
        doc["lines"]["url"] = f"/v1/invoices/{doc['id']}/lines"
        self.save(doc)
        for item in pending:
            self.store.put("invoiceitem", item["id"], {**item, "invoice": doc["id"]})
        self.refresh(doc, None)
        self.emit("invoice.created", doc)
        return doc

    def lines(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        """The invoice's line items: its invoice items newest first, then subscription lines."""
        items = [i for i in self.newest_first("invoiceitem") if i["invoice"] == invoice["id"]]
        rates = invoice["default_tax_rates"]
        out = [
            {
                "id": "il_" + item["id"][3:],
                "object": "line_item",
                "amount": item["amount"],
                "currency": item["currency"],
                "description": item["description"],
                "discount_amounts": [],
                "discountable": item["discountable"],
                "discounts": [],
                "invoice_item": item["id"],
                "livemode": False,
                "metadata": item["metadata"],
                "period": item["period"],
                "price": item["price"],
                "proration": False,
                "quantity": item["quantity"],
                "subscription": None,
                "tax_amounts": [],
                "tax_rates": item["tax_rates"] or rates,
                "type": "invoiceitem",
            }
            for item in items
        ]
        out.extend(invoice.get("subscription_lines") or [])
        for line in out:
            line["tax_amounts"] = [_tax(line["amount"], rate) for rate in line["tax_rates"]]
        return out

    def refresh(self, invoice: dict[str, Any], event: str | None) -> dict[str, Any]:
        """Recompute the lines and totals of an invoice (and save it)."""
        data = self.lines(invoice)
        subtotal = sum(line["amount"] for line in data)
        by_rate: dict[str, dict[str, Any]] = {}
        for line in data:
            for amount in line["tax_amounts"]:
                entry = by_rate.setdefault(amount["tax_rate"], {**amount, "amount": 0})
                entry["amount"] += amount["amount"]
        taxes = list(by_rate.values())
        exclusive = sum(t["amount"] for t in taxes if not t["inclusive"])
        total = subtotal + exclusive
        due = total - invoice["pre_payment_credit_notes_amount"]
        changes = {
            "lines": {**invoice["lines"], "data": data, "has_more": False},
            "subtotal": subtotal,
            "tax": sum(t["amount"] for t in taxes) if any(line["tax_rates"] for line in data) else None,
            "total_tax_amounts": taxes,
            "total": total,
            "amount_due": due,
            "amount_remaining": max(due - invoice["amount_paid"], 0) if invoice["status"] != "void" else 0,
        }
        return self.update(invoice, changes, event)

    def update_invoice(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/invoices/{id}``: drafts change freely; open invoices only metadata and a few fields."""
        doc = self.get("invoice", id_)
        if doc["status"] != "draft" and set(p) - {
            "metadata",
            "description",
            "footer",
            "expand",
            "auto_advance",
        }:
            raise StripeError(
                "Finalized invoices can only have their metadata, description, footer and auto_advance changed.",
                code="invoice_not_editable",
            )
        changes: dict[str, Any] = {}
        for key in ("description", "footer", "statement_descriptor", "default_payment_method"):
            if key in p:
                changes[key] = p[key] or None
        if "auto_advance" in p:
            changes["auto_advance"] = bool(p["auto_advance"])
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        if p.get("days_until_due"):
            changes["days_until_due"] = p["days_until_due"]
            changes["due_date"] = doc["created"] + p["days_until_due"] * 86400
        if "default_tax_rates" in p:
            changes["default_tax_rates"] = [
                self.ref("tax_rate", t, "default_tax_rates") for t in p["default_tax_rates"] or []
            ]
        doc = self.update(doc, changes, "invoice.updated")
        return self.refresh(doc, None) if "default_tax_rates" in changes else doc

    def delete_invoice(self, id_: str) -> dict[str, Any]:
        """``DELETE /v1/invoices/{id}``: only a draft can be deleted (others are voided)."""
        doc = self.get("invoice", id_)
        if doc["status"] != "draft":
            raise StripeError(
                "You can only delete draft invoices. Void the invoice instead.", code="invoice_not_editable"
            )
        self.store.put("invoice", id_, {**doc, "deleted": True})
        for item in self.newest_first("invoiceitem", lambda i: i["invoice"] == id_):
            self.store.put("invoiceitem", item["id"], {**item, "invoice": None})
        self.emit("invoice.deleted", doc)
        return {"id": id_, "object": "invoice", "deleted": True}

    def finalize(self, id_: str, p: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/finalize``: a number, ``open`` (or ``paid`` at zero)."""
        doc = self.get("invoice", id_)
        if doc["status"] != "draft":
            raise StripeError(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_not_editable",
            )
        customer = self.get("customer", doc["customer"])
        sequence = customer["next_invoice_sequence"]
        self.update(customer, {"next_invoice_sequence": sequence + 1}, None)
        now = self.now()
        number = f"{customer['invoice_prefix']}-{sequence:04d}"
        changes: dict[str, Any] = {
            "status": "open",
            "number": number,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/sandbox/{doc['id']}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/sandbox/{doc['id']}/pdf",
            "status_transitions": {**doc["status_transitions"], "finalized_at": now},
            "ending_balance": 0,
        }
        if p and "auto_advance" in p and p["auto_advance"] != "":
            changes["auto_advance"] = bool(p["auto_advance"])
        doc = self.update(doc, changes, None)
        self.emit("invoice.finalized", doc)
        if doc["amount_due"] == 0:
            doc = self._mark_paid(doc, charge=None, out_of_band=False)
        return doc

    def send(self, id_: str) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/send``: e-mail an open ``send_invoice`` invoice."""
        doc = self.get("invoice", id_)
        if doc["collection_method"] != "send_invoice":
            raise StripeError(
                "You can only manually send an invoice if its collection method is 'send_invoice'.",
                code="invoice_not_editable",
            )
        if doc["status"] == "draft":
            doc = self.finalize(id_)
        if doc["status"] != "open":
            raise StripeError(
                f"You can't send an invoice whose status is {doc['status']}.", code="invoice_not_editable"
            )
        self.emit("invoice.sent", doc)
        return doc

    def pay(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/pay``: charge a test payment method, or record payment out of band."""
        doc = self.get("invoice", id_)
        if doc["status"] == "draft":
            doc = self.finalize(id_)
        if doc["status"] == "paid":
            raise StripeError("Invoice is already paid.", param="invoice")
        if doc["status"] not in ("open", "uncollectible"):
            raise StripeError(
                f"You can't pay an invoice whose status is {doc['status']}.", code="invoice_not_editable"
            )
        if p.get("paid_out_of_band"):
            return self._mark_paid(doc, charge=None, out_of_band=True)
        customer = self.get("customer", doc["customer"])
        method = (
            p.get("payment_method")
            or doc["default_payment_method"]
            or customer["invoice_settings"]["default_payment_method"]
        )
        if not method:
            raise StripeError(
                "This customer has no attached payment source or default payment method. Please consider "
                "adding a default payment method.",
                code="resource_missing",
                param="payment_method",
            )
        self.payment_method(method, "payment_method")
        return self.charge(doc, method)

    def charge(self, invoice: dict[str, Any], method: str) -> dict[str, Any]:
        """Charge an open invoice's remaining amount to a test payment method."""
        decline = TEST_PAYMENT_METHODS[method]
        charge = self._new_charge(invoice, method, decline)
        attempts = {"attempt_count": invoice["attempt_count"] + 1, "attempted": True}
        if decline is None:
            self.emit("charge.succeeded", charge)
            self.update(invoice, attempts, None)
            return self._mark_paid(invoice, charge=charge, out_of_band=False)
        self.emit("charge.failed", charge)
        invoice = self.update(invoice, {**attempts, "charge": charge["id"]}, "invoice.updated")
        self.emit("invoice.payment_failed", invoice)
        code, decline_code = decline
        raise StripeError(
            "Your card was declined." if code == "card_declined" else "Your card has expired.",
            status=402,
            type_="card_error",
            code=code,
            extra={"decline_code": decline_code, "charge": charge["id"]},
        )

    def _new_charge(
        self, invoice: dict[str, Any], method: str, decline: tuple[str, str] | None
    ) -> dict[str, Any]:
        charge = {
            "id": self.make_id("ch"),
            "object": "charge",
            "amount": invoice["amount_remaining"],
            "amount_captured": invoice["amount_remaining"] if decline is None else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": None,
            "billing_details": {
                "address": None,
                "email": invoice["customer_email"],
                "name": invoice["customer_name"],
                "phone": None,
            },
            "calculated_statement_descriptor": "QUOTE2CASH",
            "captured": decline is None,
            "created": self.now(),
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "description": f"Payment for Invoice {invoice['number']}",
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": decline[0] if decline else None,
            "failure_message": ("Your card was declined." if decline else None),
            "fraud_details": None,
            "invoice": invoice["id"],
            "livemode": False,
            "metadata": {},
            "on_behalf_of": None,
            "outcome": {
                "network_status": "approved_by_network" if decline is None else "declined_by_network",
                "reason": decline[1] if decline else None,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "Payment complete."
                if decline is None
                else "The bank declined the payment.",
                "type": "authorized" if decline is None else "issuer_declined",
            },
            "paid": decline is None,
            "payment_intent": None,
            "payment_method": method,
            "payment_method_details": {"type": "card"},
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": None,
            "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False, "url": ""},
            "review": None,
            "shipping": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded" if decline is None else "failed",
            "transfer_data": None,
            "transfer_group": None,
        }
        charge["refunds"]["url"] = f"/v1/charges/{charge['id']}/refunds"
        return self.save(charge)

    def _mark_paid(
        self, doc: dict[str, Any], *, charge: dict[str, Any] | None, out_of_band: bool
    ) -> dict[str, Any]:
        now = self.now()
        changes = {
            "status": "paid",
            "paid": True,
            "paid_out_of_band": out_of_band,
            "amount_paid": doc["amount_remaining"] + doc["amount_paid"],
            "amount_remaining": 0,
            "charge": charge["id"] if charge else doc["charge"] if not out_of_band else None,
            "status_transitions": {**doc["status_transitions"], "paid_at": now},
            "next_payment_attempt": None,
            "auto_advance": False,
        }
        doc = self.update(doc, changes, "invoice.updated")
        self.emit("invoice.paid", doc)
        if charge is not None:
            self.emit("invoice.payment_succeeded", doc)
        self._subscription_paid(doc)
        return doc

    def _subscription_paid(self, invoice: dict[str, Any]) -> None:
        """A paid invoice of an incomplete or past-due subscription makes it active (see ``Billing``)."""

    def void(self, id_: str) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/void_invoice``: only an open or uncollectible invoice."""
        doc = self.get("invoice", id_)
        if doc["status"] not in ("open", "uncollectible"):
            raise StripeError(
                f"You can only void an open or uncollectible invoice; this one is {doc['status']}.",
                code="invoice_not_editable",
            )
        changes = {
            "status": "void",
            "amount_remaining": 0,
            "auto_advance": False,
            "status_transitions": {**doc["status_transitions"], "voided_at": self.now()},
        }
        doc = self.update(doc, changes, None)
        self.emit("invoice.voided", doc)
        return doc

    def mark_uncollectible(self, id_: str) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/mark_uncollectible``."""
        doc = self.get("invoice", id_)
        if doc["status"] != "open":
            raise StripeError(
                f"You can only mark an open invoice uncollectible; this one is {doc['status']}.",
                code="invoice_not_editable",
            )
        changes = {
            "status": "uncollectible",
            "status_transitions": {**doc["status_transitions"], "marked_uncollectible_at": self.now()},
        }
        doc = self.update(doc, changes, None)
        self.emit("invoice.marked_uncollectible", doc)
        return doc

    # -- refunds -------------------------------------------------------------------------------
    def refund(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/refunds``: all or part of a succeeded charge."""
        if not p.get("charge"):
            raise StripeError("Missing required param: charge.", code="parameter_missing", param="charge")
        charge = self.ref("charge", p["charge"], "charge")
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = p.get("amount") or left
        if charge["status"] != "succeeded" or left <= 0:
            raise StripeError(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                param="charge",
            )
        if amount > left:
            raise StripeError(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": self.make_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": merge_metadata({}, p.get("metadata")),
            "payment_intent": None,
            "reason": p.get("reason") or None,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self.save(refund)
        refunds = charge["refunds"]
        changes = {
            "amount_refunded": charge["amount_refunded"] + amount,
            "refunded": charge["amount_refunded"] + amount == charge["amount_captured"],
            "refunds": {**refunds, "data": [refund, *refunds["data"]]},
        }
        self.update(charge, changes, None)
        self.emit("charge.refunded", charge, {"amount_refunded": changes["amount_refunded"] - amount})
        return refund


def _tax(amount: int, rate: dict[str, Any]) -> dict[str, Any]:
    pct = Decimal(str(rate["percentage"])) / 100
    tax = _round(amount * pct / (1 + pct)) if rate["inclusive"] else _round(amount * pct)
    return {"amount": tax, "inclusive": rate["inclusive"], "tax_rate": rate["id"]}
