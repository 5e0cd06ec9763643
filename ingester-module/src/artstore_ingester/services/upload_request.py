"""An upload as the client sent it, raw body or multipart/form-data, parsed before any byte moves on.

Multipart fields must come before the `file` part (as in S3's browser uploads): the file is forwarded
while it arrives, so what describes it has to be known first. Whatever follows the file is checked once
it has passed, and a second file or a late field undoes the upload.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from artstore_common import headers
from artstore_common.errors import BadRequest, PayloadTooLarge, ValidationFailed
from artstore_common.file_attributes import (
    UserAttributes,
    first_error,
    parse_user_attributes,
    utcnow,
    validate_filename,
)
from artstore_common.request_body import request_body
from artstore_ingester.multipart import MultipartReader, boundary_from

FIELDS = ("description", "tags", "metadata", "retention", "ttl_days")


async def _nothing_follows() -> None:
    return None


@dataclass
class UploadRequest:
    filename: str
    content_type: str
    attributes: UserAttributes
    fingerprint: dict[str, Any]  # what makes two requests "the same" for an Idempotency-Key
    declared_size: int | None
    expected_sha256: str | None
    body: AsyncIterator[bytes]
    finish: Callable[[], Awaitable[None]] = field(default=_nothing_follows)

    @property
    def retention(self) -> str:
        return self.attributes.retention.policy


async def parse_upload(
    request: Request, *, max_bytes: int, max_field_bytes: int, default_ttl_days: int
) -> UploadRequest:
    content_type = request.headers.get("content-type", "")
    expected = headers.expected_sha256(
        request.headers.get("x-checksum-sha256"), request.headers.get("content-digest")
    )
    declared = headers.content_length(request.headers.get("content-length"))
    if content_type.lower().startswith("multipart/form-data"):
        return await _multipart(request, expected, max_field_bytes, default_ttl_days)
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"the file is {declared} bytes; this ingester accepts at most {max_bytes}")
    return _raw(request, expected, declared, default_ttl_days)


def _raw(
    request: Request, expected: str | None, declared: int | None, default_ttl_days: int
) -> UploadRequest:
    name = headers.text_header("X-Artstore-Filename", request.headers.get("x-artstore-filename"), limit=1024)
    name = name or request.query_params.get("filename")
    if not name:
        raise BadRequest(
            "name the file: X-Artstore-Filename header (percent-encoded UTF-8) or ?filename=, "
            "or send multipart/form-data with a `file` part"
        )
    attributes = parse_user_attributes(
        headers.text_header(
            "X-Artstore-Attributes", request.headers.get("x-artstore-attributes"), limit=32 * 1024
        )
    )
    filename = validate_filename(name)
    content_type = headers.content_type(request.headers.get("content-type"))
    return UploadRequest(
        filename=filename,
        content_type=content_type,
        attributes=_with_expiry(attributes, None, default_ttl_days),
        fingerprint={
            "filename": filename,
            "content_type": content_type,
            "attributes": attributes.model_dump(mode="json"),
            "size": declared,
            "sha256": expected,
        },
        declared_size=declared,
        expected_sha256=expected,
        body=request_body(request),
    )


async def _multipart(
    request: Request, expected: str | None, max_field_bytes: int, default_ttl_days: int
) -> UploadRequest:
    reader = MultipartReader(request_body(request), boundary_from(request.headers.get("content-type")))
    parts = aiter(reader)
    fields: dict[str, str] = {}
    async for part in parts:
        if part.name == "file":
            break
        if part.filename is not None:
            raise BadRequest(f"the file must be sent in the part named 'file', not '{part.name}'")
        if part.name not in FIELDS:
            raise BadRequest(f"unknown form field '{part.name}'; the fields are: file, {', '.join(FIELDS)}")
        if part.name in fields:
            raise BadRequest(f"the form field '{part.name}' was sent twice")
        fields[part.name] = await part.read_text(limit=max_field_bytes)
    else:
        raise BadRequest("the form has no part named 'file'; send the file as the part named 'file'")
    if not part.filename:
        raise BadRequest("the 'file' part has no filename in its Content-Disposition")
    filename = validate_filename(part.filename)
    content_type = headers.content_type(part.content_type)
    attributes, ttl_days = _form_attributes(fields)

    async def finish() -> None:
        async for extra in parts:
            if extra.name == "file" or extra.filename is not None:
                raise BadRequest("the form holds more than one file part; send one file per upload")
            raise BadRequest(
                f"the form field '{extra.name}' comes after the file; send every field before the 'file' part"
            )

    return UploadRequest(
        filename=filename,
        content_type=content_type,
        attributes=_with_expiry(attributes, ttl_days, default_ttl_days),
        fingerprint={
            "filename": filename,
            "content_type": content_type,
            "fields": fields,
            "sha256": expected,
        },
        declared_size=None,
        expected_sha256=expected,
        body=part.stream(),
        finish=finish,
    )


def _form_attributes(fields: dict[str, str]) -> tuple[UserAttributes, int | None]:
    document: dict[str, Any] = {}
    if "description" in fields:
        document["description"] = fields["description"]
    if "tags" in fields:
        tags = _json("tags", fields["tags"], list)
        if not all(isinstance(tag, str) for tag in tags):
            raise ValidationFailed('tags must be a JSON list of strings, e.g. ["invoice", "2026"]')
        document["tags"] = tags
    if "metadata" in fields:
        document["metadata"] = _json("metadata", fields["metadata"], dict)
    policy = fields.get("retention", "permanent")
    if policy not in ("permanent", "temporary"):
        raise ValidationFailed(f"retention must be 'permanent' or 'temporary', not {policy!r}")
    document["retention"] = {"policy": policy}
    ttl_days = None
    if "ttl_days" in fields:
        if policy != "temporary":
            raise ValidationFailed("ttl_days applies only to retention 'temporary'")
        try:
            ttl_days = int(fields["ttl_days"])
        except ValueError:
            raise ValidationFailed("ttl_days must be a whole number of days") from None
        if not 1 <= ttl_days <= 36500:
            raise ValidationFailed("ttl_days must be between 1 and 36500")
    return _validated("form", document), ttl_days


def _json(name: str, raw: str, kind: type) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{name} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, kind):
        wanted = "a JSON object" if kind is dict else "a JSON list"
        raise ValidationFailed(f"{name} must be {wanted}")
    return value


def _validated(source: str, document: dict[str, Any]) -> UserAttributes:
    try:
        return UserAttributes.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(f"{source}: {first_error(exc)}") from None


def _with_expiry(attributes: UserAttributes, ttl_days: int | None, default_ttl_days: int) -> UserAttributes:
    retention = attributes.retention
    if retention.policy == "permanent":
        if retention.expires_at is not None:
            raise ValidationFailed("a permanent file has no expires_at; use retention 'temporary'")
        return attributes
    if retention.expires_at is None:
        expires = utcnow() + timedelta(days=ttl_days or default_ttl_days)
        attributes = attributes.model_copy(
            update={"retention": retention.model_copy(update={"expires_at": expires})}
        )
    return attributes
