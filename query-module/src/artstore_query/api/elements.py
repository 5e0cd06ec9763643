"""Route: the storage elements as this query module sees them (discovery snapshot and circuit states)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from artstore_common.auth import Principal, require_permission
from artstore_common.breakers import CircuitBreakers
from artstore_common.discovery import DiscoveryClient

router = APIRouter(prefix="/api/v1", tags=["storage elements"])


@router.get("/storage-elements")
async def list_storage_elements(
    request: Request, _: Annotated[Principal, Depends(require_permission("storage:read"))]
) -> dict[str, Any]:
    discovery: DiscoveryClient = request.app.state.discovery
    breakers: CircuitBreakers = request.app.state.breakers
    snapshot = discovery.snapshot
    elements = [
        {**element, "circuit": breakers.state(str(element.get("id")))}
        for element in discovery.storage_elements
    ]
    return {
        "version": snapshot.get("version") if snapshot else None,
        "generated_at": snapshot.get("generated_at") if snapshot else None,
        "storage_elements": elements,
    }
