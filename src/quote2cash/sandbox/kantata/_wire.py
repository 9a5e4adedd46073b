"""Kantata wire conventions: error bodies, request-field checking, timestamps, envelopes.

Kantata answers every error as ``{"errors": [{"type", "message", "field"?}]}``
with ``type`` one of ``authentication``, ``validation`` or ``system``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

Doc = dict[str, Any]

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
MAX_BULK = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class KantataError(ValueError):
    """A request Kantata refuses; carries the HTTP status and the ``errors`` array."""

    def __init__(self, status: int, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.status = status
        self.errors = errors

    @classmethod
    def validation(cls, message: str, field: str | None = None) -> KantataError:
        """A 422 with one validation error."""
        error = {"type": "validation", "message": message}
        if field is not None:
            error["field"] = field
        return cls(422, [error])

    @classmethod
    def not_found(cls, resource: str, id_: str) -> KantataError:
        """A 404 for an unknown id."""
        return cls(404, [{"type": "system", "message": f"{resource} {id_} was not found"}])

    @classmethod
    def system(cls, status: int, message: str) -> KantataError:
        """A non-validation error (bad request, unknown route)."""
        return cls(status, [{"type": "system", "message": message}])

    def body(self) -> dict[str, Any]:
        """The JSON body Kantata sends."""
        return {"errors": self.errors}


# -- timestamps --------------------------------------------------------------------------
def parse_timestamp(value: str) -> str:
    """Any ISO 8601 date or datetime, as the canonical UTC form used for comparisons."""
    text = value.strip()
    parsed = datetime.fromisoformat(text)  # raises ValueError; 3.11 accepts "Z"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(_TS_FORMAT)


class Clock:
    """Hands out strictly increasing UTC timestamps, one per write.

    A poller that keeps ``updated_after = <last updated_at seen>`` then never
    misses nor repeats a change, because no two writes share a timestamp.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()
        self._second = -1
        self._prefix = ""

    def advance_past(self, timestamp: str) -> None:
        """Never hand out a timestamp at or before ``timestamp`` (used at load)."""
        parsed = datetime.strptime(timestamp, _TS_FORMAT).replace(tzinfo=UTC)
        micros = (parsed - _EPOCH) // timedelta(microseconds=1)
        with self._lock:
            self._last = max(self._last, micros)

    def tick(self) -> str:
        """A new timestamp, later than every one handed out before."""
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            second, micros = divmod(self._last, 1_000_000)
            if second != self._second:  # bulk writes share a second: format it once
                self._second = second
                self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            return f"{self._prefix}.{micros:06d}Z"


# -- request fields ----------------------------------------------------------------------
class Fields:
    """Reads one request object field by field and collects Kantata validation errors."""

    def __init__(self, raw: Mapping[str, Any], *, where: str = "") -> None:
        self.raw = raw
        self.where = where
        self.errors: list[dict[str, str]] = []

    def fail(self, field: str, message: str) -> None:
        """Record a validation error on ``field``; ``message`` reads after the field name."""
        self.errors.append(
            {"type": "validation", "field": field, "message": f"{self.where}{field} {message}"}
        )

    def raise_errors(self) -> None:
        """Raise a 422 if any field failed."""
        if self.errors:
            raise KantataError(422, self.errors)

    def _value(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value == "" else value

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        """A string (numbers are accepted and stringified, as Rails does)."""
        value = self.raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(name, "can't be blank")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(name, "must be a string")
            return default
        return str(value)

    def integer(
        self, name: str, *, required: bool = False, default: int | None = None, minimum: int | None = None
    ) -> int | None:
        """A whole number (a JSON integer or a string of digits)."""
        value = self._value(name)
        if value is None:
            if required:
                self.fail(name, "can't be blank")
            return default
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        if number is None:
            self.fail(name, "must be an integer")
            return default
        if minimum is not None and number < minimum:
            self.fail(name, f"must be greater than {minimum - 1}" if minimum else "must not be negative")
            return default
        return number

    def boolean(self, name: str, *, default: bool) -> bool:
        """A boolean (``true``/``false``, also ``"true"``, ``"1"``, 0/1 as Rails accepts)."""
        value = self._value(name)
        if value is None:
            return default
        parsed = parse_bool(value)
        if parsed is None:
            self.fail(name, "must be true or false")
            return default
        return parsed

    def date(self, name: str, *, required: bool = False) -> str | None:
        """A ``YYYY-MM-DD`` date."""
        value = self._value(name)
        if value is None:
            if required:
                self.fail(name, "can't be blank")
            return None
        if not isinstance(value, str) or not is_date(value):
            self.fail(name, "must be a date in YYYY-MM-DD format")
            return None
        return value

    def ref(self, name: str, *, required: bool = False) -> str | None:
        """An id of another record, as a string (JSON numbers are accepted)."""
        value = self._value(name)
        if value is None:
            if required:
                self.fail(name, "can't be blank")
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip().isdigit():
            return value.strip()
        self.fail(name, "must be an id")
        return None

    def choice(self, name: str, options: Sequence[str], *, default: str) -> str:
        """One of ``options``."""
        value = self._value(name)
        if value is None:
            return default
        if value not in options:
            self.fail(name, f"must be one of: {', '.join(options)}")
            return default
        return str(value)

    def currency(self, name: str, *, default: str) -> str:
        """An ISO 4217 code (three letters, stored upper case)."""
        value = self._value(name)
        if value is None:
            return default
        if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
            self.fail(name, "must be a three-letter ISO currency code")
            return default
        return value.upper()

    def minutes_from_hours(self, name: str) -> int | None:
        """Hours (a number or decimal string) as whole minutes, rounded half up."""
        value = self._value(name)
        if value is None:
            return None
        try:
            hours = Decimal(str(value))
        except InvalidOperation:
            hours = Decimal("NaN")
        if isinstance(value, bool) or not hours.is_finite():
            self.fail(name, "must be a number")
            return None
        return int((hours * 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_bool(value: Any) -> bool | None:
    """A Rails-style boolean, or None when ``value`` is not one."""
    if isinstance(value, bool):
        return value
    if value in (1, "1", "true", "TRUE", "True", "t"):
        return True
    if value in (0, "0", "false", "FALSE", "False", "f"):
        return False
    return None


def is_date(value: str) -> bool:
    """Whether ``value`` is a ``YYYY-MM-DD`` calendar date."""
    if len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def add_days(day: str, days: int) -> str:
    """``day`` (``YYYY-MM-DD``) plus ``days``."""
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


# -- paging and envelopes ----------------------------------------------------------------
@dataclass(frozen=True)
class Paging:
    """Which slice of a list to answer (from ``page``/``per_page`` or ``limit``/``offset``)."""

    offset: int
    limit: int

    @property
    def page_number(self) -> int:
        """1-based page number of this slice."""
        return self.offset // self.limit + 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Paging:
        """Read the paging parameters; ``per_page``/``limit`` are capped at 200."""
        try:
            if "limit" in params or "offset" in params:
                limit = int(params.get("limit", DEFAULT_PER_PAGE))
                offset = int(params.get("offset", 0))
            else:
                limit = int(params.get("per_page", DEFAULT_PER_PAGE))
                offset = (int(params.get("page", 1)) - 1) * limit
        except ValueError as exc:
            raise KantataError.validation("paging parameters must be integers", "page") from exc
        if limit < 1 or offset < 0:
            raise KantataError.validation("page, per_page and limit must be positive", "page")
        return cls(offset=offset, limit=min(limit, MAX_PER_PAGE))


def envelope(
    resource: str,
    docs: Iterable[Doc],
    *,
    total: int,
    paging: Paging | None = None,
    included: Mapping[str, Mapping[str, Doc]] | None = None,
) -> dict[str, Any]:
    """The Kantata response: ``count``, ordered ``results``, id-keyed collections, ``meta``."""
    docs = list(docs)
    body: dict[str, Any] = {"count": total, "results": [{"key": resource, "id": d["id"]} for d in docs]}
    collections: dict[str, dict[str, Doc]] = {resource: {d["id"]: d for d in docs}}
    for name, objects in (included or {}).items():
        target = collections.setdefault(name, {})
        for id_, obj in objects.items():
            target.setdefault(id_, obj)
    body.update(collections)
    limit = paging.limit if paging else max(len(docs), 1)
    body["meta"] = {
        "count": total,
        "page_count": -(-total // limit),
        "page_number": paging.page_number if paging else 1,
    }
    return body
