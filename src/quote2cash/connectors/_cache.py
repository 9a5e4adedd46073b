"""Master data read from a vendor, reused for a stated time (the system's ``cache_seconds``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Cached:
    """Values read from a system, reused for ``seconds`` (0: read every time)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, read: Callable[[], T]) -> T:
        """The cached value of ``key``, read again once it is older than the freshness rule."""
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.seconds:
            value: T = hit[1]
            return value
        fresh = read()
        with self._lock:
            self._values[key] = (time.monotonic(), fresh)
        return fresh

    def forget(self, key: str) -> None:
        """Drop a cached value (it changed, or is missing something)."""
        with self._lock:
            self._values.pop(key, None)
