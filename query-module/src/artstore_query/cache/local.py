"""L1: a bounded, expiring map in this process, and the bookkeeping that keeps a slow read from caching a
value an invalidation has already replaced."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

# How many recent invalidations are remembered one by one; older ones count as a clear for reads that
# started before them, which is safe (those reads just skip caching).
_REMEMBERED_DROPS = 10_000


class LocalCache:
    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._max = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._sequence = 0
        self._drops: OrderedDict[str, int] = OrderedDict()
        self._cleared_at = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, file_id: str) -> dict[str, Any] | None:
        entry = self._entries.get(file_id)
        if entry is None:
            return None
        expires, value = entry
        if time.monotonic() >= expires:
            del self._entries[file_id]
            return None
        self._entries.move_to_end(file_id)
        return value

    def mark(self) -> int:
        """Taken before a read of a lower level: `fresh(file_id, mark)` then says whether it may be cached."""
        return self._sequence

    def fresh(self, file_id: str, mark: int) -> bool:
        """No invalidation of `file_id` (and no clear) arrived since `mark`."""
        return max(self._drops.get(file_id, 0), self._cleared_at) <= mark

    def put(self, file_id: str, value: dict[str, Any], mark: int) -> bool:
        if not self.fresh(file_id, mark):
            return False
        if self._max <= 0 or self._ttl <= 0:
            return True
        self._entries[file_id] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(file_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def drop(self, file_id: str) -> None:
        self._sequence += 1
        self._entries.pop(file_id, None)
        self._drops[file_id] = self._sequence
        self._drops.move_to_end(file_id)
        while len(self._drops) > _REMEMBERED_DROPS:
            _, sequence = self._drops.popitem(last=False)
            self._cleared_at = max(self._cleared_at, sequence)

    def clear(self) -> None:
        """Forget everything (after a gap in the invalidation channel, when messages may have been missed)."""
        self._sequence += 1
        self._entries.clear()
        self._drops.clear()
        self._cleared_at = self._sequence
