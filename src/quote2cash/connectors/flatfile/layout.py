"""The documented file layouts shared with the legacy ERP's import and export jobs.

Every CSV file is UTF-8 (no byte-order mark), RFC 4180 (comma, ``"`` quoting
where needed, CRLF line ends), with a header row naming the columns in the
fixed order below. Dates are ISO 8601 (``2026-10-31``); amounts are signed
decimal strings with exactly the currency's minor-unit places (``1234.50``
USD, ``1234`` JPY); booleans are ``true``/``false``; an empty cell is "none".
``docs/flatfile-erp.md`` describes each column for the ERP team; the layout
version travels in every manifest, so a changed layout is a new version.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from quote2cash.errors import VendorPayloadError
from quote2cash.model import AccountingPeriod
from quote2cash.ports import ErpMasterData

SYSTEM = "flatfile"

#: Customer file (hub -> ERP): one row, the customer keyed by the hub's external id.
CUSTOMER_COLUMNS = (
    "key",
    "action",
    "name",
    "website",
    "tax_id",
    "country",
    "subsidiary",
    "currency",
    "terms",
)
#: Project file (hub -> ERP): one row; ``action`` is ``upsert`` or ``delete``.
PROJECT_COLUMNS = (
    "key",
    "action",
    "name",
    "customer",
    "subsidiary",
    "currency",
    "department",
    "class",
    "billing_model",
    "start_date",
    "end_date",
)
#: Posting file (hub -> ERP): one row per transaction.
POSTING_COLUMNS = (
    "key",
    "kind",
    "mode",
    "project",
    "erp_project",
    "task",
    "legal_entity",
    "subsidiary",
    "department",
    "period",
    "tran_date",
    "billable",
    "minutes",
    "hours",
    "amount",
    "currency",
    "entries",
    "debit_account",
    "credit_account",
    "reversal_of",
)
#: Acknowledgement file (ERP -> hub): one row per accepted row of the file it answers.
ACK_COLUMNS = ("row", "key", "status", "erp_id")
#: Rejection file (ERP -> hub): one row per refused row; ``row`` 0 and key ``*`` refuse the whole file.
REJ_COLUMNS = ("row", "key", "status", "code", "reason")
#: Customer export (ERP -> hub): every customer of the ERP, for identity matching.
EXPORT_COLUMNS = ("id", "name", "website", "tax_id", "external_id", "subsidiary", "active")

#: Layouts by the prefix of a hub file's name, with their version.
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer": ("customer/1", CUSTOMER_COLUMNS),
    "project": ("project/1", PROJECT_COLUMNS),
    "postings": ("postings/1", POSTING_COLUMNS),
}
MASTER_FILE = "masterdata.json"
EXPORT_FILE = "customers.csv"
WHOLE_FILE = "*"

_SAFE = re.compile(r"[A-Za-z0-9-]")


def slug(key: str) -> str:
    """A key as a file-name part: letters, digits and ``-`` kept, any other character as ``_XX`` (hex)."""
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"_{b:02X}" for b in c.encode()) for c in key)


def cell(value: Any) -> str:
    """One value as the layout writes it (None empty, booleans ``true``/``false``, dates ISO)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def encode(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file: the header, then each row's cells (each row exactly as long as the header)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells, the layout {len(columns)}")
        writer.writerow([cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def decode(
    data: bytes, columns: Sequence[str], *, what: str, record: str | None = None
) -> list[dict[str, str]]:
    """Rows of a CSV file in a layout; :class:`VendorPayloadError` if the header or a row does not fit."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VendorPayloadError(
            f"the {what} is not UTF-8 text", system=SYSTEM, record=record, details={"file": record}
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != tuple(columns):
        raise VendorPayloadError(
            f"the {what} has the header {header!r}; the layout is {list(columns)!r}",
            system=SYSTEM,
            record=record,
            details={"file": record, "header": header},
        )
    rows = []
    for n, cells in enumerate(reader, start=1):
        if len(cells) != len(columns):
            raise VendorPayloadError(
                f"row {n} of the {what} has {len(cells)} cells, the layout {len(columns)}",
                system=SYSTEM,
                record=record,
                details={"file": record, "row": n},
            )
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Subsidiary(_Strict):
    id: str
    name: str = ""
    active: bool = True


class _Currency(_Strict):
    code: str
    id: str


class _Named(_Strict):
    id: str
    name: str


class _Department(_Named):
    active: bool = True


class _Period(_Strict):
    name: str
    start: date
    end: date
    closed: bool = False


class MasterExport(_Strict):
    """The master-data export the legacy ERP drops as ``masterdata.json`` in the inbound folder.

    Attributes:
        exported_at: when the ERP wrote it (ISO 8601).
        subsidiaries: ``{"id", "name", "active"}`` each.
        currencies: ``{"code": ISO 4217, "id": the ERP's id}`` each.
        terms: payment terms, ``{"id", "name"}`` each.
        departments: cost centres, ``{"id", "name", "active"}`` each.
        classes: reporting classes, ``{"id", "name"}`` each.
        periods: accounting months, ``{"name", "start", "end", "closed"}`` each.
    """

    exported_at: str | None = None
    subsidiaries: list[_Subsidiary]
    currencies: list[_Currency]
    terms: list[_Named] = []
    departments: list[_Department] = []
    classes: list[_Named] = []
    periods: list[_Period]

    def as_master_data(self) -> ErpMasterData:
        """The export by the names the hub's canonical model uses."""
        return ErpMasterData(
            subsidiaries={s.id: s.active for s in self.subsidiaries},
            currencies={c.code: c.id for c in self.currencies},
            terms={t.name: t.id for t in self.terms},
            departments={d.name: d.id for d in self.departments},
            active_departments=frozenset(d.id for d in self.departments if d.active),
            classes={c.name: c.id for c in self.classes},
            periods=tuple(
                AccountingPeriod(name=p.name, start=p.start, end=p.end, closed=p.closed) for p in self.periods
            ),
        )


def parse_master(data: bytes) -> ErpMasterData:
    """Read a ``masterdata.json`` export; :class:`VendorPayloadError` naming the field otherwise."""
    try:
        return MasterExport.model_validate_json(data).as_master_data()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VendorPayloadError(
            f"the legacy ERP's {MASTER_FILE} cannot be read: {where}: {first['msg']}",
            system=SYSTEM,
            record=MASTER_FILE,
            details={"field": where},
        ) from exc


__all__ = [
    "ACK_COLUMNS",
    "CUSTOMER_COLUMNS",
    "EXPORT_COLUMNS",
    "EXPORT_FILE",
    "LAYOUTS",
    "MASTER_FILE",
    "POSTING_COLUMNS",
    "PROJECT_COLUMNS",
    "REJ_COLUMNS",
    "WHOLE_FILE",
    "MasterExport",
    "cell",
    "decode",
    "encode",
    "parse_master",
    "slug",
]
