"""Credit notes and subscriptions of the emulated account, and the passing of time.

A credit note on an open invoice lowers what is due (``pre_payment``); on a
paid one it records money owed back (``post_payment``), refunded on the
invoice's charge when ``refund_amount`` says so. A subscription bills its
first period when it is created and each later one when :meth:`Billing.advance`
moves the clock past the period's end.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from quote2cash.sandbox.stripe._invoicing import Invoicing, _round, period_end
from quote2cash.sandbox.stripe._wire import StripeError, check_amount, merge_metadata


class Billing(Invoicing):
    """The whole account: customers, catalogue, invoices, credit notes and subscriptions."""

    # -- credit notes ------------------------------------------------------------------------------
    def create_credit_note(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/credit_notes``: credit part of an open (pre-payment) or paid (post-payment) invoice."""
        invoice = self.ref("invoice", p["invoice"], "invoice")
        if invoice["status"] not in ("open", "paid"):
            raise StripeError(
                f"Credit notes can only be issued for open or paid invoices; this one is {invoice['status']}.",
                param="invoice",
            )
        lines = self._credit_lines(invoice, p)
        total = sum(line["amount"] for line in lines) if lines else p.get("amount")
        if not total:
            raise StripeError(
                "Missing required param: amount or lines.", code="parameter_missing", param="amount"
            )
        total = check_amount(total, invoice["currency"])
        if not lines:
            lines = [self._credit_line(invoice, "custom_line_item", total, None, "Credit")]
        pre = invoice["status"] == "open"
        room = (
            invoice["amount_remaining"]
            if pre
            else invoice["amount_paid"] - invoice["post_payment_credit_notes_amount"]
        )
        if total > room:
            raise StripeError(
                f"The credit note's total ({total}) is greater than the invoice's "
                f"{'amount remaining' if pre else 'amount paid not yet credited'} ({room}).",
                param="amount",
            )
        refund = None
        if p.get("refund_amount"):
            if pre or not invoice["charge"]:
                raise StripeError("refund_amount needs a paid invoice with a charge.", param="refund_amount")
            refund = self.refund({"charge": invoice["charge"], "amount": p["refund_amount"]})["id"]
        count = len(self.newest_first("credit_note", lambda c: c["invoice"] == invoice["id"])) + 1
        doc = {
            "id": self.make_id("cn"),
            "object": "credit_note",
            "amount": total,
            "created": self.now(),
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "customer_balance_transaction": None,
            "discount_amount": 0,
            "discount_amounts": [],
            "invoice": invoice["id"],
            "lines": {"object": "list", "data": lines, "has_more": False, "url": ""},
            "livemode": False,
            "memo": p.get("memo") or None,
            "metadata": merge_metadata({}, p.get("metadata")),
            "number": f"{invoice['number']}-CN-{count:02d}",
            "out_of_band_amount": p.get("out_of_band_amount") or None,
            "pdf": "",
            "reason": p.get("reason") or None,
            "refund": refund,
            "status": "issued",
            "subtotal": total,
            "tax_amounts": [],
            "total": total,
            "type": "pre_payment" if pre else "post_payment",
            "voided_at": None,
        }
        doc["lines"]["url"] = f"/v1/credit_notes/{doc['id']}/lines"
        doc["pdf"] = f"https://pay.stripe.com/credit_notes/sandbox/{doc['id']}/pdf"
        self.save(doc)
        self.emit("credit_note.created", doc)
        if pre:
            invoice = self.update(
                invoice,
                {"pre_payment_credit_notes_amount": invoice["pre_payment_credit_notes_amount"] + total},
                None,
            )
            invoice = self.refresh(invoice, "invoice.updated")
            if invoice["amount_remaining"] == 0:
                self._mark_paid(invoice, charge=None, out_of_band=False)
        else:
            self.update(
                invoice,
                {"post_payment_credit_notes_amount": invoice["post_payment_credit_notes_amount"] + total},
                "invoice.updated",
            )
        return doc

    def _credit_lines(self, invoice: dict[str, Any], p: dict[str, Any]) -> list[dict[str, Any]]:
        by_id = {line["id"]: line for line in invoice["lines"]["data"]}
        out = []
        for i, line in enumerate(p.get("lines") or []):
            kind = line.get("type")
            if kind == "invoice_line_item":
                source = by_id.get(line.get("invoice_line_item"))
                if source is None:
                    raise StripeError(
                        f"No such invoice line item: '{line.get('invoice_line_item')}'",
                        code="resource_missing",
                        param=f"lines[{i}][invoice_line_item]",
                    )
                quantity = line.get("quantity") or source["quantity"] or 1
                amount = line.get("amount") or _round(
                    Decimal(source["amount"]) * quantity / (source["quantity"] or 1)
                )
                out.append(
                    self._credit_line(invoice, kind, amount, source["id"], source["description"], quantity)
                )
            elif kind == "custom_line_item":
                quantity = line.get("quantity") or 1
                if not line.get("unit_amount"):
                    raise StripeError(
                        "Missing required param: unit_amount.",
                        code="parameter_missing",
                        param=f"lines[{i}][unit_amount]",
                    )
                out.append(
                    self._credit_line(
                        invoice, kind, line["unit_amount"] * quantity, None, line.get("description"), quantity
                    )
                )
            else:
                raise StripeError(
                    "Invalid type: must be one of custom_line_item or invoice_line_item",
                    param=f"lines[{i}][type]",
                )
        return out

    def _credit_line(
        self,
        invoice: dict[str, Any],
        kind: str,
        amount: int,
        source: str | None,
        description: str | None,
        quantity: int = 1,
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.make_id("cnli"),
            "object": "credit_note_line_item",
            "amount": amount,
            "description": description,
            "discount_amount": 0,
            "discount_amounts": [],
            "livemode": False,
            "quantity": quantity,
            "tax_amounts": [],
            "tax_rates": [],
            "type": kind,
            "unit_amount": amount // quantity if amount % quantity == 0 else None,
            "unit_amount_decimal": str(Decimal(amount) / quantity),
        }
        if source is not None:
            line["invoice_line_item"] = source
        return line

    def void_credit_note(self, id_: str) -> dict[str, Any]:
        """``POST /v1/credit_notes/{id}/void``: an issued pre-payment note is undone."""
        doc = self.get("credit_note", id_)
        if doc["status"] != "issued":
            raise StripeError("This credit note is already voided.")
        invoice = self.get("invoice", doc["invoice"])
        if doc["type"] == "pre_payment":
            if invoice["status"] != "open":
                raise StripeError("A credit note can only be voided while its invoice is open.")
            invoice = self.update(
                invoice,
                {
                    "pre_payment_credit_notes_amount": invoice["pre_payment_credit_notes_amount"]
                    - doc["total"]
                },
                None,
            )
            self.refresh(invoice, "invoice.updated")
        doc = self.update(doc, {"status": "void", "voided_at": self.now()}, None)
        self.emit("credit_note.voided", doc)
        return doc

    # -- subscriptions -------------------------------------------------------------------------
    def create_subscription(self, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/subscriptions``: bills the first period at once."""
        customer = self.ref("customer", p["customer"], "customer")
        if not p.get("items"):
            raise StripeError("Missing required param: items.", code="parameter_missing", param="items")
        prices = []
        for i, item in enumerate(p["items"]):
            price = self.ref("price", item.get("price"), f"items[{i}][price]")
            if price["type"] != "recurring":
                raise StripeError(
                    "The price specified is set to `type=one_time` but this field only accepts prices with "
                    "`type=recurring`.",
                    param=f"items[{i}][price]",
                )
            prices.append((price, item.get("quantity") or 1, item.get("metadata") or {}))
        if (
            len(
                {
                    (pr["currency"], pr["recurring"]["interval"], pr["recurring"]["interval_count"])
                    for pr, _, _ in prices
                }
            )
            > 1
        ):
            raise StripeError(
                "All prices on a subscription must have the same currency and interval.", param="items"
            )
        method = p.get("collection_method") or "charge_automatically"
        if method == "send_invoice" and not p.get("days_until_due"):
            raise StripeError(
                "Missing required param: days_until_due.", code="parameter_missing", param="days_until_due"
            )
        if p.get("default_payment_method"):
            self.payment_method(p["default_payment_method"], "default_payment_method")
        now = self.now()
        sub_id = self.make_id("sub")
        recurring = prices[0][0]["recurring"]
        end = period_end(now, recurring["interval"], recurring["interval_count"])
        items: list[dict[str, Any]] = [
            {
                "id": self.make_id("si"),
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": now,
                "metadata": dict(meta),
                "price": price,
                "quantity": quantity,
                "subscription": sub_id,
                "tax_rates": [],
            }
            for price, quantity, meta in prices
        ]
        doc = {
            "id": sub_id,
            "object": "subscription",
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": now,
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": bool(p.get("cancel_at_period_end")),
            "canceled_at": None,
            "collection_method": method,
            "created": now,
            "current_period_end": end,
            "current_period_start": now,
            "customer": customer["id"],
            "days_until_due": p.get("days_until_due") or None,
            "default_payment_method": p.get("default_payment_method") or None,
            "default_source": None,
            "default_tax_rates": [
                self.ref("tax_rate", t, "default_tax_rates") for t in p.get("default_tax_rates") or []
            ],
            "discount": None,
            "ended_at": None,
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": merge_metadata({}, p.get("metadata")),
            "next_pending_invoice_item_invoice": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None},
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": "incomplete",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_start": None,
        }
        self.save(doc)
        self.emit("customer.subscription.created", doc)
        self.bill_period(
            doc, "subscription_create", payment_behavior=p.get("payment_behavior") or "allow_incomplete"
        )
        return self.get("subscription", sub_id)

    def bill_period(
        self, sub: dict[str, Any], reason: str, *, payment_behavior: str = "allow_incomplete"
    ) -> dict[str, Any]:
        """Invoice the subscription's current period, finalize it and collect it as its method says."""
        invoice = self.create_invoice(
            {
                "customer": sub["customer"],
                "collection_method": sub["collection_method"],
                "days_until_due": sub["days_until_due"],
                "currency": sub["items"]["data"][0]["price"]["currency"],
                "pending_invoice_items_behavior": "exclude",
                "default_tax_rates": [t["id"] for t in sub["default_tax_rates"]],
            },
            api_version="2022-08-01",
        )
        lines = [
            {
                "id": f"il_{invoice['id'][3:]}{n}",
                "object": "line_item",
                "amount": item["price"]["unit_amount"] * item["quantity"],
                "currency": item["price"]["currency"],
                "description": f"{item['quantity']} × {self.get('product', item['price']['product'])['name']}",
                "discount_amounts": [],
                "discountable": True,
                "discounts": [],
                "livemode": False,
                "metadata": item["metadata"],
                "period": {"start": sub["current_period_start"], "end": sub["current_period_end"]},
                "price": item["price"],
                "proration": False,
                "quantity": item["quantity"],
                "subscription": sub["id"],
                "subscription_item": item["id"],
                "tax_amounts": [],
                "tax_rates": item["tax_rates"],
                "type": "subscription",
            }
            for n, item in enumerate(sub["items"]["data"])
        ]
        invoice = self.update(
            invoice,
            {
                "subscription": sub["id"],
                "billing_reason": reason,
                "subscription_lines": lines,
                "period_start": sub["current_period_start"],
                "period_end": sub["current_period_end"],
            },
            None,
        )
        invoice = self.finalize(self.refresh(invoice, None)["id"])
        self.update(sub, {"latest_invoice": invoice["id"]}, None)
        if invoice["status"] == "open" and sub["collection_method"] == "charge_automatically":
            customer = self.get("customer", sub["customer"])
            method = sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
            try:
                if method is None:
                    raise StripeError(
                        "This customer has no attached payment source or default payment method.",
                        code="resource_missing",
                        param="default_payment_method",
                    )
                self.charge(invoice, method)
            except StripeError:
                if payment_behavior == "error_if_incomplete" and reason == "subscription_create":
                    raise
                if reason != "subscription_create":
                    self.update(
                        self.get("subscription", sub["id"]),
                        {"status": "past_due"},
                        "customer.subscription.updated",
                    )
        elif sub["collection_method"] == "send_invoice":
            if invoice["status"] == "open":
                self.emit("invoice.sent", invoice)
            if sub["status"] == "incomplete":
                self.update(
                    self.get("subscription", sub["id"]), {"status": "active"}, "customer.subscription.updated"
                )
        return self.get("invoice", invoice["id"])

    def _subscription_paid(self, invoice: dict[str, Any]) -> None:
        sub_id = invoice.get("subscription")
        if not sub_id:
            return
        sub = self.get("subscription", sub_id)
        if sub["status"] in ("incomplete", "past_due"):
            self.update(sub, {"status": "active"}, "customer.subscription.updated")

    def update_subscription(self, id_: str, p: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/subscriptions/{id}``: metadata, ``cancel_at_period_end``, payment method."""
        doc = self.get("subscription", id_)
        changes: dict[str, Any] = {}
        if "metadata" in p:
            changes["metadata"] = merge_metadata(doc["metadata"], p["metadata"])
        if "cancel_at_period_end" in p:
            changes["cancel_at_period_end"] = bool(p["cancel_at_period_end"])
            changes["cancel_at"] = doc["current_period_end"] if p["cancel_at_period_end"] else None
        if p.get("default_payment_method"):
            changes["default_payment_method"] = self.payment_method(
                p["default_payment_method"], "default_payment_method"
            )
        return self.update(doc, changes, "customer.subscription.updated")

    def cancel_subscription(self, id_: str) -> dict[str, Any]:
        """``DELETE /v1/subscriptions/{id}``: ends at once."""
        doc = self.get("subscription", id_)
        if doc["status"] == "canceled":
            raise StripeError(
                f"No such subscription: '{id_}' is already canceled.", code="resource_missing", status=404
            )
        now = self.now()
        doc = self.update(doc, {"status": "canceled", "canceled_at": now, "ended_at": now}, None)
        self.emit("customer.subscription.deleted", doc)
        return doc

    # -- the passing of time ----------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock on and do what Stripe would have done meanwhile.

        Drafts with ``auto_advance`` older than :attr:`finalize_after` are
        finalized (and charged when collected automatically); subscriptions
        whose period ended are renewed and billed, or canceled when set to
        end at the period's end.
        """
        self.clock_offset += seconds
        now = self.now()
        for invoice in self.newest_first("invoice", lambda d: d["status"] == "draft" and d["auto_advance"]):
            if invoice["created"] + self.finalize_after <= now:
                invoice = self.finalize(invoice["id"])
                if invoice["status"] == "open" and invoice["collection_method"] == "charge_automatically":
                    customer = self.get("customer", invoice["customer"])
                    method = (
                        invoice["default_payment_method"]
                        or customer["invoice_settings"]["default_payment_method"]
                    )
                    if method:
                        with contextlib.suppress(StripeError):
                            self.charge(invoice, method)
        for sub in self.newest_first("subscription", lambda d: d["status"] in ("active", "past_due")):
            while sub["current_period_end"] <= now and sub["status"] != "canceled":
                if sub["cancel_at_period_end"]:
                    sub = self.update(
                        sub,
                        {"status": "canceled", "canceled_at": now, "ended_at": sub["current_period_end"]},
                        None,
                    )
                    self.emit("customer.subscription.deleted", sub)
                    break
                recurring = sub["items"]["data"][0]["price"]["recurring"]
                start = sub["current_period_end"]
                end = period_end(start, recurring["interval"], recurring["interval_count"])
                sub = self.update(
                    sub,
                    {"current_period_start": start, "current_period_end": end},
                    "customer.subscription.updated",
                )
                self.bill_period(sub, "subscription_cycle")
                sub = self.get("subscription", sub["id"])
