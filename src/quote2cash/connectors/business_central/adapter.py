"""Business Central as the hub's ERP (:class:`quote2cash.ports.Erp`).

Legal entities are companies: a subsidiary id of the hub's configuration is a
company id. Customers and projects have no external-id field in Business
Central, so the hub's external id becomes the record's ``number``
(:func:`number_for`: the mapping's prefix plus a digest); a write looks the
number up with ``$filter`` and updates (under the record's ETag) or creates,
so a repeated write never adds a second record, and an in-doubt create is
found the same way.

Each posting becomes one general journal line (debit account, balancing credit
account, signed amount) in the hub's journal batch of its company and kind,
sent in ``$batch`` calls of up to 100. The line carries the posting key: as
``documentNumber`` (a ``Code[20]`` digest, looked up before sending, so a
re-sent posting finds its line instead of adding one), as
``externalDocumentNumber`` (the key itself when it fits ``Code[35]``), and
in ``comment`` with the kind, work period, hours and entries that
reconciliation (:meth:`BusinessCentralErp.posted`) reads back.

Master data (currencies, payment terms, department and class dimension
values, accounting periods) is read per company and reused for
``cache_seconds``; the port sees codes, which are the same in every company,
and the adapter resolves them to each company's own ids.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from quote2cash.connectors._cache import Cached
from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.business_central.auth import MsalAuth
from quote2cash.connectors.business_central.client import (
    MAX_BATCH,
    BatchOperation,
    BusinessCentralClient,
    odata_text,
)
from quote2cash.connectors.business_central.errors import CHANGED, EXISTS
from quote2cash.connectors.business_central.settings import BusinessCentralSettings
from quote2cash.errors import BusinessRuleError, InDoubtError, NotFoundError, Owner, TransientError
from quote2cash.mappings import Mapping
from quote2cash.model import AccountingPeriod, Customer, Money, Project
from quote2cash.ports import (
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
#: Version tag that starts every journal line comment the hub writes.
COMMENT_TAG = "q2c1"
#: Document numbers looked up per ``$filter`` (one ``or`` term each).
_LOOKUP_CHUNK = 20


def digest(value: str, length: int) -> str:
    """``length`` upper-case base32 characters of the SHA-256 of ``value`` (valid in a ``Code`` field)."""
    return base64.b32encode(hashlib.sha256(value.encode()).digest()).decode()[:length]


def number_for(prefix: str, external_id: str) -> str:
    """The ``number`` (``Code[20]``) of the record with the hub's external id."""
    return prefix + digest(external_id, 20 - len(prefix))


def document_number(key: str) -> str:
    """The ``documentNumber`` (``Code[20]``) of the journal line of a posting key."""
    return "Q2C" + digest(key, 17)


def comment_of(p: Posting) -> str:
    """The journal line comment reconciliation reads back (the project last: it may hold anything)."""
    hours = (Decimal(p.minutes) / 60).quantize(Decimal("0.01"))
    flag = "B" if p.billable else "N"
    return "|".join(
        [COMMENT_TAG, p.kind, p.period, flag, str(hours), str(p.entries), p.currency, p.key, p.project]
    )


def parse_comment(comment: str) -> dict[str, str] | None:
    """The fields of a hub comment, or None for a line the hub did not write."""
    parts = comment.split("|", 8)
    if len(parts) != 9 or parts[0] != COMMENT_TAG:
        return None
    names = ("tag", "kind", "period", "billable", "hours", "entries", "currency", "key", "project")
    return dict(zip(names, parts, strict=True))


@dataclass(frozen=True)
class CompanyData:
    """One company's master data: codes and the company's own ids for them."""

    name: str
    currencies: dict[str, str]  # code -> id
    terms: dict[str, str]  # code -> id
    term_names: dict[str, str]  # display name -> code
    departments: dict[str, str]  # display name -> code
    classes: dict[str, str]  # display name -> code
    periods: tuple[AccountingPeriod, ...]


def _periods(rows: Iterable[dict[str, Any]]) -> tuple[AccountingPeriod, ...]:
    starts = sorted((date.fromisoformat(str(r["startingDate"])[:10]), bool(r.get("closed"))) for r in rows)
    out: list[AccountingPeriod] = []
    for i, (start, closed) in enumerate(starts):
        if i + 1 < len(starts):
            end = starts[i + 1][0] - timedelta(days=1)
        else:  # the last period of the calendar: a month, as BC creates them by default
            end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        out.append(AccountingPeriod(name=start.strftime("%b %Y"), start=start, end=end, closed=closed))
    return tuple(out)


class BusinessCentralErp(ClientBacked[BusinessCentralClient]):
    """The ERP port over one Business Central environment."""

    def __init__(
        self, name: str, client: BusinessCentralClient, mapping: Mapping, settings: BusinessCentralSettings
    ) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.cache = Cached(settings.cache_seconds)
        self.capabilities = Capabilities(
            bulk_size=MAX_BATCH,
            upsert_by_external_id=True,
            external_references=True,
            max_concurrency=settings.limits.concurrency,
        )
        # The external ids behind the numbers this adapter wrote (a digest cannot be reversed).
        self._external: dict[tuple[str, str], str] = {}

    # -- master data -------------------------------------------------------------------
    def companies(self) -> dict[str, str]:
        """Company id -> name (reused for ``cache_seconds``)."""
        return self.cache.get(
            "companies",
            lambda: {str(c["id"]): str(c.get("name") or "") for c in self.client.collection("companies")},
        )

    def company(self, company: str, *, fresh: bool = False) -> CompanyData:
        """One company's master data (reused for ``cache_seconds``)."""
        if fresh:
            self.cache.forget(f"company:{company}")
        return self.cache.get(f"company:{company}", lambda: self._read_company(company))

    def _read_company(self, company: str) -> CompanyData:
        c = self.client
        path = c.company_path
        currencies = {str(r["code"]): str(r["id"]) for r in c.collection(path(company, "currencies"))}
        terms = list(c.collection(path(company, "paymentTerms")))
        dimensions = {str(d["code"]): str(d["id"]) for d in c.collection(path(company, "dimensions"))}

        def values(code: str | None) -> dict[str, str]:
            if code is None or code.upper() not in dimensions:
                return {}
            rows = c.collection(path(company, f"dimensions({dimensions[code.upper()]})/dimensionValues"))
            return {str(r["displayName"] or r["code"]): str(r["code"]) for r in rows}

        return CompanyData(
            name=self.companies().get(company, company),
            currencies=currencies,
            terms={str(t["code"]): str(t["id"]) for t in terms},
            term_names={str(t["displayName"]): str(t["code"]) for t in terms},
            departments=values(self.settings.department_dimension),
            classes=values(self.settings.class_dimension),
            periods=_periods(c.collection(path(company, "accountingPeriods"))),
        )

    def local_currency(self, company: str) -> str | None:
        """The ISO code of a company's local currency, from the settings (by id or name)."""
        local = self.settings.local_currencies
        return local.get(company) or local.get(self.company(company).name)

    def master_data(self, *, fresh: bool = False) -> ErpMasterData:
        """Companies and the codes of their master data, merged (a month closed in any company is closed)."""
        if fresh:
            self.cache.forget("companies")
        companies = self.companies()
        datas = [self.company(c, fresh=fresh) for c in companies]
        currencies: dict[str, str] = {}
        terms: dict[str, str] = {}
        departments: dict[str, str] = {}
        classes: dict[str, str] = {}
        months: dict[date, AccountingPeriod] = {}
        for company, data in zip(companies, datas, strict=True):
            currencies.update({code: code for code in data.currencies})
            lcy = self.local_currency(company)
            if lcy:
                currencies[lcy] = lcy
            terms.update({code: code for code in data.terms})
            terms.update(data.term_names)
            departments.update(data.departments)
            classes.update(data.classes)
            for p in data.periods:
                known = months.get(p.start)
                if known is None or (p.closed and not known.closed):
                    months[p.start] = p
        return ErpMasterData(
            subsidiaries=dict.fromkeys(companies, True),
            currencies=currencies,
            terms=terms,
            departments=departments,
            active_departments=frozenset(departments.values()),
            classes=classes,
            periods=tuple(months[k] for k in sorted(months)),
        )

    def customers(self) -> list[CustomerRecord]:
        """Existing customers of every company, for identity matching (the hub's own writes added)."""
        return list(self.cache.get("customers", self._read_customers).values())

    def _read_customers(self) -> dict[str, CustomerRecord]:
        out: dict[str, CustomerRecord] = {}
        select = {"$select": "id,number,displayName,website,taxRegistrationNumber"}
        for company in self.companies():
            for r in self.client.collection(self.client.company_path(company, "customers"), select):
                number = str(r.get("number") or "")
                out[str(r["id"])] = CustomerRecord(
                    id=str(r["id"]),
                    name=str(r.get("displayName") or ""),
                    website=r.get("website") or None,
                    tax_id=r.get("taxRegistrationNumber") or None,
                    external_id=self._external.get((company, number), number),
                    subsidiary=company,
                )
        return out

    # -- customers and projects ------------------------------------------------------------
    def number(self, record: str, external_id: str) -> str:
        """The number of a customer or project record, from the mapping's prefix."""
        return number_for(self.mapping.value("number_prefix", record), external_id)

    def upsert_customer(
        self, customer: Customer, external_id: str, refs: ErpRefs, *, only: frozenset[str] | None = None
    ) -> str:
        """Create or update the customer of the hub's external id in the company ``refs.subsidiary``.

        ``only`` (an update) names the customer fields to write; BC keeps the others."""
        company = refs.subsidiary
        data = self.company(company)
        number = self.number("customer", external_id)
        local = refs.currency is not None and refs.currency == self.local_currency(company)
        terms_id = None
        if refs.terms:
            terms_id = data.terms.get(refs.terms) or data.terms.get(data.term_names.get(refs.terms, ""))
            if terms_id is None:
                raise BusinessRuleError(
                    f"payment terms '{refs.terms}' do not exist in the Business Central company '{data.name}'",
                    code="customer.payment_terms_unknown_in_erp",
                    owner=Owner.FINANCE,
                    system=self.client.system,
                    record=external_id,
                )
        body = self.mapping.apply(
            "customer_to_business_central",
            customer.model_dump(mode="json"),
            {"number": number, "currency": None if local else refs.currency, "payment_terms_id": terms_id},
            only=None if only is None else only | {"ctx.number"},
        )
        if local and only is None:
            body["currencyCode"] = ""  # BC leaves the local currency blank
        doc = self._upsert(company, "customers", number, body)
        erp_id = str(doc["id"])
        self._external[(company, number)] = external_id
        known = self.cache.get("customers", self._read_customers)
        known[erp_id] = CustomerRecord(
            id=erp_id,
            name=customer.name,
            website=customer.website,
            tax_id=customer.tax_id,
            external_id=external_id,
            subsidiary=company,
        )
        return erp_id

    def upsert_project(self, project: Project, external_id: str, refs: ErpRefs) -> str:
        """Create or update the project of the hub's external id in the company ``refs.subsidiary``.

        API v2.0 projects hold a number and a name only; the customer and the
        dimensions travel on each posting's journal line.
        """
        number = self.number("project", external_id)
        body = self.mapping.apply(
            "project_to_business_central", project.model_dump(mode="json"), {"number": number}
        )
        return str(self._upsert(refs.subsidiary, "projects", number, body)["id"])

    def delete_project(self, erp_project_id: str) -> None:
        """Delete the project from whichever company holds it; already gone is what was wanted."""
        for company in self.companies():
            path = self.client.company_path(company, f"projects({erp_project_id})")
            try:
                doc = self.client.get(path)
                self.client.delete(path, str(doc["@odata.etag"]))
            except NotFoundError:
                continue
            return

    def _find(self, company: str, entity_set: str, field: str, value: str) -> dict[str, Any] | None:
        path = self.client.company_path(company, entity_set)
        found = list(self.client.collection(path, {"$filter": f"{field} eq {odata_text(value)}"}))
        return found[0] if found else None

    def _upsert(self, company: str, entity_set: str, number: str, body: dict[str, Any]) -> dict[str, Any]:
        existing = self._find(company, entity_set, "number", number)
        if existing is not None:
            return self._patch(company, entity_set, existing, body)
        try:
            return self.client.create(self.client.company_path(company, entity_set), body)
        except InDoubtError:
            # The create may have been applied: its number (a unique key in BC) says whether it
            # was. Not there: it was not, and creating it now cannot make a second one.
            found = self._find(company, entity_set, "number", number)
            if found is None:
                return self.client.create(self.client.company_path(company, entity_set), body)
            return self._patch(company, entity_set, found, body)
        except BusinessRuleError as exc:
            if exc.details.get("vendor_code") != EXISTS:
                raise
            found = self._find(company, entity_set, "number", number)
            if found is None:
                raise
            return self._patch(company, entity_set, found, body)

    def _patch(
        self, company: str, entity_set: str, doc: dict[str, Any], body: dict[str, Any]
    ) -> dict[str, Any]:
        path = self.client.company_path(company, f"{entity_set}({doc['id']})")
        for attempt in (1, 2):
            changed = {k: v for k, v in body.items() if doc.get(k) != v and k != "number"}
            if not changed:
                return doc
            try:
                return self.client.update(path, changed, str(doc["@odata.etag"]))
            except BusinessRuleError as exc:
                # Someone changed the record since it was read: read it again and re-apply once.
                if exc.details.get("vendor_code") != CHANGED or attempt == 2:
                    raise
                doc = self.client.get(path)
        raise AssertionError("unreachable")

    # -- postings --------------------------------------------------------------------------
    def journal_code(self, kind: WorkKind) -> str:
        """The journal batch the hub writes lines of this kind to."""
        return self.settings.time_journal if kind == "time" else self.settings.expense_journal

    def journal(self, company: str, kind: WorkKind, *, create: bool = True) -> str | None:
        """The id of the hub's journal of a kind in a company, created when missing (``create``)."""
        code = self.journal_code(kind)
        key = f"journal:{company}:{code}"
        hit = self.cache.get(key, lambda: self._find(company, "journals", "code", code))
        if hit is not None or not create:
            return None if hit is None else str(hit["id"])
        self.cache.forget(key)
        body = {"code": code, "displayName": f"quote2cash {kind}"}
        try:
            doc = self.client.create(self.client.company_path(company, "journals"), body)
        except (InDoubtError, BusinessRuleError) as exc:
            if isinstance(exc, BusinessRuleError) and exc.details.get("vendor_code") != EXISTS:
                raise
            found = self._find(company, "journals", "code", code)
            if found is None:
                raise
            doc = found
        return str(doc["id"])

    def line(self, p: Posting) -> dict[str, Any]:
        """The journal line of a posting: debit account, balancing credit account, signed amount."""
        billable = "billable" if p.billable else "non-billable"
        body: dict[str, Any] = {
            "accountType": "G/L Account",
            "accountNumber": p.accounts.debit,
            "balanceAccountType": "G/L Account",
            "balancingAccountNumber": p.accounts.credit,
            "postingDate": p.tran_date.isoformat(),
            "documentNumber": document_number(p.key),
            "externalDocumentNumber": p.key if len(p.key) <= 35 else document_number(p.key),
            "amount": Money.from_minor(p.amount_minor, p.currency).amount,
            "description": (
                f"quote2cash {p.kind} {p.period} {billable}: {abs(p.entries)} entries"
                + (f", reverses {p.reversal_of}" if p.reversal_of else "")
            )[:100],
            "comment": comment_of(p),
        }
        if p.department:
            body["dimensionSetLines"] = [
                {"code": self.settings.department_dimension, "valueCode": p.department}
            ]
        return body

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        """One journal line per posting, in ``$batch`` calls of 100; a line already there is not sent again."""
        groups: dict[tuple[str, WorkKind], list[Posting]] = {}
        for p in postings:
            groups.setdefault((p.subsidiary, p.kind), []).append(p)
        results: dict[str, PostingResult] = {}
        for (company, kind), group in groups.items():
            journal = self.journal(company, kind)
            lines = self.client.company_path(company, f"journals({journal})/journalLines")
            for start in range(0, len(group), MAX_BATCH):
                results.update(self._post_chunk(lines, group[start : start + MAX_BATCH]))
        return [results[p.key] for p in postings]

    def _existing_lines(self, lines: str, numbers: Sequence[str]) -> dict[str, str]:
        """documentNumber -> line id of the lines already in the journal, read in one call."""
        filters = [
            " or ".join(f"documentNumber eq {odata_text(n)}" for n in numbers[i : i + _LOOKUP_CHUNK])
            for i in range(0, len(numbers), _LOOKUP_CHUNK)
        ]
        select = "id,documentNumber"
        found: dict[str, str] = {}
        if len(filters) == 1:
            rows: list[Any] = list(self.client.collection(lines, {"$filter": filters[0], "$select": select}))
        else:
            ops = [
                BatchOperation("GET", f"{lines}?{httpx.QueryParams({'$filter': f, '$select': select})}")
                for f in filters
            ]
            rows = []
            for answer in self.client.batch(ops):
                if not answer.ok:
                    raise answer.error("$batch")
                rows.extend(answer.body.get("value", []))
        for row in rows:
            found.setdefault(str(row["documentNumber"]), str(row["id"]))
        return found

    def _post_chunk(self, lines: str, chunk: Sequence[Posting]) -> dict[str, PostingResult]:
        numbers = {document_number(p.key): p for p in chunk}
        existing = self._existing_lines(lines, list(numbers))
        out = {p.key: PostingResult(p.key, existing[n]) for n, p in numbers.items() if n in existing}
        todo = [p for n, p in numbers.items() if n not in existing]
        if not todo:
            return out
        try:
            answers = self.client.batch([BatchOperation("POST", lines, self.line(p)) for p in todo])
        except InDoubtError:
            # The batch may have been applied: every line it should have added must be there.
            found = self._existing_lines(lines, [document_number(p.key) for p in todo])
            if any(document_number(p.key) not in found for p in todo):
                raise
            out.update({p.key: PostingResult(p.key, found[document_number(p.key)]) for p in todo})
            return out
        for p, answer in zip(todo, answers, strict=True):
            if answer.ok:
                out[p.key] = PostingResult(p.key, str(answer.body["id"]))
                continue
            error = answer.error(p.key)
            if isinstance(error, TransientError):
                raise error  # sent again later, the lines already written are found by number
            out[p.key] = PostingResult(
                p.key, None, {"code": "erp.posting_rejected", "message": error.message, **error.details}
            )
        return out

    def posted(self, kind: WorkKind, period: str) -> list[PostedRecord]:
        """The hub's journal lines of a work period in every company, read back from their comments."""
        out: list[PostedRecord] = []
        prefix = f"{COMMENT_TAG}|{kind}|{period}|"
        for company in self.companies():
            journal = self.journal(company, kind, create=False)
            if journal is None:
                continue
            lines = self.client.company_path(company, f"journals({journal})/journalLines")
            query = {"$filter": f"startswith(comment,{odata_text(prefix)})", "$select": "id,amount,comment"}
            for row in self.client.collection(lines, query):
                fields = parse_comment(str(row.get("comment") or ""))
                if fields is None or fields["kind"] != kind or fields["period"] != period:
                    continue
                out.append(
                    PostedRecord(
                        erp_id=str(row["id"]),
                        key=fields["key"],
                        project=fields["project"] or None,
                        subsidiary=company,
                        hours=Decimal(fields["hours"]),
                        amount=Decimal(str(row.get("amount") or 0)),
                        entries=int(fields["entries"]),
                    )
                )
        return out


def build(
    name: str, settings: BusinessCentralSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> BusinessCentralErp:
    """The adapter of a configured Business Central system."""
    auth = MsalAuth(
        settings.client_id,
        settings.secret("client_secret"),
        f"{settings.authority_host.rstrip('/')}/{settings.tenant}",
        settings.scope,
        ca_bundle=settings.ca_bundle,
        timeout=settings.timeout_seconds,
    )
    client = BusinessCentralClient(
        settings.base_url,
        settings.tenant,
        settings.environment,
        auth=auth,
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
        ca_bundle=settings.ca_bundle,
    )
    return BusinessCentralErp(name, client, Mapping.load(settings.mapping or MAPPING), settings)


__all__ = ["BusinessCentralErp", "CompanyData", "build", "document_number", "number_for", "parse_comment"]
