"""Element endpoints: info, mode, reconcile, saga compensation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from artstore_common import headers as _headers
from artstore_common.auth import Principal, require_permission
from artstore_storage.api import deps
from artstore_storage.services.element import ElementService
from artstore_storage.services.files import FileService
from artstore_storage.services.reconcile import ReconcileOptions, Reconciler

router = APIRouter(prefix="/api/v1", tags=["element"])


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_mode: str = Field(max_length=16)


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repair: bool = False
    rebuild_index: bool = False
    verify_checksums: bool = True


@router.get("/info")
async def info(
    element: Annotated[ElementService, Depends(deps.element)],
    _: Annotated[Principal, Depends(require_permission("storage:read"))],
) -> dict[str, Any]:
    return element.info()


@router.post("/mode")
async def change_mode(
    change: ModeChange,
    element: Annotated[ElementService, Depends(deps.element)],
    _: Annotated[Principal, Depends(require_permission("storage:write"))],
) -> dict[str, Any]:
    return await element.change_mode(change.target_mode)


@router.post("/maintenance/reconcile")
async def reconcile(
    reconciler: Annotated[Reconciler, Depends(deps.reconciler)],
    _: Annotated[Principal, Depends(require_permission("storage:write"))],
    options: ReconcileRequest | None = None,
) -> dict[str, Any]:
    chosen = options or ReconcileRequest()
    return await reconciler.run(ReconcileOptions(**chosen.model_dump()))


@router.post("/transactions/{saga_id}/compensate")
async def compensate(
    saga_id: str,
    files: Annotated[FileService, Depends(deps.files)],
    _: Annotated[Principal, Depends(require_permission("internal"))],
) -> dict[str, Any]:
    checked = _headers.saga_id(saga_id)
    assert checked is not None
    removed = await files.compensate(checked)
    return {"saga_id": checked, "compensated": True, "removed_files": removed}
