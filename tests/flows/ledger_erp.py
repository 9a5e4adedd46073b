"""A minimal ERP connector that keeps its ledger in memory: the seam's proof.

It implements the :class:`quote2cash.ports.Erp` port and is registered
through the connector registry, exactly as a separately installed package
would be (docs/connectors.md walks through the same connector). No flow knows
it exists; routing sends it the projects of the legal entities configured.
"""

from __future__ import annotations

import threading
from calendar import monthrange
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import httpx

from quote2cash import Capabilities, Connector, SystemSettings, register
from quote2cash.connectors._http import RetryPolicy
from quote2cash.errors import BusinessRuleError
from quote2cash.model import AccountingPeriod, Customer, Money, Project
from quote2cash.ports import (
    CustomerRecord,
    ErpMasterData,
    ErpRefs,
    PostedRecord,
    Posting,
    PostingResult,
    WorkKind,
)


class LedgerSettings(SystemSettings):
    """A ledger needs no address; ``base_url`` is kept for the common settings' sake."""

    kind: Literal["ledger"] = "ledger"
    base_url: str = "http://ledger.invalid"
    subsidiaries: list[str]
    currencies: list[str]


class LedgerErp:
    """An ERP port over dictionaries."""

    capabilities = Capabilities(bulk_size=50, upsert_by_external_id=True)

    def __init__(self, name: str, settings: LedgerSettings) -> None:
        self.name = name
        self.settings = settings
        self.customers_by_key: dict[str, dict[str, Any]] = {}
        self.projects_by_key: dict[str, dict[str, Any]] = {}
        self.postings: dict[str, Posting] = {}
        #: Set by a test: project writes are refused, as an ERP refuses a record it cannot take.
        self.refuse_projects = False
        self.calls = 0
        self.retries = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release."""

    def _id(self, table: dict[str, dict[str, Any]], key: str, body: dict[str, Any]) -> str:
        with self._lock:
            self.calls += 1
            row = table.setdefault(key, {"id": f"L{len(table) + 1}"})
            row.update(body)
            return str(row["id"])

    def master_data(self, *, fresh: bool = False) -> ErpMasterData:
        """Every subsidiary active, each currency its own id, every month of 2026–2027 open."""
        months = [(y, m) for y in (2026, 2027) for m in range(1, 13)]
        periods = tuple(
            AccountingPeriod(name=f"{y}-{m:02d}", start=date(y, m, 1), end=date(y, m, monthrange(y, m)[1]))
            for y, m in months
        )
        return ErpMasterData(
            subsidiaries=dict.fromkeys(self.settings.subsidiaries, True),
            currencies={c: c for c in self.settings.currencies},
            terms={"Net 30": "30", "Net 45": "45", "Net 60": "60", "Due on receipt": "0"},
            departments={"Technology": "TECH", "Strategy": "STRAT", "Operations": "OPS", "Data": "DATA"},
            active_departments=frozenset({"TECH", "STRAT", "OPS", "DATA"}),
            classes={},
            periods=periods,
        )

    def customers(self) -> list[CustomerRecord]:
        return [
            CustomerRecord(id=str(c["id"]), name=str(c["name"]), external_id=key)
            for key, c in self.customers_by_key.items()
        ]

    def upsert_customer(
        self, customer: Customer, external_id: str, refs: ErpRefs, *, only: frozenset[str] | None = None
    ) -> str:
        return self._id(
            self.customers_by_key, external_id, {"name": customer.name, "subsidiary": refs.subsidiary}
        )

    def upsert_project(self, project: Project, external_id: str, refs: ErpRefs) -> str:
        if self.refuse_projects:
            raise BusinessRuleError(
                f"the ledger refuses project {external_id}: its period is locked", code="erp.record_refused"
            )
        return self._id(self.projects_by_key, external_id, {"name": project.name, "customer": refs.customer})

    def delete_project(self, erp_project_id: str) -> None:
        with self._lock:
            for key, row in list(self.projects_by_key.items()):
                if row["id"] == erp_project_id:
                    del self.projects_by_key[key]

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        with self._lock:
            self.calls += 1
            for p in postings:
                self.postings[p.key] = p  # an upsert by the hub's key
        return [PostingResult(p.key, f"J-{p.key}") for p in postings]

    def posted(self, kind: WorkKind, period: str) -> list[PostedRecord]:
        return [
            PostedRecord(
                erp_id=f"J-{p.key}",
                key=p.key,
                project=p.project,
                subsidiary=p.subsidiary,
                hours=(Decimal(p.minutes) / 60).quantize(Decimal("0.01")),
                amount=Money.from_minor(p.amount_minor, p.currency).amount,
                entries=p.entries,
            )
            for p in self.postings.values()
            if p.kind == kind and p.period == period
        ]


def _build(
    name: str, settings: LedgerSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> LedgerErp:
    return LedgerErp(name, settings)


CONNECTOR = register(Connector(kind="ledger", roles=("erp",), settings=LedgerSettings, build=_build))
