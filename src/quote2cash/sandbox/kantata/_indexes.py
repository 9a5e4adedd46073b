"""In-memory indexes that keep list requests fast with a million time entries stored.

The large resources (time entries, expenses) keep, per *partition* (live or
all, approved or not), the keys ``(updated_at, id)`` in sorted order. Every
write gets a timestamp later than all before it, so a write appends to the
end; ``updated_after`` is a binary search and a count is a subtraction.
Lists that need a scan are cached per query until the resource changes.
"""

from __future__ import annotations

import sys
from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from quote2cash.sandbox.kantata._wire import Doc

Key = tuple[str, int]

# Below this many removals, delete in place; above it, one filtering pass is cheaper.
_BULK_REMOVAL = 64


class OrderedKeys:
    """``(updated_at, id)`` keys in ascending order."""

    def __init__(self) -> None:
        self.keys: list[Key] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: Key) -> None:
        """Insert a key (O(1) for the newest key, which is the usual case)."""
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
        else:
            insort(self.keys, key)

    def remove_many(self, keys: list[Key]) -> None:
        """Remove keys that are present (absent keys are ignored)."""
        if len(keys) <= _BULK_REMOVAL:
            for key in keys:
                at = bisect_right(self.keys, key) - 1
                if at >= 0 and self.keys[at] == key:
                    del self.keys[at]
            return
        drop = set(keys)
        self.keys = [k for k in self.keys if k not in drop]

    def position_after(self, timestamp: str | None) -> int:
        """Index of the first key whose updated_at is strictly after ``timestamp``."""
        if timestamp is None:
            return 0
        return bisect_right(self.keys, (timestamp, sys.maxsize))


PARTITIONS = ("live", "live_approved", "all", "all_approved")


def partitions_of(doc: Doc) -> tuple[str, ...]:
    """The partitions a large-resource document belongs to."""
    approved = bool(doc.get("approved"))
    if "deleted_at" in doc:
        return ("all", "all_approved") if approved else ("all",)
    return ("live", "live_approved", "all", "all_approved") if approved else ("live", "all")


def partition_for(include_deleted: bool, approved_only: bool) -> str:
    """The partition answering a list request."""
    return ("all" if include_deleted else "live") + ("_approved" if approved_only else "")


class ChangeIndex:
    """The partitions of one large resource, every id in ascending order, and the records by id."""

    def __init__(self) -> None:
        self.parts: dict[str, OrderedKeys] = {name: OrderedKeys() for name in PARTITIONS}
        self.ids: list[int] = []  # nothing is ever removed: deletes leave tombstones
        self.docs: dict[int, Doc] = {}  # the stored objects themselves, for scans without lookups

    def load(self, docs: Iterable[Doc]) -> None:
        """Build from stored documents (any order)."""
        buckets: dict[str, list[Key]] = {name: [] for name in PARTITIONS}
        ids: list[int] = []
        for doc in docs:
            key = (doc["updated_at"], int(doc["id"]))
            ids.append(key[1])
            self.docs[key[1]] = doc
            for name in partitions_of(doc):
                buckets[name].append(key)
        for name, keys in buckets.items():
            self.parts[name].keys = sorted(keys)
        self.ids = sorted(ids)

    def apply(self, changes: list[tuple[Doc | None, Doc]]) -> None:
        """Move each ``(old, new)`` document pair to its new keys."""
        removals: dict[str, list[Key]] = {name: [] for name in PARTITIONS}
        for old, _ in changes:
            if old is not None:
                old_key = (old["updated_at"], int(old["id"]))
                for name in partitions_of(old):
                    removals[name].append(old_key)
        for name, keys in removals.items():
            if keys:
                self.parts[name].remove_many(keys)
        for old, new in changes:
            key = (new["updated_at"], int(new["id"]))
            self.docs[key[1]] = new
            if old is None:
                if not self.ids or key[1] > self.ids[-1]:
                    self.ids.append(key[1])
                else:
                    insort(self.ids, key[1])
            for name in partitions_of(new):
                self.parts[name].add(key)


class QueryCache:
    """Answers of recent list queries (ordered ids), valid until the resource changes.

    A client paging through 5,000 pages of the same query then pays for one
    scan, not one per page.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[int, list[str]]] = OrderedDict()

    def get(self, key: Hashable, version: int) -> list[str] | None:
        """The cached ids for ``key`` if computed at ``version``."""
        hit = self._entries.get(key)
        if hit is None or hit[0] != version:
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: Hashable, version: int, ids: list[str]) -> None:
        """Remember an answer, evicting the least recently used."""
        self._entries[key] = (version, ids)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
