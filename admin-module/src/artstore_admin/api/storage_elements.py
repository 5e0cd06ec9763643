"""Routes: the storage-element registry, mode changes (a saga) and on-demand polls."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from artstore_admin.registry.mode_change import ModeChange
from artstore_admin.registry.service import RegistryService
from artstore_common.auth import Principal, require_permission

router = APIRouter(prefix="/storage-elements", tags=["storage-elements"])

Reader = Annotated[Principal, Depends(require_permission("storage:read"))]
Writer = Annotated[Principal, Depends(require_permission("storage:write"))]
ElementUrl = Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: ElementUrl
    name: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int | None = Field(default=None, ge=0, le=1_000_000)


class Changes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: ElementUrl | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int | None = Field(default=None, ge=0, le=1_000_000)


class ModeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_mode: Literal["edit", "rw", "ro", "ar"]


async def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


async def _mode_change(request: Request) -> ModeChange:
    saga: ModeChange = request.app.state.mode_change
    return saga


Registry = Annotated[RegistryService, Depends(_registry)]


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


@router.get("")
async def list_elements(registry: Registry, _: Reader) -> dict[str, Any]:
    return {"items": [_shape(row) for row in await registry.list()]}


@router.post("", status_code=201)
async def register(
    registration: Registration, registry: Registry, principal: Writer, response: Response
) -> dict[str, Any]:
    row = await registry.register(
        registration.url, name=registration.name, priority=registration.priority, actor=principal.sub
    )
    response.headers["Location"] = f"/api/v1/storage-elements/{row['id']}"
    return _shape(row)


@router.get("/{element_id}")
async def get_element(element_id: str, registry: Registry, _: Reader) -> dict[str, Any]:
    return _shape(await registry.get(element_id))


@router.patch("/{element_id}")
async def update_element(
    element_id: str, changes: Changes, registry: Registry, principal: Writer
) -> dict[str, Any]:
    values = changes.model_dump(exclude_unset=True, exclude_none=True)
    return _shape(await registry.update(element_id, values, actor=principal.sub))


@router.delete("/{element_id}", status_code=204)
async def unregister(element_id: str, registry: Registry, principal: Writer) -> Response:
    await registry.unregister(element_id, actor=principal.sub)
    return Response(status_code=204)


@router.post("/{element_id}/sync")
async def sync(element_id: str, registry: Registry, _: Writer) -> dict[str, Any]:
    return _shape(await registry.sync(element_id))


@router.post("/{element_id}/mode")
async def change_mode(
    element_id: str,
    change: ModeRequest,
    saga: Annotated[ModeChange, Depends(_mode_change)],
    principal: Writer,
) -> dict[str, Any]:
    return await saga.run(element_id, change.target_mode, actor=principal.sub)
