"""NetSuite as the hub's ERP (:class:`quote2cash.ports.Erp`).

Customers and jobs are upserted by the hub's external id (``eid:``), so a
repeated write updates the same record. Postings become journal entries
through the batch RESTlet (200 a call) in summary mode, or one timebill or
expense report each in detail mode, sent a bounded number at a time. Master
data (subsidiaries, currencies, terms, departments, classes, periods) is read
with SuiteQL and reused for ``cache_seconds``; the customer list used for
identity matching is kept current with the customers the hub itself writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from quote2cash.connectors._cache import Cached
from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.netsuite.auth import TbaCredentials
from quote2cash.connectors.netsuite.client import NetSuiteClient, suiteql_string
from quote2cash.connectors.netsuite.settings import NetSuiteSettings
from quote2cash.errors import BusinessRuleError, NotFoundError
from quote2cash.mappings import Mapping
from quote2cash.model import AccountingPeriod, Customer, Money, Project
from quote2cash.ports import (
    ArInvoice,
    ArInvoiceRecord,
    ArPayment,
    Capabilities,
    CustomerRecord,
    ErpMasterData,
    ErpRefs,
    PostedRecord,
    Posting,
    PostingResult,
    WorkKind,
)

MAPPING = Path(__file__).with_name("mapping.yaml")
#: Record types by (kind, mode).
RECORD_TYPES = {
    ("time", "summary"): "journalentry",
    ("time", "detail"): "timebill",
    ("expense", "summary"): "journalentry",
    ("expense", "detail"): "expensereport",
}


def _truthy(value: Any) -> bool:
    return str(value).upper() in ("T", "TRUE", "1")


def _quoted(value: str) -> str:
    # SuiteQL has no bind parameters over REST: every value is escaped by the one function.
    return suiteql_string(value)


class NetSuiteErp(ClientBacked[NetSuiteClient]):
    """The ERP port over one NetSuite account."""

    def __init__(
        self, name: str, client: NetSuiteClient, mapping: Mapping, settings: NetSuiteSettings
    ) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.cache = Cached(settings.cache_seconds)
        self.capabilities = Capabilities(
            bulk_size=200, upsert_by_external_id=True, max_concurrency=settings.limits.concurrency
        )

    # -- master data -------------------------------------------------------------------
    def master_data(self, *, fresh: bool = False) -> ErpMasterData:
        """Reference data by name, read with SuiteQL and reused for ``cache_seconds``."""
        if fresh:
            self.cache.forget("master")
        return self.cache.get("master", self._read_master)

    def _read_master(self) -> ErpMasterData:
        q = self.client.suiteql
        subs = {
            str(r["id"]): not _truthy(r.get("isinactive", "F"))
            for r in q("SELECT id, isinactive FROM subsidiary")
        }
        by_name: dict[str, dict[str, str]] = {}
        for table, col in (("currency", "symbol"), ("term", "name"), ("classification", "name")):
            by_name[table] = {str(r[col]): str(r["id"]) for r in q(f"SELECT id, {col} FROM {table}")}
        depts = list(q("SELECT id, name, isinactive FROM department"))
        periods = tuple(
            AccountingPeriod(
                name=str(r.get("periodname")),
                start=date.fromisoformat(str(r["startdate"])[:10]),
                end=date.fromisoformat(str(r["enddate"])[:10]),
                closed=_truthy(r.get("closed")),
            )
            for r in q(
                "SELECT id, periodname, startdate, enddate, closed FROM accountingperiod "
                "WHERE isquarter = 'F' AND isyear = 'F'"
            )
        )
        return ErpMasterData(
            subsidiaries=subs,
            currencies=by_name["currency"],
            terms=by_name["term"],
            departments={str(r["name"]): str(r["id"]) for r in depts},
            active_departments=frozenset(str(r["id"]) for r in depts if not _truthy(r.get("isinactive"))),
            classes=by_name["classification"],
            periods=periods,
        )

    def customers(self) -> list[CustomerRecord]:
        """Existing customers for identity matching (reused; the hub's own writes are added)."""
        return list(self.cache.get("customers", self._read_customers).values())

    def _read_customers(self) -> dict[str, CustomerRecord]:
        rows = self.client.suiteql(
            "SELECT id, companyname, url, vatregnumber, externalid, subsidiary FROM customer"
        )
        return {
            str(r["id"]): CustomerRecord(
                id=str(r["id"]),
                name=str(r.get("companyname") or ""),
                website=r.get("url"),
                tax_id=r.get("vatregnumber"),
                external_id=r.get("externalid"),
                subsidiary=None if r.get("subsidiary") is None else str(r["subsidiary"]),
            )
            for r in rows
        }

    # -- customers and projects ------------------------------------------------------------
    def upsert_customer(
        self, customer: Customer, external_id: str, refs: ErpRefs, *, only: frozenset[str] | None = None
    ) -> str:
        """Create or update the customer by external id; the matching list learns it at once.

        ``only`` (an update) names the customer fields to write; the others are left as they are.
        """
        body = self.mapping.apply(
            "customer_to_netsuite",
            customer.model_dump(mode="json"),
            {
                "subsidiary": refs.subsidiary,
                "currency": refs.currency,
                "terms": refs.terms,
                "external_id": external_id,
            },
            only=None if only is None else only | {"ctx.external_id"},
        )
        erp_id = self.client.upsert("customer", external_id, body)
        known = self.cache.get("customers", self._read_customers)
        known[erp_id] = CustomerRecord(
            id=erp_id,
            name=customer.name,
            website=customer.website,
            tax_id=customer.tax_id,
            external_id=external_id,
            subsidiary=refs.subsidiary,
        )
        return erp_id

    def upsert_project(self, project: Project, external_id: str, refs: ErpRefs) -> str:
        """Create or update the job by external id, under its customer, with its dimensions."""
        dims = project.dimensions
        body = self.mapping.apply(
            "project_to_netsuite",
            project.model_dump(mode="json"),
            {
                "customer": refs.customer,
                "subsidiary": refs.subsidiary,
                "currency": refs.currency,
                "department": refs.department,
                "class": refs.class_
                or (
                    self.master_data().classes.get(self.mapping.value("region_to_class", dims.region))
                    if dims.region
                    else None
                ),
                "external_id": external_id,
            },
        )
        return self.client.upsert("job", external_id, body)

    def delete_project(self, erp_project_id: str) -> None:
        """Delete the job; already gone is what was wanted."""
        try:
            self.client.delete("job", erp_project_id)
        except NotFoundError:
            return

    # -- postings --------------------------------------------------------------------------
    def record(self, p: Posting) -> dict[str, Any]:
        """The NetSuite record of a posting (journal entry, timebill or expense report)."""
        amount = Money.from_minor(abs(p.amount_minor), p.currency).amount
        signed = Money.from_minor(p.amount_minor, p.currency).amount
        hours = (Decimal(p.minutes) / 60).quantize(Decimal("0.01"))
        dr, cr = (
            (p.accounts.debit, p.accounts.credit)
            if p.amount_minor >= 0
            else (p.accounts.credit, p.accounts.debit)
        )
        dims: dict[str, Any] = {"entity": {"id": p.erp_project_id}} if p.erp_project_id else {}
        if p.department:
            dims["department"] = {"id": p.department}
        fields: dict[str, Any] = {
            "subsidiary": {"id": p.subsidiary},
            "tranDate": p.tran_date.isoformat(),
            "memo": (
                f"quote2cash {p.kind} {p.period} {'billable' if p.billable else 'non-billable'}: "
                f"{abs(p.entries)} entries" + (f", reverses {p.reversal_of}" if p.reversal_of else "")
            ),
            "custbody_q2c_kind": p.kind,
            "custbody_q2c_project": p.project,
            "custbody_q2c_task": p.task_id,
            "custbody_q2c_period": p.period,
            "custbody_q2c_billable": p.billable,
            "custbody_q2c_hours": str(hours),
            "custbody_q2c_amount": str(signed),
            "custbody_q2c_entries": p.entries,
            "custbody_q2c_source_ref": p.key,
            "custbody_q2c_reversal_of": p.reversal_of,
            "line": {
                "items": [
                    {"account": {"id": dr}, "debit": str(amount), "memo": p.key, **dims},
                    {"account": {"id": cr}, "credit": str(amount), "memo": p.key, **dims},
                ]
            },
        }
        currency = self.master_data().currencies.get(p.currency)
        if currency:
            fields["currency"] = {"id": currency}
        rtype = RECORD_TYPES[(p.kind, p.mode)]
        if p.mode == "summary":
            return {"type": rtype, "externalId": p.key, "fields": fields}
        body = {k: v for k, v in fields.items() if k != "line"}
        if p.erp_project_id:
            body["customer"] = {"id": p.erp_project_id}
        if p.kind == "time":
            minutes = abs(p.minutes)
            body.update(
                hours=f"{minutes // 60}:{minutes % 60:02d}",
                isBillable=p.billable,
                rate=str(Money.of(amount / hours, p.currency).rounded().amount if hours else Decimal(0)),
            )
        else:
            line: dict[str, Any] = {
                "amount": str(amount),
                "isBillable": p.billable,
                "memo": p.task_id or "expense",
            }
            if p.erp_project_id:
                line["customer"] = {"id": p.erp_project_id}
            body["expense"] = {"items": [line]}
        return {"type": rtype, "externalId": p.key, "fields": body}

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        """Summary postings through the batch RESTlet; detail postings one upsert each, a few at a time."""
        records = [self.record(p) for p in postings]
        summary = [r for r, p in zip(records, postings, strict=True) if p.mode == "summary"]
        results: dict[str, PostingResult] = {}
        if summary:
            for r in self.client.batch_upsert(summary):
                err = r.error()
                results[r.external_id] = PostingResult(
                    r.external_id,
                    r.id,
                    None if err is None else {"code": err.code, "message": err.message, **err.details},
                )
        detail = [r for r, p in zip(records, postings, strict=True) if p.mode == "detail"]

        def one(record: dict[str, Any]) -> PostingResult:
            try:
                erp_id = self.client.upsert(record["type"], record["externalId"], record["fields"])
                return PostingResult(record["externalId"], erp_id)
            except BusinessRuleError as exc:
                return PostingResult(
                    record["externalId"],
                    None,
                    {"code": "erp.posting_rejected", "message": exc.message, **exc.details},
                )

        if detail:
            with ThreadPoolExecutor(max_workers=self.settings.limits.concurrency) as pool:
                for result in pool.map(one, detail):
                    results[result.key] = result
        return [results[p.key] for p in postings]

    def posted(self, kind: WorkKind, period: str) -> list[PostedRecord]:
        """The hub's transactions of a work period, journal entries and detail records alike."""
        out: list[PostedRecord] = []
        for rtype in sorted({RECORD_TYPES[(kind, "summary")], RECORD_TYPES[(kind, "detail")]}):
            rows = self.client.suiteql(
                "SELECT id, externalid, custbody_q2c_source_ref, custbody_q2c_project, subsidiary, custbody_q2c_hours, "
                f"custbody_q2c_amount, custbody_q2c_entries FROM {rtype} WHERE custbody_q2c_kind = {_quoted(kind)} "
                f"AND custbody_q2c_period = {_quoted(period)}"
            )
            for r in rows:
                out.append(
                    PostedRecord(
                        erp_id=str(r["id"]),
                        key=str(r.get("custbody_q2c_source_ref") or r.get("externalid")),
                        project=None
                        if r.get("custbody_q2c_project") is None
                        else str(r["custbody_q2c_project"]),
                        subsidiary=None if r.get("subsidiary") is None else str(r["subsidiary"]),
                        hours=Decimal(str(r.get("custbody_q2c_hours") or 0)),
                        amount=Decimal(str(r.get("custbody_q2c_amount") or 0)),
                        entries=int(Decimal(str(r.get("custbody_q2c_entries") or 0))),
                    )
                )
        return out

    # -- receivables (F6, F8) -------------------------------------------------------------
    def _ensure(self, type_: str, external_id: str, body: dict[str, Any]) -> str:
        """The record with this external id, created from ``body`` if there is none.

        A transaction the ERP holds is never rewritten (corrections are new
        transactions), so a repeated call finds the first one and changes nothing.
        """
        found = self.client.get_by_external_id(type_, external_id)
        if found is not None:
            return str(found["id"])
        return self.client.upsert(type_, external_id, body)

    def upsert_ar_invoice(self, invoice: ArInvoice) -> str:
        """The AR invoice of a billing-system invoice, by its id as external id; created once."""
        total = sum((amount for _, amount in invoice.lines), Decimal(0)) + invoice.tax
        body: dict[str, Any] = {
            "externalId": invoice.external_id,
            "entity": {"id": invoice.customer},
            "subsidiary": {"id": invoice.subsidiary},
            "currency": {"id": invoice.currency},
            "tranDate": invoice.tran_date.isoformat(),
            "otherRefNum": invoice.number or invoice.external_id,
            "memo": invoice.memo,
            "item": {
                "items": [{"description": text, "amount": str(amount)} for text, amount in invoice.lines]
            },
            "custbody_q2c_billing": True,
            "custbody_q2c_total": str(total),
            "custbody_q2c_tax": str(invoice.tax),
        }
        if invoice.project:
            body["job"] = {"id": invoice.project}
        if invoice.due_date:
            body["dueDate"] = invoice.due_date.isoformat()
        return self._ensure("invoice", invoice.external_id, body)

    def apply_payment(self, payment: ArPayment) -> str:
        """A customer payment applied to the AR invoice, once per external id."""
        body = {
            "externalId": payment.external_id,
            "customer": {"id": payment.customer},
            "subsidiary": {"id": payment.subsidiary},
            "currency": {"id": payment.currency},
            "tranDate": payment.tran_date.isoformat(),
            "payment": str(payment.amount),
            "apply": {
                "items": [{"doc": {"id": payment.invoice}, "apply": True, "amount": str(payment.amount)}]
            },
            "custbody_q2c_billing": True,
            "custbody_q2c_invoice": payment.invoice,
        }
        return self._ensure("customerpayment", payment.external_id, body)

    def void_ar_invoice(self, invoice: ArInvoice, external_id: str) -> str:
        """A credit memo for the whole invoice (the posted invoice itself is left as it is)."""
        erp_invoice = self.client.get_by_external_id("invoice", invoice.external_id)
        if erp_invoice is None:
            raise NotFoundError(
                f"the ERP has no AR invoice for {invoice.external_id} to credit",
                system=self.name,
                record=invoice.external_id,
            )
        total = sum((amount for _, amount in invoice.lines), Decimal(0)) + invoice.tax
        body: dict[str, Any] = {
            "externalId": external_id,
            "entity": {"id": invoice.customer},
            "subsidiary": {"id": invoice.subsidiary},
            "currency": {"id": invoice.currency},
            "tranDate": invoice.tran_date.isoformat(),
            "createdFrom": {"id": str(erp_invoice["id"])},
            "memo": f"Credit: {invoice.memo}",
            "item": {
                "items": [{"description": text, "amount": str(amount)} for text, amount in invoice.lines]
            },
            "custbody_q2c_billing": True,
            "custbody_q2c_invoice": str(erp_invoice["id"]),
            "custbody_q2c_total": str(total),
        }
        return self._ensure("creditmemo", external_id, body)

    def ar_invoices(self, start: date, end: date) -> list[ArInvoiceRecord]:
        """The hub's AR invoices dated in the range, with their credits and payments."""
        credited: dict[str, Decimal] = {}
        for r in self.client.suiteql(
            "SELECT id, custbody_q2c_invoice, custbody_q2c_total FROM creditmemo WHERE custbody_q2c_billing = 'T'"
        ):
            key = str(r.get("custbody_q2c_invoice"))
            credited[key] = credited.get(key, Decimal(0)) + Decimal(str(r.get("custbody_q2c_total") or 0))
        paid: dict[str, Decimal] = {}
        for r in self.client.suiteql(
            "SELECT id, custbody_q2c_invoice, payment FROM customerpayment WHERE custbody_q2c_billing = 'T'"
        ):
            key = str(r.get("custbody_q2c_invoice"))
            paid[key] = paid.get(key, Decimal(0)) + Decimal(str(r.get("payment") or 0))
        out = []
        for r in self.client.suiteql(
            "SELECT id, externalid, otherrefnum, trandate, custbody_q2c_total, custbody_q2c_tax FROM invoice "
            "WHERE custbody_q2c_billing = 'T'"
        ):
            day = _parse_day(r.get("trandate"))
            if day is None or not start <= day <= end:
                continue
            erp_id = str(r["id"])
            out.append(
                ArInvoiceRecord(
                    erp_id=erp_id,
                    external_id=None if r.get("externalid") is None else str(r["externalid"]),
                    number=None if r.get("otherrefnum") is None else str(r["otherrefnum"]),
                    amount=Decimal(str(r.get("custbody_q2c_total") or 0)),
                    tax=Decimal(str(r.get("custbody_q2c_tax") or 0)),
                    credited=credited.get(erp_id, Decimal(0)),
                    paid=paid.get(erp_id, Decimal(0)),
                )
            )
        return out


def _parse_day(value: Any) -> date | None:
    """A SuiteQL date (ISO, or NetSuite's ``M/D/YYYY``) as a date."""
    if value in (None, ""):
        return None
    text = str(value)[:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        month, day, year = (int(x) for x in str(value).split("/"))
        return date(year, month, day)


def build(
    name: str, settings: NetSuiteSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> NetSuiteErp:
    """The adapter of a configured NetSuite system."""
    client = NetSuiteClient(
        settings.base_url,
        TbaCredentials(
            account=settings.account,
            consumer_key=settings.consumer_key,
            consumer_secret=settings.secret("consumer_secret"),
            token_id=settings.token_id,
            token_secret=settings.secret("token_secret"),
        ),
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
    )
    return NetSuiteErp(name, client, Mapping.load(settings.mapping or MAPPING), settings)


__all__ = ["RECORD_TYPES", "NetSuiteErp", "build"]
