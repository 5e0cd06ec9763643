"""File endpoints: thin, parse and authorize, then hand over to FileService."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import aiofiles
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from artstore_common import headers as _headers
from artstore_common.auth import Principal, require_content_read, require_permission
from artstore_common.errors import BadRequest
from artstore_common.request_body import request_body
from artstore_storage.api import deps
from artstore_storage.api._conditional import (
    ByteRange,
    content_disposition,
    if_range_allows,
    none_match,
    parse_range,
)
from artstore_storage.metrics import DOWNLOAD_BYTES
from artstore_storage.services.files import FileService, NewFile
from artstore_storage.storage.attributes import (
    AttributesPatch,
    FileAttributes,
    parse_user_attributes,
    validate_filename,
)

router = APIRouter(prefix="/api/v1", tags=["files"])
FileId = Annotated[uuid.UUID, Depends(deps.file_id)]
Files = Annotated[FileService, Depends(deps.files)]


def _attributes_response(attrs: FileAttributes, status: int = 200) -> Response:
    headers = {"ETag": attrs.etag}
    if status == 201:
        headers["Location"] = f"/api/v1/files/{attrs.file_id}"
    return Response(
        attrs.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


@router.put("/files/{file_id}", status_code=201)
async def put_file(
    request: Request,
    file_id: FileId,
    files: Files,
    principal: Annotated[Principal, Depends(require_permission("internal"))],
) -> Response:
    headers = request.headers
    filename = _headers.text_header("X-Artstore-Filename", headers.get("x-artstore-filename"), limit=1024)
    if filename is None:
        raise BadRequest("X-Artstore-Filename is required (percent-encoded UTF-8)")
    raw_attributes = _headers.text_header(
        "X-Artstore-Attributes", headers.get("x-artstore-attributes"), limit=32 * 1024
    )
    # Only `internal` callers reach this point: an ingester names the account it uploads for.
    on_behalf_of = _headers.text_header(
        "X-Artstore-Created-By", headers.get("x-artstore-created-by"), limit=255
    )
    new = NewFile(
        file_id=file_id,
        filename=validate_filename(filename),
        content_type=_headers.content_type(headers.get("content-type")),
        attributes=parse_user_attributes(raw_attributes),
        created_by=on_behalf_of or principal.sub,
        saga_id=_headers.saga_id(headers.get("x-saga-id")),
        content_length=_headers.content_length(headers.get("content-length")),
        expected_sha256=_headers.expected_sha256(
            headers.get("x-checksum-sha256"), headers.get("content-digest")
        ),
    )
    attrs = await files.create(new, request_body(request))
    return _attributes_response(attrs, status=201)


def _content_headers(attrs: FileAttributes) -> dict[str, str]:
    return {
        "ETag": attrs.etag,
        "Accept-Ranges": "bytes",
        "Last-Modified": format_datetime(attrs.created_at, usegmt=True),
        "Content-Disposition": content_disposition(attrs.original_filename),
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(attrs.sha256)).decode()}:",
        "Cache-Control": "private, no-cache",
    }


@router.api_route("/files/{file_id}", methods=["GET", "HEAD"], response_model=None)
async def get_file(
    request: Request,
    file_id: FileId,
    files: Files,
    _: Annotated[Principal, Depends(require_content_read)],
) -> Response:
    attrs, path = await files.content(file_id)
    headers = _content_headers(attrs)
    if none_match(request.headers.get("if-none-match"), attrs.etag):
        return Response(status_code=304, headers=headers)
    byte_range: ByteRange | None = None
    if if_range_allows(request.headers.get("if-range"), attrs.etag):
        byte_range = parse_range(request.headers.get("range"), attrs.size_bytes)
    status = 200
    if byte_range is None:
        byte_range = ByteRange(0, attrs.size_bytes - 1)
    else:
        status = 206
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{attrs.size_bytes}"
    headers["Content-Length"] = str(max(byte_range.length, 0))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=attrs.content_type)
    chunk = request.app.state.settings.read_chunk_bytes
    return StreamingResponse(
        _read(path, byte_range, chunk, files.element_id),
        status_code=status,
        headers=headers,
        media_type=attrs.content_type,
    )


async def _read(path: Any, byte_range: ByteRange, chunk: int, element_id: str) -> AsyncIterator[bytes]:
    remaining = max(byte_range.length, 0)
    if remaining == 0:
        return
    counter = DOWNLOAD_BYTES.labels(element_id)
    async with aiofiles.open(path, "rb") as handle:
        await handle.seek(byte_range.start)
        while remaining:
            block = await handle.read(min(chunk, remaining))
            if not block:
                raise OSError(f"{path} ended {remaining} bytes early")
            remaining -= len(block)
            counter.inc(len(block))
            yield block


@router.get("/files/{file_id}/attributes")
async def get_attributes(
    file_id: FileId, files: Files, _: Annotated[Principal, Depends(require_permission("files:read"))]
) -> Response:
    return _attributes_response(await files.attributes(file_id))


@router.patch("/files/{file_id}/attributes")
async def patch_attributes(
    file_id: FileId,
    patch: AttributesPatch,
    files: Files,
    _: Annotated[Principal, Depends(require_permission("internal"))],
) -> Response:
    return _attributes_response(await files.update(file_id, patch))


@router.delete("/files/{file_id}")
async def delete_file(
    file_id: FileId, files: Files, _: Annotated[Principal, Depends(require_permission("internal"))]
) -> dict[str, Any]:
    deleted = await files.delete(file_id)
    return {"file_id": deleted.file_id, "deleted": True}


@router.get("/files")
async def list_files(
    files: Files,
    _: Annotated[Principal, Depends(require_permission("files:read"))],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    after = _decode_cursor(cursor) if cursor else None
    rows = await files.list_page(after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["file_id"]) if more else None
    return {"items": [row["attributes"] for row in rows], "next_cursor": next_cursor}


def _encode_cursor(created_at: datetime, file_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{file_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        stamp, _, file_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(stamp), uuid.UUID(file_id)
    except (ValueError, UnicodeError):
        raise BadRequest("the cursor is malformed; pass back next_cursor exactly as received") from None
