"""Delivered work in Certinia as the hub's ledger rows: weekly timecards by day, and expenses.

A timecard header holds a week of hours (``pse__Monday_Hours__c`` …
``pse__Sunday_Hours__c``); the hub posts days, so each header becomes one row
per weekday, whose source id is the header's id and the weekday
(``a0I…/mon``) — stable whatever else changes on the header. A day with no
hours is sent as withdrawn, so a day cut to zero after posting is reversed;
one the ledger never held is ignored. Every row of a header carries the
header's ``SystemModstamp`` as its version: an approved timecard is locked, so
changing one means taking its approval back, which withdraws the whole week.

Changes are read with ``SystemModstamp > cursor`` ordered by
``SystemModstamp, Id`` through ``queryAll`` (deletions included) and cut into
pages only where the stamp changes, so a cursor taken from any page's last
record never skips a record sharing its stamp, and never reads one twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from quote2cash.connectors.salesforce.adapter import parse_sf_datetime
from quote2cash.errors import VendorPayloadError
from quote2cash.model import to_minor
from quote2cash.ports import WorkKind, WorkPage

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS_FIELDS = tuple(f"pse__{day}_Hours__c" for day in WEEKDAYS)
#: Headers (or expenses) per page handed to the hub; a page may run longer to end between stamps.
PAGE = 500
SOBJECTS: dict[WorkKind, str] = {"time": "pse__Timecard_Header__c", "expense": "pse__Expense__c"}
FIELDS: dict[WorkKind, tuple[str, ...]] = {
    "time": (
        "Id",
        "IsDeleted",
        "CreatedDate",
        "SystemModstamp",
        "pse__Project__c",
        "pse__Resource__c",
        "pse__Milestone__c",
        "pse__Start_Date__c",
        *HOURS_FIELDS,
        "pse__Status__c",
        "pse__Approved__c",
        "pse__Billable__c",
        "pse__Bill_Rate__c",
        "CurrencyIsoCode",
    ),
    "expense": (
        "Id",
        "IsDeleted",
        "CreatedDate",
        "SystemModstamp",
        "pse__Project__c",
        "pse__Resource__c",
        "pse__Expense_Date__c",
        "pse__Type__c",
        "pse__Amount__c",
        "CurrencyIsoCode",
        "pse__Billable__c",
        "pse__Non_Reimbursible__c",
        "pse__Status__c",
        "pse__Approved__c",
    ),
}


def _decimal(value: Any, field: str) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, bool):
        raise ValueError(field)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(field) from None


def _text(raw: dict[str, Any], field: str) -> str:
    value = raw[field]
    if not isinstance(value, str) or not value:
        raise ValueError(field)
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def day_source_id(header_id: str, weekday: int) -> str:
    """The stable source id of one day of a timecard header (``a0I…/mon``)."""
    return f"{header_id}/{WEEKDAYS[weekday][:3].lower()}"


def timecard_rows(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The seven day rows of a timecard header; raises VendorPayloadError naming the field."""
    try:
        header = _text(raw, "Id")
        version = _text(raw, "SystemModstamp")
        start = date.fromisoformat(_text(raw, "pse__Start_Date__c")[:10])
        currency = _text(raw, "CurrencyIsoCode")
        billable = bool(raw.get("pse__Billable__c"))
        rate_minor = to_minor(_decimal(raw.get("pse__Bill_Rate__c"), "pse__Bill_Rate__c"), currency)
        if not billable:
            rate_minor = 0  # non-billable time is cost: the hub values it, not the bill rate
        common = {
            "kind": "time",
            "version": version,
            "approved": bool(raw.get("pse__Approved__c")),
            "workspace_id": _text(raw, "pse__Project__c"),
            "user_id": _optional(raw.get("pse__Resource__c")),
            "currency": currency,
            "billable": billable,
            "seen_at": parse_sf_datetime(version),
            "task_id": _optional(raw.get("pse__Milestone__c")),
            "reimbursable": False,
            "category": None,
            "cost_centre": None,  # Certinia's timecards carry no cost centre of their own
        }
        rows = []
        for i, field in enumerate(HOURS_FIELDS):
            hours = _decimal(raw.get(field), field)
            if hours < 0:
                raise ValueError(field)
            minutes = int((hours * 60).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            rows.append(
                {
                    **common,
                    "source_id": day_source_id(header, i),
                    "deleted": bool(raw.get("IsDeleted")) or minutes == 0,
                    "work_date": start + timedelta(days=i),
                    "minutes": minutes,
                    "rate_minor": rate_minor,
                    "amount_minor": round(minutes * rate_minor / 60),
                }
            )
    except (KeyError, TypeError, ValueError, VendorPayloadError) as exc:
        raise _unreadable("pse__Timecard_Header__c", raw, exc) from exc
    return rows


def expense_row(raw: dict[str, Any]) -> dict[str, Any]:
    """The ledger row of an expense; raises VendorPayloadError naming the field."""
    try:
        version = _text(raw, "SystemModstamp")
        currency = _text(raw, "CurrencyIsoCode")
        return {
            "kind": "expense",
            "source_id": _text(raw, "Id"),
            "version": version,
            "approved": bool(raw.get("pse__Approved__c")),
            "deleted": bool(raw.get("IsDeleted")),
            "workspace_id": _text(raw, "pse__Project__c"),
            "user_id": _optional(raw.get("pse__Resource__c")),
            "currency": currency,
            "billable": bool(raw.get("pse__Billable__c")),
            "seen_at": parse_sf_datetime(version),
            "task_id": None,
            "work_date": date.fromisoformat(_text(raw, "pse__Expense_Date__c")[:10]),
            "minutes": 0,
            "rate_minor": 0,
            "amount_minor": to_minor(_decimal(raw.get("pse__Amount__c"), "pse__Amount__c"), currency),
            "reimbursable": not raw.get("pse__Non_Reimbursible__c"),
            "category": raw.get("pse__Type__c") or None,
            "cost_centre": None,
        }
    except (KeyError, TypeError, ValueError, VendorPayloadError) as exc:
        raise _unreadable("pse__Expense__c", raw, exc) from exc


def _unreadable(sobject: str, raw: dict[str, Any], exc: Exception) -> VendorPayloadError:
    field = exc.args[0] if isinstance(exc, KeyError | ValueError) and exc.args else str(exc)
    return VendorPayloadError(
        f"certinia sent a {sobject} record that cannot be read ({field!s}): "
        f"{ {k: raw.get(k) for k in list(raw)[:8] if k != 'attributes'} }",
        system="certinia",
        record=str(raw.get("Id")),
        details={"field": str(field)},
    )


def rows_of(kind: WorkKind, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The ledger rows of one Certinia record of a kind."""
    return timecard_rows(raw) if kind == "time" else [expense_row(raw)]


def convert(kind: WorkKind, records: list[dict[str, Any]]) -> WorkPage:
    """A page of records as ledger rows; unreadable ones are set aside with their error."""
    rows: list[dict[str, Any]] = []
    created: list[str] = []
    poison: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for record in records:
        try:
            converted = rows_of(kind, record)
        except VendorPayloadError as exc:
            if not record.get("SystemModstamp"):
                raise  # without its change stamp the cursor cannot move past it safely
            payload = {k: v for k, v in record.items() if k != "attributes"}
            poison.append((exc.to_dict(), {"id": record.get("Id"), **payload}))
            continue
        rows.extend(converted)
        created.extend([str(record.get("CreatedDate") or "")] * len(converted))
    return WorkPage(rows, created, poison, str(records[-1]["SystemModstamp"]))


def pages(kind: WorkKind, records: Iterable[dict[str, Any]], size: int = PAGE) -> Iterator[WorkPage]:
    """Records in change order as pages of about ``size``, each ending where the stamp changes."""
    batch: list[dict[str, Any]] = []
    for record in records:
        if len(batch) >= size and record.get("SystemModstamp") != batch[-1].get("SystemModstamp"):
            yield convert(kind, batch)
            batch = []
        batch.append(record)
    if batch:
        yield convert(kind, batch)
