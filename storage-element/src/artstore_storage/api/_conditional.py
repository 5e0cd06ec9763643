"""Range and conditional requests (RFC 9110 sections 13 and 14) for one stored representation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from artstore_common.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """None means "send the whole representation": no Range, or one we may ignore (RFC 9110 s.14.2)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None  # multiple ranges or another unit: ignoring Range is allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid range-spec: the header is ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size - 1))


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match matches (weak comparison), i.e. the client's copy is current."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(_opaque(candidate) == etag for candidate in header.split(","))


def if_range_allows(header: str | None, etag: str) -> bool:
    """If-Range needs a strong match; a date or a weak tag never matches, so the full file is sent."""
    if header is None:
        return True
    return header.strip() == etag


def content_disposition(filename: str) -> str:
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
