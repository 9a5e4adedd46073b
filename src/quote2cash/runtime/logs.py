"""Structured JSON logs with the correlation id on every line and personal data redacted."""

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
