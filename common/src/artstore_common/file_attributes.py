"""What a client may say about a file (DESIGN section 3, attr.json): shared by the storage element, which
stores it, and the ingester, which checks it before a byte moves."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from artstore_common.errors import BadRequest, ValidationFailed

MAX_FILENAME_BYTES = 255
MetadataValue = str | int | float | bool | None
Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["permanent", "temporary"] = "permanent"
    expires_at: datetime | None = None


class UserAttributes(BaseModel):
    """What a client may set: description, tags, metadata, retention."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=4096)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=100)
    retention: Retention = Field(default_factory=Retention)

    @field_validator("metadata")
    @classmethod
    def _flat_keys(cls, value: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        for key in value:
            if not key or len(key) > 128:
                raise ValueError("metadata keys are 1 to 128 characters")
        return value


class AttributesPatch(BaseModel):
    """A PATCH: each given field replaces the stored one; absent fields stay."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4096)
    tags: list[Tag] | None = Field(default=None, max_length=100)
    metadata: dict[str, MetadataValue] | None = Field(default=None, max_length=100)
    retention: Retention | None = None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "value"
    return f"{where}: {error['msg']}"


def validate_filename(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    if not name or name in {".", ".."}:
        raise BadRequest("the filename is empty or a relative path component")
    if "/" in name or "\\" in name:
        raise BadRequest("the filename must not contain path separators ('/' or '\\')")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name):
        raise BadRequest("the filename must not contain control characters (including NUL)")
    if len(name.encode()) > MAX_FILENAME_BYTES:
        raise BadRequest(f"the filename is longer than {MAX_FILENAME_BYTES} bytes")
    return name


def parse_user_attributes(raw: str | None) -> UserAttributes:
    if not raw:
        return UserAttributes()
    if len(raw) > 32 * 1024:
        raise BadRequest("X-Artstore-Attributes is larger than 32 KiB")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"X-Artstore-Attributes is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    try:
        return UserAttributes.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(f"X-Artstore-Attributes: {first_error(exc)}") from None
