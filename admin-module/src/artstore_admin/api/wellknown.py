"""Routes at the root: the JWKS (RFC 7517) and the authorization server metadata (RFC 8414)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from artstore_admin.identity.keystore import KeyStore
from artstore_admin.identity.roles import ALL_PERMISSIONS
from artstore_admin.settings import AdminSettings

router = APIRouter(tags=["identity"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    # Read from the database, so every admin publishes another admin's rotation at once.
    document = await keys.load_jwks()
    # Short: verifiers refetch on an unknown kid anyway, and a retired key must leave caches soon.
    response.headers["Cache-Control"] = "public, max-age=60"
    return document


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> dict[str, Any]:
    settings: AdminSettings = request.app.state.settings
    base = settings.base_url
    return {
        "issuer": settings.jwt_issuer,
        "token_endpoint": f"{base}/api/v1/auth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        # Required by RFC 8414, and honestly empty: no authorization endpoint, client credentials only.
        "response_types_supported": [],
        "scopes_supported": list(ALL_PERMISSIONS),
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "service_documentation": f"{base}/docs",
    }
