"""Master data read from a vendor, reused for a stated time (the system's ``cache_seconds``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class Cached:
    """Values read from a system, reused for ``seconds`` (0: read every time).

    One reader a key at a time: threads that need a value being read wait for
    that read and share it, so a burst's first runs read master data once,
    not once each. A read that fails raises in its own thread only; the next
    waiting thread reads again.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._reading: dict[str, threading.RLock] = {}

    def _fresh(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.seconds:
            return True, hit[1]
        return False, None

    def get(self, key: str, read: Callable[[], T]) -> T:
        """The cached value of ``key``, read again once it is older than the freshness rule."""
        found, value = self._fresh(key)
        if found:
            return cast(T, value)
        with self._lock:
            reading = self._reading.setdefault(key, threading.RLock())
        with reading:
            found, value = self._fresh(key)  # read by the thread this one waited for
            if found:
                return cast(T, value)
            fresh = read()
            with self._lock:
                self._values[key] = (time.monotonic(), fresh)
            return fresh

    def forget(self, key: str) -> None:
        """Drop a cached value (it changed, or is missing something)."""
        with self._lock:
            self._values.pop(key, None)
