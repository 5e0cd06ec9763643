"""Routes: the audit log (DESIGN section 8): read it, verify its chain, and let services append to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from artstore_admin.audit import queries
from artstore_admin.audit.log import AuditLog
from artstore_common.auth import Principal, require_permission

router = APIRouter(prefix="/audit", tags=["audit"])
_MAX_DETAILS_BYTES = 16 * 1024


class AuditEvent(BaseModel):
    """An event another service records, e.g. a download or a refused request."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=100)
    outcome: Literal["success", "failure"] = "success"
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    details: dict[str, Any] = Field(default_factory=dict)
    service: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="the caller's client_id if unset"
    )

    @field_validator("details")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > _MAX_DETAILS_BYTES:
            raise ValueError(f"details are limited to {_MAX_DETAILS_BYTES} bytes of JSON")
        return value

    @field_validator("service")
    @classmethod
    def _not_admin(cls, value: str | None) -> str | None:
        if value == "admin":
            raise ValueError("the service name 'admin' is reserved for the admin's own records")
        return value


async def _audit(request: Request) -> AuditLog:
    log: AuditLog = request.app.state.audit
    return log


Reader = Annotated[Principal, Depends(require_permission("audit:read"))]


@router.get("")
async def list_records(
    request: Request,
    _: Reader,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC when no offset is given")] = None,
    after: Annotated[int | None, Query(ge=0, description="the next_after of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    where = queries.AuditFilter(action=action, actor=actor, since=since)
    items, next_after = await queries.page(request.app.state.ctx.engine, where, after=after, limit=limit)
    return {"items": items, "next_after": next_after}


@router.get("/verify")
async def verify(_: Reader, log: Annotated[AuditLog, Depends(_audit)]) -> dict[str, Any]:
    checked, broken = await log.verify()
    return {
        "valid": broken is None,
        "checked": checked,
        "first_broken": None if broken is None else {"id": broken.record_id, "reason": broken.reason},
    }


@router.post("/events", status_code=201)
async def record_event(
    event: AuditEvent,
    principal: Annotated[Principal, Depends(require_permission("internal"))],
    log: Annotated[AuditLog, Depends(_audit)],
) -> dict[str, Any]:
    record_id = await log.record(
        event.action,
        outcome=event.outcome,
        actor=principal.sub,
        subject=event.subject,
        details=event.details,
        service=event.service or principal.client_id,
    )
    return {"id": record_id}
