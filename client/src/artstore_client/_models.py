"""Typed results: what the services answer, as frozen dataclasses that keep the raw document too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_EPOCH = datetime.fromtimestamp(0, UTC)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class FileInfo:
    """A file's attributes (DESIGN section 3, attr.json); `raw` is the document as the service sent it."""

    file_id: str
    original_filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_element_id: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    description: str
    tags: tuple[str, ...]
    metadata: dict[str, Any] = field(hash=False)
    retention_policy: str
    expires_at: datetime | None
    status: str
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FileInfo:
        found = raw.get("retention")
        retention: dict[str, Any] = found if isinstance(found, dict) else {}
        metadata = raw.get("metadata")
        created_at = _time(raw.get("created_at")) or _EPOCH
        return cls(
            file_id=str(raw.get("file_id", "")),
            original_filename=str(raw.get("original_filename", "")),
            content_type=str(raw.get("content_type") or "application/octet-stream"),
            size_bytes=_int(raw.get("size_bytes")) or 0,
            sha256=str(raw.get("sha256", "")),
            storage_element_id=str(raw.get("storage_element_id", "")),
            created_at=created_at,
            updated_at=_time(raw.get("updated_at")) or created_at,
            created_by=_text(raw.get("created_by")),
            description=str(raw.get("description") or ""),
            tags=tuple(str(tag) for tag in raw.get("tags") or ()),
            metadata=dict(metadata) if isinstance(metadata, dict) else {},
            retention_policy=str(retention.get("policy") or "permanent"),
            expires_at=_time(retention.get("expires_at")),
            status=str(raw.get("status") or "active"),
            raw=raw,
        )


@dataclass(frozen=True)
class SearchPage:
    """One page of a search; `next_cursor` is None after the last page."""

    items: list[FileInfo] = field(hash=False)
    next_cursor: str | None


@dataclass(frozen=True)
class StorageElement:
    """A registered storage element as the admin's registry knows it."""

    id: str
    name: str
    url: str
    mode: str
    status: str
    priority: int | None
    capacity_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    file_count: int | None
    last_seen_at: datetime | None
    last_error: str | None
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StorageElement:
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw.get("name") or raw.get("id", "")),
            url=str(raw.get("url", "")),
            mode=str(raw.get("mode", "")),
            status=str(raw.get("status", "")),
            priority=_int(raw.get("priority")),
            capacity_bytes=_int(raw.get("capacity_bytes")),
            used_bytes=_int(raw.get("used_bytes")),
            free_bytes=_int(raw.get("free_bytes")),
            file_count=_int(raw.get("file_count")),
            last_seen_at=_time(raw.get("last_seen_at")),
            last_error=_text(raw.get("last_error")),
            raw=raw,
        )


@dataclass(frozen=True)
class Account:
    """A service account (never its secret: that is returned once, beside the account)."""

    id: str
    name: str
    client_id: str
    role: str
    status: str
    is_system: bool
    description: str | None
    secret_expires_at: datetime | None
    created_at: datetime | None
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Account:
        public = {k: v for k, v in raw.items() if k not in ("client_secret", "previous_secret_valid_until")}
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw.get("name", "")),
            client_id=str(raw.get("client_id", "")),
            role=str(raw.get("role", "")),
            status=str(raw.get("status", "")),
            is_system=bool(raw.get("is_system", False)),
            description=_text(raw.get("description")),
            secret_expires_at=_time(raw.get("secret_expires_at")),
            created_at=_time(raw.get("created_at")),
            raw=public,
        )


@dataclass(frozen=True)
class AuditVerification:
    """The audit chain check: `first_broken` is {"id", "reason"} of the first bad record, or None."""

    valid: bool
    checked: int
    first_broken: dict[str, Any] | None = field(hash=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AuditVerification:
        broken = raw.get("first_broken")
        return cls(
            valid=bool(raw.get("valid")),
            checked=_int(raw.get("checked")) or 0,
            first_broken=broken if isinstance(broken, dict) else None,
        )
