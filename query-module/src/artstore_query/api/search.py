"""Routes: search the catalog by a JSON body (POST) or query parameters (GET); meanings in search/filters.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from artstore_common.auth import Principal, require_permission
from artstore_query.search.filters import SearchRequest, from_query_parameters
from artstore_query.search.service import SearchService

router = APIRouter(prefix="/api/v1", tags=["search"])


async def _search(request: Request) -> SearchService:
    service: SearchService = request.app.state.search
    return service


@router.post("/search")
async def search(
    filters: SearchRequest,
    _: Annotated[Principal, Depends(require_permission("files:read"))],
    service: Annotated[SearchService, Depends(_search)],
) -> JSONResponse:
    return JSONResponse(await service.search(filters))


@router.get("/search")
async def search_by_query(
    request: Request,
    _: Annotated[Principal, Depends(require_permission("files:read"))],
    service: Annotated[SearchService, Depends(_search)],
) -> JSONResponse:
    """The same search as POST /search: `q` for `query`, `tags` repeated, `metadata` as a JSON object."""
    return JSONResponse(await service.search(from_query_parameters(request.query_params)))
