"""Bearer-token verification against the admin's JWKS (DESIGN section 2), as FastAPI dependencies."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import Request

from artstore_common.errors import InsufficientScope, InvalidToken, MissingToken, ServiceUnavailable
from artstore_common.settings import ServiceSettings

_log = logging.getLogger("artstore.auth")
_ACCEPTED_TYPES = {"at+jwt", "application/at+jwt"}
_VERIFIED_CACHE_SIZE = 4096
# DESIGN section 2: these roles hold files:read for metadata only, never a file's bytes.
METADATA_ONLY_ROLES = frozenset({"AUDITOR"})

# Returns a JWKS document ({"keys": [...]}); lets the key owner (the admin) verify without HTTP to itself.
JwksLoader = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Principal:
    sub: str
    client_id: str
    role: str
    permissions: frozenset[str]
    claims: dict[str, Any]

    def has(self, permission: str) -> bool:
        return permission in self.permissions


class AuthUnavailable(ServiceUnavailable):
    code = "AUTH_UNAVAILABLE"


class JwksVerifier:
    """Verifies RS256 access tokens. Keys come from the JWKS URL (or `jwks_loader`), cached, refetched on an
    unknown kid."""

    def __init__(
        self,
        *,
        jwks_url: str | None,
        issuer: str,
        audience: str,
        http: httpx.AsyncClient,
        leeway_seconds: int = 30,
        refetch_seconds: float = 10.0,
        jwks_loader: JwksLoader | None = None,
    ) -> None:
        self.jwks_url = jwks_url
        self._loader = jwks_loader
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.refetch_seconds = refetch_seconds
        self._http = http
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        # Only fetches caused by an unknown kid are spaced out; a periodic refresh must not delay them.
        self._kid_miss_fetched_at: float | None = None
        self._lock = asyncio.Lock()
        # Tokens already verified, until they expire: a client sends the same token for many requests,
        # and a full RS256 check per request is most of the cost of a small one.
        self._verified: OrderedDict[str, tuple[Principal, float, str]] = OrderedDict()

    @classmethod
    async def started(
        cls, settings: ServiceSettings, audience: str, http: httpx.AsyncClient, *, jwks_url: str | None = None
    ) -> JwksVerifier:
        """A verifier from a service's settings, keys loaded if the admin answers (else at first use)."""
        verifier = cls(
            jwks_url=jwks_url or settings.jwks_url,
            issuer=settings.jwt_issuer,
            audience=audience,
            http=http,
            leeway_seconds=settings.jwt_leeway_seconds,
            refetch_seconds=settings.jwks_refetch_seconds,
        )
        try:
            await verifier.refresh()
        except ServiceUnavailable as exc:
            _log.warning("signing keys not loaded yet; authenticated requests fail until they are: %s", exc)
        return verifier

    async def ready(self) -> None:
        """A readiness check: the keys are loaded, or load now."""
        if not self.loaded:
            await self.refresh()

    @property
    def loaded(self) -> bool:
        return self._fetched_at is not None

    async def refresh(self) -> None:
        document = await self._load() if self._loader is not None else await self._fetch()
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if jwk.get("kty") != "RSA" or not jwk.get("kid") or jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
            except jwt.PyJWTError as exc:
                _log.warning("ignoring unusable key %s: %s", jwk.get("kid"), exc)
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.forget_keys_not_in_jwks()

    async def _fetch(self) -> Any:
        if not self.jwks_url:
            raise AuthUnavailable("authentication is not configured (no JWKS URL); refusing requests")
        try:
            response = await self._http.get(self.jwks_url, timeout=5.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise AuthUnavailable(f"cannot load signing keys from {self.jwks_url}: {exc}") from exc

    async def _load(self) -> dict[str, Any]:
        assert self._loader is not None
        try:
            return await self._loader()
        except Exception as exc:  # the key store's database is down: refuse, never serve open
            raise AuthUnavailable(f"cannot load signing keys: {exc}") from exc

    async def _key_for(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            last = self._kid_miss_fetched_at
            stale = last is None or time.monotonic() - last >= self.refetch_seconds
            if key is None and stale:
                await self.refresh()
                # Set after success only: while the keys cannot be loaded every request retries, and fails 503.
                self._kid_miss_fetched_at = time.monotonic()
                key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("the token was signed by an unknown key")
        return key

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        principal, kid = await self._verify(token)
        self._verified[token] = (principal, float(principal.claims["exp"]), kid)
        if len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def forget_keys_not_in_jwks(self) -> None:
        """Drop cached verdicts for tokens whose key is no longer published."""
        for token, (_, _, kid) in list(self._verified.items()):
            if kid not in self._keys:
                del self._verified[token]

    async def _verify(self, token: str) -> tuple[Principal, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not a well-formed JWT") from exc
        # Checked before any key lookup: 'none' and HMAC tokens never reach the verifier.
        if header.get("alg") != "RS256":
            raise InvalidToken("only RS256-signed tokens are accepted")
        if str(header.get("typ", "")).lower() not in _ACCEPTED_TYPES:
            raise InvalidToken("the token is not an access token (typ must be at+jwt)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token header has no kid")
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken(f"the token is not meant for '{self.audience}'") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token was issued by an unknown issuer") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from exc
        return _principal_from(claims), kid


def _principal_from(claims: dict[str, Any]) -> Principal:
    permissions = claims.get("permissions")
    if not isinstance(permissions, list):
        scope = claims.get("scope", "")
        permissions = scope.split() if isinstance(scope, str) else []
    return Principal(
        sub=str(claims["sub"]),
        client_id=str(claims.get("client_id", claims["sub"])),
        role=str(claims.get("role", "")),
        permissions=frozenset(p for p in permissions if isinstance(p, str)),
        claims=claims,
    )


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise MissingToken()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header must be 'Bearer <token>'")
    verifier: JwksVerifier = request.app.state.verifier
    principal = await verifier.verify(token.strip())
    request.state.principal = principal
    # Limits count verified accounts only: a forged token is refused above and never spends a budget.
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.check(request, principal)
    return principal


def require_permission(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks one permission."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.has(permission):
            raise InsufficientScope(permission)
        return principal

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


async def require_content_read(request: Request) -> Principal:
    """A dependency for reading a file's bytes: `files:read`, and a role that is not metadata-only."""
    principal = await authenticate(request)
    if not principal.has("files:read"):
        raise InsufficientScope("files:read")
    if principal.role in METADATA_ONLY_ROLES:
        raise InsufficientScope(
            "files:read",
            f"the {principal.role} role reads metadata only; downloading content needs a USER, READONLY "
            "or ADMIN account",
        )
    return principal
