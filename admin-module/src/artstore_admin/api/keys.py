"""Routes: signing keys. Listing needs accounts:read (key metadata is identity administration, like the
accounts themselves); rotating needs accounts:write. No response ever holds private key material."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from artstore_admin.identity.keystore import KeyStore
from artstore_common.auth import JwksVerifier, Principal, require_permission

router = APIRouter(tags=["identity"])


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/keys", summary="List signing keys (public metadata only)")
async def list_keys(
    request: Request, _: Principal = Depends(require_permission("accounts:read"))
) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    return {
        "items": [
            {
                "kid": key.kid,
                "algorithm": "RS256",
                "status": key.status,
                "published": key.published(datetime.now(key.created_at.tzinfo)),
                "created_at": _when(key.created_at),
                "retired_at": _when(key.retired_at),
                "publish_until": _when(key.publish_until),
            }
            for key in await keys.list_keys()
        ]
    }


@router.post("/keys/rotate", summary="Retire the active signing key and activate a new one")
async def rotate(
    request: Request, principal: Principal = Depends(require_permission("accounts:write"))
) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    # The key the caller is replacing: if another admin rotates it first, that rotation answers this request.
    seen = await keys.active_kid()
    rotation = await keys.rotate(expected_kid=seen, actor=principal.sub, reason="on demand")
    verifier: JwksVerifier = request.app.state.verifier
    await verifier.refresh()
    return {"kid": rotation.active_kid, "retired_kid": rotation.retired_kid, "rotated": rotation.rotated}
