"""Master data read from a vendor is read once for the threads that need it at the same time."""

from __future__ import annotations

import threading
import time

import pytest

from quote2cash.connectors._cache import Cached


def _together(n: int, work: object) -> list[object]:
    results: list[object] = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work()  # type: ignore[operator]
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def test_eight_runs_needing_master_data_at_once_read_it_once() -> None:
    cache = Cached(60)
    reads = 0

    def read() -> dict[str, str]:
        nonlocal reads
        reads += 1
        time.sleep(0.2)  # a slow vendor
        return {"USD": "1"}

    results = _together(8, lambda: cache.get("master", read))
    assert reads == 1
    assert all(r == {"USD": "1"} for r in results)
    cache.forget("master")
    assert cache.get("master", read) == {"USD": "1"} and reads == 2


def test_a_failed_read_fails_its_own_caller_and_the_next_one_reads_again() -> None:
    cache = Cached(60)
    attempts = 0

    def read() -> str:
        nonlocal attempts
        attempts += 1
        time.sleep(0.05)
        if attempts == 1:
            raise RuntimeError("the vendor is down")
        return "fresh"

    results = _together(4, lambda: cache.get("master", read))
    assert sum(isinstance(r, RuntimeError) for r in results) == 1
    assert results.count("fresh") == 3 and attempts == 2


def test_nothing_is_reused_when_the_freshness_rule_is_zero() -> None:
    cache = Cached(0)
    values = iter(["a", "b"])
    assert cache.get("k", lambda: next(values)) == "a"
    assert cache.get("k", lambda: next(values)) == "b"
    with pytest.raises(StopIteration):
        cache.get("k", lambda: next(values))
