"""Which storage element takes an upload (DESIGN section 5).

Eligible: the mode the retention asks for (`edit` for temporary files, `rw` for permanent ones), online,
enough free space, circuit not open. Among those the highest priority first, then the most free space;
the rest of the list is where a failed attempt goes next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from artstore_common.breakers import CircuitBreakers
from artstore_common.errors import InsufficientStorage, ServiceUnavailable

MODE_FOR_RETENTION = {"temporary": "edit", "permanent": "rw"}


@dataclass(frozen=True)
class Element:
    id: str
    url: str
    mode: str
    priority: int
    free_bytes: int | None

    @classmethod
    def parse(cls, entry: dict[str, Any]) -> Element:
        free = entry.get("free_bytes")
        return cls(
            id=str(entry["id"]),
            url=str(entry["url"]).rstrip("/"),
            mode=str(entry.get("mode")),
            priority=int(entry.get("priority") or 0),
            free_bytes=free if isinstance(free, int) else None,
        )


class NoStorageElement(ServiceUnavailable):
    code = "NO_STORAGE_ELEMENT"


def element_by_id(entries: list[dict[str, Any]], element_id: str) -> Element:
    """Where the element holding a file lives, from the discovery snapshot."""
    for entry in entries:
        if entry.get("id") == element_id:
            return Element.parse(entry)
    raise ServiceUnavailable(
        f"storage element '{element_id}' is not in the discovery snapshot yet; retry shortly",
        code="SE_UNKNOWN",
    )


def select_storage_elements(
    entries: list[dict[str, Any]], *, retention: str, size: int | None, breakers: CircuitBreakers
) -> list[Element]:
    """The elements to try in order; raises 503 (none usable) or 507 (only full ones) with the reasons."""
    mode = MODE_FOR_RETENTION[retention]
    eligible: list[Element] = []
    reasons: list[str] = []
    full = transient = 0
    for entry in entries:
        element = Element.parse(entry)
        if element.mode != mode:
            reasons.append(f"'{element.id}' is in mode {element.mode}")
        elif entry.get("status") != "online":
            transient += 1
            reasons.append(f"'{element.id}' is {entry.get('status') or 'in an unknown state'}")
        elif breakers.is_open(element.id):
            transient += 1
            reasons.append(f"'{element.id}' failed repeatedly (circuit open)")
        elif element.free_bytes is not None and element.free_bytes < max(size or 0, 1):
            full += 1
            reasons.append(f"'{element.id}' has {element.free_bytes} bytes free")
        else:
            eligible.append(element)
    if eligible:
        return sorted(eligible, key=lambda e: (-e.priority, -(e.free_bytes or 0), e.id))
    wanted = f"a {retention} file needs an online element in mode {mode}"
    known = "; ".join(reasons) if reasons else "no storage element is registered"
    if full and not transient:
        # Waiting will not help, so not 503: the cluster needs space (or a file that fits).
        raise InsufficientStorage(f"every element that could take this file is full ({wanted}): {known}")
    raise NoStorageElement(f"no storage element can take this file now ({wanted}): {known}", retry_after=10)
