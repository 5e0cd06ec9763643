"""Keyset cursors: where the last page ended, bound to the search that produced it.

A cursor is base64url (no padding) of a 16-byte digest followed by compact JSON
`{"k": <sort value of the last row>, "id": <its file id>, "f": <fingerprint of filters, sort and order>}`.
It is no secret and grants nothing: it names a position in results the caller may read anyway. The digest
only turns an altered or truncated cursor into a clear error instead of a silently different page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from artstore_common.errors import BadRequest
from artstore_query.search.filters import SearchRequest, SortField

_DIGEST_BYTES = 16
_DOMAIN = b"artstore.search.cursor.v1\x00"

SortValue = datetime | int | str


class InvalidCursor(BadRequest):
    code, title = "INVALID_CURSOR", "Invalid cursor"


@dataclass(frozen=True)
class Position:
    """The sort value and file id of the last row a page returned; the next page starts after it."""

    value: SortValue
    file_id: uuid.UUID


def fingerprint(request: SearchRequest) -> str:
    source = json.dumps(
        request.fingerprint_source(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def encode(position: Position, request: SearchRequest) -> str:
    value = position.value.isoformat() if isinstance(position.value, datetime) else position.value
    payload = json.dumps(
        {"k": value, "id": str(position.file_id), "f": fingerprint(request)},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return base64.urlsafe_b64encode(_digest(payload) + payload).rstrip(b"=").decode("ascii")


def decode(cursor: str, request: SearchRequest) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise _damaged() from None
    digest, payload = raw[:_DIGEST_BYTES], raw[_DIGEST_BYTES:]
    if len(digest) != _DIGEST_BYTES or digest != _digest(payload):
        raise _damaged()
    try:
        document = json.loads(payload)
        bound_to, value, file_id = document["f"], document["k"], document["id"]
    except (ValueError, KeyError, TypeError):
        raise _damaged() from None
    if bound_to != fingerprint(request):
        raise InvalidCursor(
            "this cursor belongs to a search with other filters, sort or order; repeat that search "
            "with it, or start this one again without a cursor"
        )
    try:
        position = Position(_sort_value(request.sort, value), uuid.UUID(file_id))
    except (ValueError, TypeError, AttributeError):
        raise _damaged() from None
    return position


def _sort_value(sort: SortField, value: Any) -> SortValue:
    if sort in ("created_at", "updated_at"):
        if not isinstance(value, str):
            raise TypeError(value)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if sort == "size_bytes":
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(value)
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + payload).digest()[:_DIGEST_BYTES]


def _damaged() -> InvalidCursor:
    return InvalidCursor(
        "the cursor is damaged or was altered; pass next_cursor exactly as the previous page returned it"
    )
