"""From an element's attr.json to the catalog row that indexes it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from artstore_common.errors import ValidationFailed


class Retention(BaseModel):
    model_config = ConfigDict(extra="ignore")
    policy: Literal["permanent", "temporary"] = "permanent"
    expires_at: datetime | None = None


class FileAttributes(BaseModel):
    """The fields of attr.json (schema version 1) the catalog indexes; the whole document is kept too."""

    # Fields a newer element adds are kept in `attributes`, not refused.
    model_config = ConfigDict(extra="ignore")

    file_id: uuid.UUID
    storage_element_id: str = Field(min_length=1)
    original_filename: str
    content_type: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: Literal["active", "deleted"] = "active"
    retention: Retention = Field(default_factory=Retention)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    saga_id: str | None = None


def parse_attributes(document: dict[str, Any]) -> FileAttributes:
    try:
        return FileAttributes.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'attributes'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise ValidationFailed(f"the attributes are not a valid attr.json: {problems}") from None


def catalog_values(attrs: FileAttributes, document: dict[str, Any], saga_id: uuid.UUID) -> dict[str, Any]:
    return {
        "file_id": attrs.file_id,
        "storage_element_id": attrs.storage_element_id,
        "original_filename": attrs.original_filename,
        "content_type": attrs.content_type,
        "size_bytes": attrs.size_bytes,
        "sha256": attrs.sha256,
        "status": attrs.status,
        "retention": attrs.retention.policy,
        "description": attrs.description,
        "tags": attrs.tags,
        "metadata": attrs.metadata,
        "created_by": attrs.created_by,
        "created_at": attrs.created_at,
        "updated_at": attrs.updated_at,
        "saga_id": saga_id,
        "attributes": document,
    }
