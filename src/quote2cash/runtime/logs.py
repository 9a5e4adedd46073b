"""Structured JSON logs with the correlation id on every line and personal data redacted,
and the same redaction for what the hub stores (:func:`minimise`)."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import structlog

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# International (+44 20 7946 0958) or grouped (555-010-1234, (555) 010 1234) numbers;
# bare digit runs are ids, not phones.
_PHONE = re.compile(r"\+\d[\d ()-]{6,}\d|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")
_SECRET_KEYS = ("secret", "token", "password", "authorization", "signature")


def redact(value: Any) -> Any:
    """Mask e-mail addresses and phone numbers; drop secret-looking fields."""
    if isinstance(value, str):
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {
            k: "[redacted]" if any(s in str(k).lower() for s in _SECRET_KEYS) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


#: Fields that name or reach a person: their values are masked in stored payloads. Matched on the
#: field name without case, ``_`` or ``-`` (``Email``, ``billing_email``, ``MobilePhone``, ``full_name``).
_PERSONAL_SUFFIXES = ("email", "phone", "fax", "firstname", "lastname", "fullname", "middlename")
_PERSONAL_NAMES = frozenset({"contactname", "personname", "name_of_contact", "salutation", "birthdate"})
#: Records of these types describe a person; their ``Name`` is a personal name, not a company's.
_PERSON_TYPES = frozenset({"contact", "user", "lead", "person", "employee", "resource"})


def _personal(key: str) -> str | None:
    """The mask of a field that holds personal data, None for any other field."""
    flat = key.lower().replace("_", "").replace("-", "")
    if flat.endswith(("email", "emailaddress")):
        return "[email]"
    if flat.endswith(("phone", "fax", "phonenumber")):
        return "[phone]"
    if flat.endswith(_PERSONAL_SUFFIXES) or flat in _PERSONAL_NAMES:
        return "[name]"
    return None


def minimise(value: Any) -> Any:
    """A stored payload with personal data masked and secrets dropped; what a replay needs is kept.

    Ids, amounts, dates, company names and every other business field pass
    unchanged, so an inbox payload or a case's payload replays as before.
    E-mail addresses and phone numbers are masked wherever they appear (a
    deal name, a case message), fields that name a person (``Email``,
    ``Phone``, ``FirstName``, ``full_name``...) are masked whatever their
    value, and so is the ``Name`` of a record typed as a person (a Salesforce
    ``Contact`` or ``User``, ``attributes.type``). Secret-looking fields are
    dropped as in the logs. The result is JSON-like: a tuple comes back a list.
    """
    if isinstance(value, dict):
        kind = value.get("attributes", {}).get("type") if isinstance(value.get("attributes"), dict) else None
        person = isinstance(kind, str) and kind.lower() in _PERSON_TYPES
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = str(k)
            if any(s in key.lower() for s in _SECRET_KEYS):
                out[k] = "[redacted]"
            elif (mask := _personal(key)) is not None and v not in (None, ""):
                out[k] = mask
            elif person and key.lower() == "name" and v not in (None, ""):
                out[k] = "[name]"
            else:
                out[k] = minimise(v)
        return out
    if isinstance(value, list | tuple):
        return [minimise(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: v if k in ("timestamp", "level") else redact(v) for k, v in event.items()}


def configure_logging(level: str = "INFO", path: Path | None = None, stream: TextIO | None = None) -> None:
    """JSON lines to ``path`` (or ``stream``, default stderr)."""
    out: TextIO
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("a", encoding="utf-8")
    else:
        out = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # The engine's own log lines (DBOS, step retries) go to the same place, as JSON.
    engine_log = logging.getLogger("dbos")
    for handler in list(engine_log.handlers):
        engine_log.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.setFormatter(_JsonFormatter())
    engine_log.addHandler(handler)
    engine_log.propagate = False


class _JsonFormatter(logging.Formatter):
    """Standard-library records as redacted JSON lines, like structlog's."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


@contextmanager
def correlated(correlation_id: str, **more: Any) -> Iterator[None]:
    """Put a correlation id (and more) on every log line inside the block."""
    with structlog.contextvars.bound_contextvars(correlation_id=correlation_id, **more):
        yield
