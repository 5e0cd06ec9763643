"""Routes: one file's attributes (through the cache levels) and its content (streamed from its element)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from artstore_common.auth import Principal, require_content_read, require_permission
from artstore_query.cache.levels import MetadataReader
from artstore_query.clients.elements import RESPONSE_HEADERS, ElementClient
from artstore_query.metrics import DOWNLOAD_BYTES

router = APIRouter(prefix="/api/v1", tags=["files"])
CACHE_LEVEL_HEADER = "X-Artstore-Cache"


def _metadata(request: Request) -> MetadataReader:
    reader: MetadataReader = request.app.state.metadata
    return reader


def _elements(request: Request) -> ElementClient:
    client: ElementClient = request.app.state.elements
    return client


@router.get("/files/{file_id}")
async def get_attributes(
    file_id: uuid.UUID,
    request: Request,
    _: Annotated[Principal, Depends(require_permission("files:read"))],
) -> JSONResponse:
    found = await _metadata(request).read(file_id)
    return JSONResponse(
        found.attributes,
        headers={CACHE_LEVEL_HEADER: found.level, "Cache-Control": "private, no-cache"},
    )


@router.api_route("/files/{file_id}/content", methods=["GET", "HEAD"], response_model=None)
async def get_content(
    file_id: uuid.UUID,
    request: Request,
    _: Annotated[Principal, Depends(require_content_read)],
) -> Response:
    found = await _metadata(request).read(file_id)
    element_id = found.storage_element_id
    upstream = await _elements(request).open_content(element_id, file_id, request.method, request.headers)
    headers = {name: upstream.headers[name] for name in RESPONSE_HEADERS if name in upstream.headers}
    if upstream.status_code == 304:
        await upstream.aclose()
        headers.pop("content-length", None)
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        await upstream.aclose()
        # The element's Content-Length is kept as given (Starlette only adds one when none is set).
        return Response(status_code=upstream.status_code, headers=headers)
    return StreamingResponse(_relay(upstream, element_id), status_code=upstream.status_code, headers=headers)


async def _relay(upstream: httpx.Response, element_id: str) -> AsyncIterator[bytes]:
    counter = DOWNLOAD_BYTES.labels(element_id)
    try:
        async for block in upstream.aiter_raw():
            counter.inc(len(block))
            yield block
    finally:
        await upstream.aclose()
