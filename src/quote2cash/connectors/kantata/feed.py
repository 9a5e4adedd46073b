"""The PSA change feed as ledger rows, read ahead of the hub's work.

Each request needs the last change stamp of the page before, so pages cannot
be fetched in parallel. A short feed is read page by page in the hub's
process; a backlog such as a month-end is read ahead, overlapping the PSA's
time with the hub's work on the previous page, in a separate process, which decodes and converts the
pages on the second core while the hub classifies and stores.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from quote2cash import errors
from quote2cash.connectors._http import Limiter, RetryPolicy
from quote2cash.connectors.kantata.client import KantataClient
from quote2cash.errors import HubError, VendorPayloadError
from quote2cash.ports import WorkPage

RESOURCES = {"time": "time_entries", "expense": "expenses"}
PAGE = 200


def parse_time(value: str) -> datetime:
    """Kantata's ``2025-01-23T10:00:00.123456Z`` as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _day(value: str) -> date:
    # A month of entries has a few dozen distinct dates.
    return date.fromisoformat(value)


#: Side-load of a change feed page when entries carry their own cost centre.
CUSTOM_FIELDS = "custom_field_values"


def page_params(cost_centre_field: str | None) -> dict[str, str]:
    """The query parameters of a change-feed page (beyond paging and the cursor)."""
    params = {"order": "updated_at:asc", "include_deleted": "true"}
    if cost_centre_field:
        params["include"] = CUSTOM_FIELDS
    return params


def cost_centres(envelope: dict[str, Any], field_name: str | None) -> dict[str, str]:
    """Custom field value id -> value, for the cost-centre field, from a page's side-load."""
    if not field_name:
        return {}
    values = envelope.get(CUSTOM_FIELDS) or {}
    return {
        str(id_): str(v["value"])
        for id_, v in values.items()
        if isinstance(v, dict)
        and v.get("custom_field_name") == field_name
        and v.get("value") not in (None, "")
    }


def _own_cost_centre(raw: dict[str, Any], centres: dict[str, str]) -> str | None:
    return next((centres[str(i)] for i in raw.get("custom_field_value_ids") or () if str(i) in centres), None)


def to_row(kind: str, raw: dict[str, Any], centres: dict[str, str] | None = None) -> dict[str, Any]:
    """A PSA record as a ``work_entry`` row; raises VendorPayloadError naming the field.

    ``centres`` are the page's cost-centre values by custom field value id.
    """
    try:
        version = str(raw["updated_at"])
        row: dict[str, Any] = {
            "kind": kind,
            "source_id": str(raw["id"]),
            "version": version,
            "approved": bool(raw.get("approved")),
            "deleted": bool(raw.get("deleted_at")),
            "workspace_id": str(raw["workspace_id"]),
            "user_id": None if raw.get("user_id") is None else str(raw["user_id"]),
            "currency": str(raw.get("currency") or ""),
            "billable": bool(raw.get("billable")),
            "seen_at": parse_time(version),
            "cost_centre": _own_cost_centre(raw, centres) if centres else None,
        }
        if kind == "time":
            row.update(
                task_id=None if raw.get("story_id") is None else str(raw["story_id"]),
                work_date=_day(str(raw["date_performed"])),
                minutes=int(raw["time_in_minutes"]),
                rate_minor=int(raw.get("rate_in_cents") or 0),
                reimbursable=False,
                category=None,
            )
            row["amount_minor"] = round(row["minutes"] * row["rate_minor"] / 60)
        else:
            row.update(
                task_id=None,
                work_date=_day(str(raw["date"])),
                minutes=0,
                rate_minor=0,
                amount_minor=int(raw["amount_in_cents"]),
                reimbursable=bool(raw.get("reimbursable")),
                category=raw.get("category") or None,
            )
    except (KeyError, TypeError, ValueError) as exc:
        field = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise VendorPayloadError(
            f"kantata sent a {RESOURCES[kind]} record that cannot be read ({field!s}): "
            f"{ {k: raw.get(k) for k in list(raw)[:8]} }",
            system="kantata",
            record=str(raw.get("id")),
            details={"field": str(field)},
        ) from exc
    return row


def convert(kind: str, records: list[dict[str, Any]], centres: dict[str, str] | None = None) -> WorkPage:
    """A page of PSA records as ledger rows; unreadable ones are set aside with their error."""
    rows: list[dict[str, Any]] = []
    created: list[str] = []
    poison: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for record in records:
        try:
            rows.append(to_row(kind, record, centres))
            created.append(str(record.get("created_at") or ""))
        except VendorPayloadError as exc:
            if not record.get("updated_at"):
                raise  # without its change stamp the cursor cannot move past it safely
            poison.append((exc.to_dict(), record))
    return WorkPage(rows, created, poison, str(records[-1]["updated_at"]))


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, HubError):
        return {"class": type(exc).__name__, **exc.to_dict()}
    return {
        "class": "TransientError",
        "code": "vendor.reader_failed",
        "message": f"{type(exc).__name__}: {exc}",
        "system": "kantata",
        "record": None,
        "details": {},
    }


def _raise(data: dict[str, Any]) -> None:
    cls = getattr(errors, str(data.get("class")), HubError)
    raise cls(
        data["message"],
        code=data["code"],
        system=data.get("system"),
        record=data.get("record"),
        details=data.get("details") or {},
    )


def _reader(settings: dict[str, Any], kind: str, since: str, out: Any) -> None:
    """Process entry point: fetch pages in one thread, convert them in another, hand them over.

    The next request goes out as soon as a page's last change stamp is known,
    so converting a page overlaps the PSA preparing the next one.
    """
    client = KantataClient(
        settings["base_url"],
        settings["token"],
        timeout=settings["timeout"],
        retry=settings["retry"],
        limiter=Limiter(settings["concurrency"], settings["rate_per_second"]),
    )
    field_name = settings.get("cost_centre_field")
    fetched: queue.Queue[tuple[list[dict[str, Any]], dict[str, str]] | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []

    def fetch() -> None:
        last = since
        try:
            while True:
                envelope = client.fetch_page(
                    RESOURCES[kind], page=1, per_page=PAGE, updated_after=last, **page_params(field_name)
                )
                records = client.resolve(envelope)
                if records:
                    stamp = records[-1].get("updated_at")
                    fetched.put((records, cost_centres(envelope, field_name)))
                    if not stamp:
                        break  # convert() reports the missing stamp
                    last = str(stamp)
                if len(records) < PAGE:
                    break
        except BaseException as exc:
            failure.append(exc)
        finally:
            fetched.put(None)

    fetcher = threading.Thread(target=fetch, name="fetch", daemon=True)
    fetcher.start()
    try:
        while (item := fetched.get()) is not None:
            out.put(("page", convert(kind, *item)))
        if failure:
            raise failure[0]
        out.put(("end", None))
    except BaseException as exc:  # handed to the hub, which raises it
        out.put(("error", _error(exc)))
    finally:
        client.close()


def process_pages(settings: dict[str, Any], kind: str, since: str) -> Iterator[WorkPage]:
    """Pages after ``since``, read by a separate process (started here, always stopped)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue(maxsize=8)
    proc = ctx.Process(target=_reader, args=(settings, kind, since, out), name=f"pull:{kind}", daemon=True)
    proc.start()
    try:
        while True:
            try:
                what, item = out.get(timeout=1.0)
            except queue.Empty:
                if not proc.is_alive():
                    raise errors.TransientError(
                        f"the PSA reader process stopped unexpectedly (exit code {proc.exitcode})",
                        code="vendor.reader_failed",
                        system="kantata",
                    ) from None
                continue
            if what == "end":
                return
            if what == "error":
                _raise(item)
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5)
        out.close()


def reader_settings(
    base_url: str,
    token: str,
    timeout: float,
    retry: RetryPolicy,
    limiter: Limiter,
    cost_centre_field: str | None = None,
) -> dict[str, Any]:
    """What the reader process needs to talk to the PSA (picklable).

    The reader sends one request at a time, so it stays within the system's limits.
    """
    return {
        "base_url": base_url,
        "token": token,
        "timeout": timeout,
        "retry": retry,
        "concurrency": 1,
        "rate_per_second": limiter.rate_per_second,
        "cost_centre_field": cost_centre_field,
    }
