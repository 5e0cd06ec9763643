"""The stand-in's HTTP surface: JWKS, RFC 8414 metadata and the client-credentials token endpoint.

The token endpoint follows RFC 6749 s.4.4 and s.5 as the admin module will (DESIGN section 2): form with
`grant_type=client_credentials` and HTTP Basic or form fields, or a JSON body; RFC 6749 error replies.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from artstore_client.dev.admin_standin.identity import TOKEN_LIFETIME_SECONDS, Identity
from artstore_common import health

TOKEN_PATH = "/api/v1/auth/token"
_MAX_BODY = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="artstore", charset="UTF-8"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "only HTTP Basic client authentication is supported", 401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "the Basic credentials are not valid base64 UTF-8", 401) from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise OAuthError("invalid_client", "the Basic credentials must be client_id:client_secret", 401)
    # RFC 6749 s.2.3.1: each half was form-encoded before it was joined and base64-encoded.
    return unquote_plus(client_id), unquote_plus(secret)


def _form_parameters(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the form body is not UTF-8") from None
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameters given more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in parsed.items()}


def _json_parameters(body: bytes) -> dict[str, str]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        raise OAuthError("invalid_request", "the JSON body cannot be parsed") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise OAuthError("invalid_request", "the JSON body must be an object of strings")
    document.setdefault("grant_type", "client_credentials")
    return document


async def _parameters(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise OAuthError("invalid_request", f"the request body is larger than {_MAX_BODY} bytes")
    if media_type == "application/x-www-form-urlencoded":
        return _form_parameters(body)
    if media_type == "application/json":
        return _json_parameters(body)
    raise OAuthError(
        "invalid_request", "send the parameters as application/x-www-form-urlencoded (or as a JSON object)"
    )


def _grant(identity: Identity, request: Request, parameters: dict[str, str]) -> dict[str, Any]:
    grant_type = parameters.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required (client_credentials)")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"grant_type '{grant_type}' is not supported")
    basic = _basic_credentials(request.headers.get("authorization"))
    in_body = "client_id" in parameters or "client_secret" in parameters
    if basic is not None and in_body:
        raise OAuthError(
            "invalid_request", "authenticate either with HTTP Basic or with form fields, not both"
        )
    client_id, secret = basic or (parameters.get("client_id", ""), parameters.get("client_secret", ""))
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client authentication is required (HTTP Basic)", 401)
    if not identity.account.authenticates(client_id, secret):
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    granted = identity.account.permissions
    requested = parameters.get("scope")
    if requested is not None and requested.strip():
        unknown = sorted(set(requested.split()) - set(granted))
        if unknown:
            raise OAuthError("invalid_scope", f"this account cannot be granted: {' '.join(unknown)}")
        granted = tuple(p for p in granted if p in requested.split())
    return {
        "access_token": identity.issue(granted),
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "scope": " ".join(granted),
    }


def create_standin_app(identity: Identity, public_url: str) -> FastAPI:
    app = FastAPI(title="ArtStore admin (dev stand-in token issuer)", docs_url=None, redoc_url=None)
    app.state.health = health.HealthChecks()
    app.include_router(health.router)

    @app.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        return JSONResponse(identity.jwks(), headers={"Cache-Control": "public, max-age=60"})

    @app.get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        return {
            "issuer": identity.issuer,
            "token_endpoint": public_url + TOKEN_PATH,
            "jwks_uri": public_url + "/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(identity.account.permissions),
        }

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        try:
            granted = _grant(identity, request, await _parameters(request))
        except OAuthError as error:
            return error.response()
        return JSONResponse(granted, headers=_NO_STORE)

    return app
