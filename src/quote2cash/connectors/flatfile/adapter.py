"""A legacy flat-file ERP as the hub's ERP (:class:`quote2cash.ports.Erp`).

Customers, projects and postings are CSV files the ERP's import job takes
from the outbound folder (:mod:`.client`, :mod:`.layout`); the ERP answers each
file with acknowledgement and rejection files. The ERP keys customers and
projects by the hub's external id, so the id a write returns is that
external id (a customer the ERP already had is referred to by its own number).
Postings go one file per ``post`` call, named from a hash of the sorted
posting keys; the id a posting gets is ``file:<name>#<row>`` until the ERP
has answered (within ``ack_wait_seconds``: the ERP's own id, or the refusal).

A posting already published is not written again: the same key with the same
content returns its earlier answer, and is only sent again once the ERP has
refused it. :meth:`FlatFileErp.posted` reads the acknowledged postings back
for reconciliation; :meth:`FlatFileErp.rejections` the refused ones, each
with the ERP's reason as a hub error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from quote2cash.connectors._cache import Cached
from quote2cash.connectors._http import ClientBacked, RetryPolicy
from quote2cash.connectors.flatfile.client import Answer, FlatFileClient
from quote2cash.connectors.flatfile.errors import SYSTEM, rejection_error, unreachable
from quote2cash.connectors.flatfile.layout import (
    EXPORT_COLUMNS,
    EXPORT_FILE,
    LAYOUTS,
    MASTER_FILE,
    POSTING_COLUMNS,
    cell,
    decode,
    parse_master,
    slug,
)
from quote2cash.connectors.flatfile.settings import FlatFileSettings
from quote2cash.errors import BusinessRuleError
from quote2cash.model import Customer, Project, from_minor
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


@dataclass(frozen=True)
class Sent:
    """Where a posting key was last published, and what the ERP answered (None: not yet)."""

    stem: str
    row: int
    cells: tuple[str, ...]
    answer: Answer | None

    @property
    def reference(self) -> str:
        """The posting's id until the ERP answers: ``file:<name>#<row>``."""
        return f"file:{self.stem}.csv#{self.row}"


def posting_cells(p: Posting) -> tuple[str, ...]:
    """A posting as a row of the postings layout."""
    hours = (Decimal(p.minutes) / 60).quantize(Decimal("0.01"))
    values: dict[str, Any] = {
        "key": p.key,
        "kind": p.kind,
        "mode": p.mode,
        "project": p.project,
        "erp_project": p.erp_project_id,
        "task": p.task_id,
        "legal_entity": p.legal_entity,
        "subsidiary": p.subsidiary,
        "department": p.department,
        "period": p.period,
        "tran_date": p.tran_date,
        "billable": p.billable,
        "minutes": p.minutes,
        "hours": hours,
        "amount": from_minor(p.amount_minor, p.currency),
        "currency": p.currency,
        "entries": p.entries,
        "debit_account": p.accounts.debit,
        "credit_account": p.accounts.credit,
        "reversal_of": p.reversal_of,
    }
    return tuple(cell(values[c]) for c in POSTING_COLUMNS)


def postings_base(kind: str, keys: Sequence[str]) -> str:
    """The deterministic name of a posting file: its kind and a hash of its sorted keys."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24]
    return f"postings_{kind}_{digest}"


class FlatFileErp(ClientBacked[FlatFileClient]):
    """The ERP port over one exchange folder."""

    def __init__(self, name: str, client: FlatFileClient, settings: FlatFileSettings) -> None:
        self.name = name
        self.client = client
        self.settings = settings
        self.cache = Cached(settings.cache_seconds)
        self.capabilities = Capabilities(
            bulk_size=settings.bulk_size,
            upsert_by_external_id=True,
            external_references=True,
            max_concurrency=1,
            answers_later=True,
        )

    # -- master data -----------------------------------------------------------------------
    def master_data(self, *, fresh: bool = False) -> ErpMasterData:
        """The ERP's ``masterdata.json`` export, reused for ``cache_seconds``."""
        if fresh:
            self.cache.forget("master")
        return self.cache.get("master", self._read_master)

    def _read_master(self) -> ErpMasterData:
        data = self.client.inbound_file(MASTER_FILE)
        if data is None:
            raise unreachable(
                str(self.client.inbound / MASTER_FILE), "the legacy ERP has not exported its master data yet"
            )
        return parse_master(data)

    def customers(self) -> list[CustomerRecord]:
        """The ERP's customer export, with the customers the hub wrote that it does not list yet."""
        return list(self.cache.get("customers", self._read_customers).values())

    def _read_customers(self) -> dict[str, CustomerRecord]:
        known: dict[str, CustomerRecord] = {}
        for stem, _ in self.client.published("customer"):
            row = self.client.rows(stem)[0]
            if row["action"] == "upsert":
                known[row["key"]] = CustomerRecord(
                    id=row["key"],
                    name=row["name"],
                    website=row["website"] or None,
                    tax_id=row["tax_id"] or None,
                    external_id=row["key"],
                    subsidiary=row["subsidiary"] or None,
                )
        data = self.client.inbound_file(EXPORT_FILE)
        for r in decode(data, EXPORT_COLUMNS, what=EXPORT_FILE, record=EXPORT_FILE) if data else []:
            if r["active"] == "false":
                continue
            # The ERP accepts either reference; the hub's writes use the external id.
            ref = r["external_id"] or r["id"]
            known[ref] = CustomerRecord(
                id=ref,
                name=r["name"],
                website=r["website"] or None,
                tax_id=r["tax_id"] or None,
                external_id=r["external_id"] or None,
                subsidiary=r["subsidiary"] or None,
            )
        return known

    # -- customers and projects ------------------------------------------------------------
    def _upsert(self, layout: str, key: str, values: dict[str, Any]) -> str:
        columns = LAYOUTS[layout][1]
        stem = self.client.publish(f"{layout}_{slug(key)}", [[values.get(c) for c in columns]], mutable=True)
        if self.settings.ack_wait_seconds:
            answers = self.client.wait_answers(
                stem, self.settings.ack_wait_seconds, self.settings.poll_seconds
            )
            refused = [a for a in answers or [] if a.status == "rejected"]
            if refused:
                a = refused[0]
                raise rejection_error(
                    layout, a.code or "", a.reason or "", key=key, file=f"{stem}.csv", row=a.row
                )
        return key

    def upsert_customer(
        self, customer: Customer, external_id: str, refs: ErpRefs, *, only: frozenset[str] | None = None
    ) -> str:
        """Write the customer's file (a new revision when it changed); returns the external id.

        With ``only`` (an update), the row's action is ``update`` and only those fields are
        filled: the legacy ERP keeps its own value of every empty cell.
        """
        values = {
            "name": customer.name,
            "website": customer.website,
            "tax_id": customer.tax_id,
            "country": customer.country,
            "subsidiary": refs.subsidiary,
            "currency": refs.currency,
            "terms": refs.terms,
        }
        if only is not None:
            values = {k: (v if k in only else None) for k, v in values.items()}
        self._upsert(
            "customer",
            external_id,
            {"key": external_id, "action": "upsert" if only is None else "update", **values},
        )
        known = self.cache.get("customers", self._read_customers)
        known[external_id] = CustomerRecord(
            id=external_id,
            name=customer.name,
            website=customer.website,
            tax_id=customer.tax_id,
            external_id=external_id,
            subsidiary=refs.subsidiary,
        )
        return external_id

    def upsert_project(self, project: Project, external_id: str, refs: ErpRefs) -> str:
        """Write the project's file under its customer, with its dimensions; returns the external id."""
        return self._upsert(
            "project",
            external_id,
            {
                "key": external_id,
                "action": "upsert",
                "name": project.name,
                "customer": refs.customer,
                "subsidiary": refs.subsidiary,
                "currency": refs.currency,
                "department": refs.department,
                "class": refs.class_,
                "billing_model": project.billing_model,
                "start_date": project.start_date,
                "end_date": project.end_date,
            },
        )

    def delete_project(self, erp_project_id: str) -> None:
        """Write a ``delete`` revision of the project's file; the ERP accepts deleting what it lacks."""
        self._upsert("project", erp_project_id, {"key": erp_project_id, "action": "delete"})

    # -- postings --------------------------------------------------------------------------
    def sent(self) -> dict[str, list[Sent]]:
        """Every published posting by key, oldest first, with the ERP's answer where there is one."""
        out: dict[str, list[Sent]] = {}
        for stem, _ in self.client.published("postings"):
            rows = self.client.rows(stem)
            answers = self.client.answers(stem)
            for n, row in enumerate(rows, start=1):
                out.setdefault(row["key"], []).append(
                    Sent(stem, n, tuple(row[c] for c in POSTING_COLUMNS), answers[n - 1] if answers else None)
                )
        return out

    def _result(self, sent: Sent) -> PostingResult:
        a = sent.answer
        if a is None:
            return PostingResult(sent.cells[0], sent.reference)
        if a.status == "accepted":
            return PostingResult(a.key, a.erp_id)
        error = rejection_error(
            "postings", a.code or "", a.reason or "", key=a.key, file=f"{sent.stem}.csv", row=a.row
        )
        return PostingResult(a.key, None, error.to_dict())

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        """Write the postings not yet published (or refused) as one file; one result per posting.

        A posting published earlier with the same content gets its earlier
        answer; one published with different content under its key is refused
        (a posted transaction is corrected by a reversal, never rewritten).
        """
        if len(postings) > self.settings.bulk_size:
            raise ValueError(f"at most {self.settings.bulk_size} postings a call, not {len(postings)}")
        earlier = self.sent()
        results: dict[str, PostingResult] = {}
        to_send: list[tuple[Posting, tuple[str, ...]]] = []
        for p in postings:
            cells = posting_cells(p)
            last = earlier[p.key][-1] if p.key in earlier else None
            if last is None or (last.answer is not None and last.answer.status == "rejected"):
                to_send.append((p, cells))
            elif last.cells == cells:
                results[p.key] = self._result(last)
            else:
                results[p.key] = PostingResult(
                    p.key,
                    None,
                    BusinessRuleError(
                        f"posting {p.key} was already sent to the legacy ERP ({last.stem}.csv, row {last.row}) "
                        "with different content; a posted transaction is never rewritten: reverse it and post anew",
                        code="erp.posting_rejected",
                        system=SYSTEM,
                        record=p.key,
                        details={"file": f"{last.stem}.csv", "row": last.row, "vendor_code": "FILE_CONFLICT"},
                    ).to_dict(),
                )
        if to_send:
            kind = to_send[0][0].kind
            base = postings_base(kind, [p.key for p, _ in to_send])
            stem = self.client.publish(base, [cells for _, cells in to_send], mutable=False)
            answers: list[Answer] | None = None
            if self.settings.ack_wait_seconds:
                answers = self.client.wait_answers(
                    stem, self.settings.ack_wait_seconds, self.settings.poll_seconds
                )
            for n, (p, cells) in enumerate(to_send, start=1):
                results[p.key] = self._result(Sent(stem, n, cells, answers[n - 1] if answers else None))
        return [results[p.key] for p in postings]

    def posted(self, kind: WorkKind, period: str) -> list[PostedRecord]:
        """The postings of a work period the ERP acknowledged, one per ERP id (a key held twice shows twice)."""
        out: dict[tuple[str, str], PostedRecord] = {}
        k, per = POSTING_COLUMNS.index("kind"), POSTING_COLUMNS.index("period")
        for key, sends in self.sent().items():
            for s in sends:
                if s.cells[k] != kind or s.cells[per] != period or s.answer is None:
                    continue
                if s.answer.status != "accepted" or s.answer.erp_id is None:
                    continue
                row = dict(zip(POSTING_COLUMNS, s.cells, strict=True))
                out.setdefault(
                    (key, s.answer.erp_id),
                    PostedRecord(
                        erp_id=s.answer.erp_id,
                        key=key,
                        project=row["project"] or None,
                        subsidiary=row["subsidiary"] or None,
                        hours=Decimal(row["hours"]),
                        amount=Decimal(row["amount"]),
                        entries=int(row["entries"]),
                    ),
                )
        return list(out.values())

    def rejections(self, kind: WorkKind | None = None) -> list[PostingResult]:
        """Postings whose latest answer is a refusal, each with the ERP's reason as a hub error dict.

        The results have the shape :meth:`post` returns, so the posting flow can
        record them as it records a refusal answered at once (the posting fails
        and its entries go to finance as cases). A posting sent again after the
        fix leaves this list once the ERP has accepted it.
        """
        k = POSTING_COLUMNS.index("kind")
        out = []
        for sends in self.sent().values():
            last = sends[-1]
            if kind is not None and last.cells[k] != kind:
                continue
            if last.answer is not None and last.answer.status == "rejected":
                out.append(self._result(last))
        return out


def build(
    name: str, settings: FlatFileSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> FlatFileErp:
    """The adapter of a configured flat-file ERP (``transport`` and ``retry`` do not apply to files)."""
    client = FlatFileClient(settings.folder, outbound=settings.outbound, inbound=settings.inbound)
    return FlatFileErp(name, client, settings)


__all__ = ["FlatFileErp", "Sent", "build", "posting_cells", "postings_base"]
