"""Routes: upload, update and delete files (DESIGN section 7). Thin: parse, authorize, hand over."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from artstore_common.auth import Principal, require_permission
from artstore_common.file_attributes import MetadataValue, Tag
from artstore_ingester.services.changes import FileChanges
from artstore_ingester.services.upload_request import parse_upload
from artstore_ingester.services.uploads import UploadService

router = APIRouter(prefix="/api/v1", tags=["files"])


class FilePatch(BaseModel):
    """Each given field replaces the stored one; absent fields stay."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4096)
    tags: list[Tag] | None = Field(default=None, max_length=100)
    metadata: dict[str, MetadataValue] | None = Field(default=None, max_length=100)


async def _uploads(request: Request) -> UploadService:
    service: UploadService = request.app.state.uploads
    return service


async def _changes(request: Request) -> FileChanges:
    service: FileChanges = request.app.state.changes
    return service


@router.post("/files", status_code=201, response_model=None)
async def upload_file(
    request: Request,
    principal: Annotated[Principal, Depends(require_permission("files:write"))],
    uploads: Annotated[UploadService, Depends(_uploads)],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> JSONResponse:
    settings = request.app.state.settings
    upload = await parse_upload(
        request,
        max_bytes=settings.max_upload_bytes,
        max_field_bytes=settings.max_field_bytes,
        default_ttl_days=settings.default_ttl_days,
    )
    attributes, replayed = await uploads.upload(upload, principal, idempotency_key)
    headers = {"Location": f"/api/v1/files/{attributes['file_id']}", "ETag": f'"{attributes["sha256"]}"'}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(attributes, status_code=201, headers=headers)


@router.patch("/files/{file_id}")
async def update_file(
    file_id: uuid.UUID,
    patch: FilePatch,
    principal: Annotated[Principal, Depends(require_permission("files:write"))],
    changes: Annotated[FileChanges, Depends(_changes)],
) -> dict[str, Any]:
    return await changes.update(file_id, patch.model_dump(exclude_none=True), principal)


@router.delete("/files/{file_id}")
async def delete_file(
    file_id: uuid.UUID,
    principal: Annotated[Principal, Depends(require_permission("files:delete"))],
    changes: Annotated[FileChanges, Depends(_changes)],
) -> dict[str, Any]:
    return await changes.delete(file_id, principal)
