"""The token endpoint: OAuth 2.0 client credentials (RFC 6749 s.4.4), errors in the s.5.2 shape."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from artstore_admin.audit.log import AuditLog
from artstore_admin.identity.accounts import AccountService
from artstore_admin.identity.roles import permissions_for
from artstore_admin.identity.tokens import TokenIssuer

router = APIRouter(tags=["identity"])

GRANT = "client_credentials"
# RFC 6749 s.5.1: token responses, errors included, must never be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_BODY = 16 * 1024


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        client_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.client_id = client_id
        # For the audit log only: the client is never told why its authentication failed.
        self.reason = reason or f"{error}: {description}"

    def response(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="artstore"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


def _invalid_client(client_id: str | None, reason: str) -> OAuthError:
    return OAuthError(
        "invalid_client", "client authentication failed", status=401, client_id=client_id, reason=reason
    )


async def _parameters(request: Request) -> tuple[dict[str, str], bool]:
    """The request's parameters and whether they came as JSON (where the grant type is implied)."""
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise OAuthError("invalid_request", "the request body is too large")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            document = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_request", "the body is not valid JSON") from exc
        if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
            raise OAuthError("invalid_request", "the JSON body must be an object of string values")
        return document, True
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_request", "the form body is malformed") from exc
        parameters = dict(pairs)
        if len(parameters) != len(pairs):
            raise OAuthError("invalid_request", "a parameter is repeated (RFC 6749 s.3.2)")
        return parameters, False
    raise OAuthError(
        "invalid_request",
        "send application/x-www-form-urlencoded (or a JSON object) with grant_type=client_credentials",
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_request", "client authentication must use the Basic scheme")
    try:
        client_id, separator, secret = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid_client(None, "malformed Basic credentials") from exc
    if not separator:
        raise _invalid_client(None, "malformed Basic credentials")
    return client_id, secret


def _client(request: Request, parameters: dict[str, str]) -> tuple[str, list[str]]:
    """The client id and the secret candidates (RFC 6749 s.2.3.1 form-encodes Basic credentials; many clients
    do not, so both readings are tried)."""
    basic = _basic_credentials(request)
    form_id, form_secret = parameters.get("client_id"), parameters.get("client_secret")
    if basic is not None:
        if form_secret is not None:
            raise OAuthError(
                "invalid_request", "authenticate the client with one method only (RFC 6749 s.2.3)"
            )
        raw_id, raw_secret = basic
        client_id = unquote_plus(raw_id)
        if form_id is not None and form_id not in (raw_id, client_id):
            raise OAuthError("invalid_request", "client_id in the body differs from the Basic credentials")
        decoded = unquote_plus(raw_secret)
        return client_id, [raw_secret] if decoded == raw_secret else [raw_secret, decoded]
    if not form_id or form_secret is None:
        raise _invalid_client(form_id, "no client credentials")
    return form_id, [form_secret]


def _requested_scope(parameters: dict[str, str], granted: list[str], client_id: str) -> list[str] | None:
    scope = parameters.get("scope")
    if scope is None or not scope.strip():
        return None
    requested = scope.split()
    beyond = sorted(set(requested) - set(granted))
    if beyond:
        raise OAuthError(
            "invalid_scope", f"this client may not request: {' '.join(beyond)}", client_id=client_id
        )
    return requested


async def _issue(request: Request) -> dict[str, Any]:
    parameters, json_body = await _parameters(request)
    grant_type = parameters.get("grant_type")
    if grant_type is None and not json_body:
        raise OAuthError("invalid_request", "grant_type is required (client_credentials)")
    if grant_type is not None and grant_type != GRANT:
        raise OAuthError("unsupported_grant_type", f"only grant_type={GRANT} is supported")
    client_id, secrets = _client(request, parameters)
    accounts: AccountService = request.app.state.accounts
    credentials = await accounts.authenticate(client_id, secrets)
    if credentials.account is None:
        raise _invalid_client(client_id, credentials.refusal or "refused")
    account = credentials.account
    scope = _requested_scope(
        parameters, permissions_for(account.role, is_system=account.is_system), account.client_id
    )
    tokens: TokenIssuer = request.app.state.tokens
    token = tokens.issue_for(account, scope)
    audit: AuditLog = request.app.state.audit
    await audit.record(
        "token.issued",
        actor=str(account.id),
        subject=account.client_id,
        details={"scope": token.scope, "kid": token.kid},
    )
    return {
        "access_token": token.access_token,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "scope": token.scope,
    }


async def _audit_refusal(request: Request, error: OAuthError) -> None:
    audit: AuditLog = request.app.state.audit
    await audit.record(
        "token.refused",
        outcome="failure",
        subject=error.client_id,
        details={"client_id": error.client_id, "error": error.error, "reason": error.reason},
    )


@router.post("/auth/token", summary="Issue an access token (OAuth 2.0 client credentials)")
async def token(request: Request) -> JSONResponse:
    try:
        body = await _issue(request)
    except OAuthError as error:
        await _audit_refusal(request, error)
        return error.response()
    return JSONResponse(body, headers=_NO_STORE)


@router.api_route("/auth/token", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def token_wrong_method(request: Request) -> JSONResponse:
    response = OAuthError(
        "invalid_request", f"{request.method} is not allowed: POST the token request"
    ).response()
    response.status_code = 405
    response.headers["Allow"] = "POST"
    return response
