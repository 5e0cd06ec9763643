"""Routes: service accounts. Reading needs accounts:read, every change accounts:write."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from artstore_admin.identity.accounts import Account, AccountService
from artstore_common.auth import Principal, require_permission
from artstore_common.errors import ValidationFailed

router = APIRouter(tags=["identity"])

Role = Literal["ADMIN", "USER", "AUDITOR", "READONLY"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{2,63}$")]
ClientId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{3,64}$")]
PerMinute = Annotated[int, Field(ge=1, le=1_000_000)]


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    client_id: ClientId | None = Field(default=None, description="defaults to the name")
    role: Role
    is_system: bool = Field(
        default=False, description="grants `internal` too (the ingester's and query's own)"
    )
    description: str | None = Field(default=None, max_length=1000)
    rate_limit_per_minute: PerMinute | None = None
    rate_limit_burst: PerMinute | None = None
    secret_expires_at: AwareDatetime | None = None


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    status: Literal["active", "suspended"] | None = Field(default=None, description="DELETE deletes")
    description: str | None = Field(default=None, max_length=1000)
    rate_limit_per_minute: PerMinute | None = None
    rate_limit_burst: PerMinute | None = None
    secret_expires_at: AwareDatetime | None = None


def _service(request: Request) -> AccountService:
    service: AccountService = request.app.state.accounts
    return service


def _view(account: Account) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in account.public().items()} | {
        "id": str(account.id)
    }


@router.get("/service-accounts", summary="List service accounts (deleted ones only with status=deleted)")
async def list_accounts(
    request: Request,
    status: Literal["active", "suspended", "deleted"] | None = Query(default=None),
    _: Principal = Depends(require_permission("accounts:read")),
) -> dict[str, Any]:
    return {"items": [_view(a) for a in await _service(request).list_accounts(status)]}


@router.post(
    "/service-accounts", status_code=201, summary="Create a service account; its secret is shown once"
)
async def create_account(
    body: AccountCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_permission("accounts:write")),
) -> dict[str, Any]:
    account, secret = await _service(request).create(body.model_dump(exclude_none=True), actor=principal.sub)
    response.headers["Location"] = f"/api/v1/service-accounts/{account.id}"
    response.headers["Cache-Control"] = "no-store"
    return _view(account) | {"client_secret": secret}


@router.get("/service-accounts/{account_id}", summary="One service account (never its secret)")
async def get_account(
    account_id: uuid.UUID, request: Request, _: Principal = Depends(require_permission("accounts:read"))
) -> dict[str, Any]:
    return _view(await _service(request).get(account_id))


@router.patch(
    "/service-accounts/{account_id}", summary="Change role, status, rate limit, description, expiry"
)
async def update_account(
    account_id: uuid.UUID,
    body: AccountUpdate,
    request: Request,
    principal: Principal = Depends(require_permission("accounts:write")),
) -> dict[str, Any]:
    # Only the fields sent change; an explicit null clears a nullable field (rate limit, expiry, description).
    changes = body.model_dump(include=body.model_fields_set)
    for required in ("role", "status"):
        if required in changes and changes[required] is None:
            raise ValidationFailed(f"{required} cannot be null")
    account = await _service(request).update(account_id, changes, actor=principal.sub)
    return _view(account)


@router.delete("/service-accounts/{account_id}", status_code=204, summary="Delete: its tokens are refused")
async def delete_account(
    account_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require_permission("accounts:write")),
) -> Response:
    await _service(request).delete(account_id, actor=principal.sub)
    return Response(status_code=204)


@router.post(
    "/service-accounts/{account_id}/rotate-secret", summary="A new secret, shown once; the old one overlaps"
)
async def rotate_secret(
    account_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Principal = Depends(require_permission("accounts:write")),
) -> dict[str, Any]:
    account, secret, old_valid_until = await _service(request).rotate_secret(account_id, actor=principal.sub)
    response.headers["Cache-Control"] = "no-store"
    return _view(account) | {
        "client_secret": secret,
        "previous_secret_valid_until": old_valid_until.isoformat(),
    }
