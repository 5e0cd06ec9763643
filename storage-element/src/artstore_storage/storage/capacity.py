"""Capacity accounting with reservations, so concurrent uploads can never over-fill the element."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from artstore_common.errors import InsufficientStorage


@dataclass
class CapacitySnapshot:
    total: int
    used: int
    reserved: int
    free: int

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "used": self.used, "reserved": self.reserved, "free": self.free}


class Capacity:
    """`used` counts stored bytes, `reserved` the bytes promised to uploads in progress.

    Every method runs on the event loop without awaiting, so check-and-reserve is atomic.
    """

    def __init__(self, root: Path, quota: int | None, used: int = 0) -> None:
        self.root = root
        self.quota = quota
        self.used = used
        self.reserved = 0

    def snapshot(self) -> CapacitySnapshot:
        disk_free = shutil.disk_usage(self.root).free
        # The disk's free space already excludes stored bytes but not the ones still only reserved.
        disk_room = max(disk_free - self.reserved, 0)
        if self.quota is None:
            total = self.used + self.reserved + disk_room
            free = disk_room
        else:
            free = min(max(self.quota - self.used - self.reserved, 0), disk_room)
            total = self.quota
        return CapacitySnapshot(total=total, used=self.used, reserved=self.reserved, free=free)

    def reserve(self, size: int) -> None:
        if size <= 0:
            return
        free = self.snapshot().free
        if size > free:
            raise InsufficientStorage(
                f"this element has {free} bytes free and cannot take {size} more bytes; "
                "upload to another element or raise its quota"
            )
        self.reserved += size

    def release(self, size: int) -> None:
        self.reserved = max(self.reserved - size, 0)

    def commit(self, reserved: int, stored: int) -> None:
        """Turn a reservation into stored bytes (reservation and stored size may differ)."""
        self.release(reserved)
        self.used += stored

    def freed(self, size: int) -> None:
        self.used = max(self.used - size, 0)


class Reservation:
    """The bytes one upload holds; grows as a body of unknown length arrives."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self.bytes = 0

    def ensure(self, size: int) -> None:
        if size > self.bytes:
            self.capacity.reserve(size - self.bytes)
            self.bytes = size

    def settle(self, stored: int) -> None:
        self.capacity.commit(self.bytes, stored)
        self.bytes = 0

    def release(self) -> None:
        self.capacity.release(self.bytes)
        self.bytes = 0
