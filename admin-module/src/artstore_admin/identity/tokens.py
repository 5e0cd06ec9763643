"""Access tokens: RS256 JWTs with exactly the DESIGN claims, signed with the active key."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from artstore_admin.identity.accounts import Account
from artstore_admin.identity.keystore import KeyStore
from artstore_admin.identity.roles import permissions_for

AUDIENCE = ["admin", "ingester", "query", "storage"]
INTERNAL_SUBJECT = "admin-module"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    kid: str
    expires_at: float


class TokenIssuer:
    def __init__(self, keys: KeyStore, *, issuer: str, lifetime_seconds: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._lifetime = lifetime_seconds
        self._internal: IssuedToken | None = None
        self._internal_lock = asyncio.Lock()

    def issue(
        self, *, sub: str, client_id: str, role: str, permissions: list[str], scope: list[str] | None = None
    ) -> IssuedToken:
        """`scope` narrows the token to a subset of `permissions`; the caller checked it is one."""
        granted = permissions if scope is None else [p for p in permissions if p in scope]
        key = self._keys.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "client_id": client_id,
            "role": role,
            "scope": " ".join(granted),
            "permissions": granted,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"}
        )
        return IssuedToken(token, self._lifetime, claims["scope"], key.kid, float(claims["exp"]))

    def issue_for(self, account: Account, scope: list[str] | None = None) -> IssuedToken:
        return self.issue(
            sub=str(account.id),
            client_id=account.client_id,
            role=account.role,
            permissions=permissions_for(account.role, is_system=account.is_system),
            scope=scope,
        )

    async def internal_token(self) -> str:
        """The admin's own token for its calls to the other services; reused until close to expiry."""
        async with self._internal_lock:
            cached = self._internal
            # Reissued early (and after a rotation), so a token in flight never outlives its key's grace.
            margin = min(300.0, self._lifetime / 2)
            if (
                cached is None
                or cached.expires_at - time.time() < margin
                or cached.kid != self._keys.signing_key().kid
            ):
                cached = self.issue(
                    sub=INTERNAL_SUBJECT,
                    client_id=INTERNAL_SUBJECT,
                    role="ADMIN",
                    permissions=permissions_for("ADMIN", is_system=True),
                )
                self._internal = cached
            return cached.access_token
