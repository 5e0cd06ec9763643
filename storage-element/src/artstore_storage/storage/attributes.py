"""attr.json, schema version 1: the single source of truth for a file's metadata."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from artstore_common.errors import ValidationFailed
from artstore_common.file_attributes import (
    MAX_FILENAME_BYTES,
    AttributesPatch,
    MetadataValue,
    Retention,
    Tag,
    UserAttributes,
    parse_user_attributes,
    utcnow,
    validate_filename,
)

__all__ = [
    "MAX_FILENAME_BYTES",
    "AttributesPatch",
    "FileAttributes",
    "MetadataValue",
    "Retention",
    "Tag",
    "TornAttributes",
    "UserAttributes",
    "parse_user_attributes",
    "read_attributes",
    "utcnow",
    "validate_filename",
]

MAX_ATTR_BYTES = 64 * 1024


class FileAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    file_id: str
    original_filename: str
    content_type: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    storage_element_id: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    retention: Retention = Field(default_factory=Retention)
    status: Literal["active", "deleted"] = "active"
    saga_id: str | None = None

    def to_json_bytes(self) -> bytes:
        # pydantic's own serializer: json.dumps with `indent` falls back to its pure-Python encoder, about
        # six times slower for one sidecar. UTF-8 as it is, two spaces of indent, as json.dumps wrote it.
        data = self.model_dump_json(indent=2).encode()
        if len(data) > MAX_ATTR_BYTES:
            raise ValidationFailed(f"the attributes take {len(data)} bytes; attr.json is limited to 64 KiB")
        return data

    def with_patch(self, patch: AttributesPatch) -> FileAttributes:
        changes: dict[str, Any] = patch.model_dump(exclude_none=True)
        if patch.retention is not None:
            changes["retention"] = patch.retention
        return self.model_copy(update={**changes, "updated_at": utcnow()})

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


class TornAttributes(Exception):
    """An attr.json that cannot be parsed: truncated, not JSON, or not schema version 1."""


def read_attributes(path: Path) -> FileAttributes:
    raw = path.read_bytes()
    try:
        return FileAttributes.model_validate_json(raw)
    except ValidationError as exc:
        raise TornAttributes(f"{path.name}: {exc.error_count()} problem(s)") from exc
