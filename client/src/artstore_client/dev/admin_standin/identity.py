"""The stand-in's signing key and bootstrap account, generated once and persisted with mode 0600."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from artstore_client._files import write_private

ISSUER = "artstore-admin"
AUDIENCE = ("admin", "ingester", "query", "storage")
TOKEN_LIFETIME_SECONDS = 30 * 60
# DESIGN section 2. The bootstrap account additionally gets `internal` so that, in dev, the storage
# elements' write endpoints can be called directly (normally only the ingester's system account may).
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "ADMIN": (
        "files:read", "files:write", "files:delete", "storage:read", "storage:write",
        "accounts:read", "accounts:write", "audit:read",
    ),
    "USER": ("files:read", "files:write", "files:delete", "storage:read"),
    "AUDITOR": ("audit:read", "files:read", "storage:read"),
    "READONLY": ("files:read", "storage:read"),
}  # fmt: skip
INTERNAL = "internal"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path} does not hold an RSA private key")
            return cls(loaded)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem)
        return cls(key)

    def _public_members(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}

    @property
    def kid(self) -> str:
        """The RFC 7638 thumbprint: stable across restarts because the key is."""
        canonical = json.dumps(self._public_members(), separators=(",", ":"), sort_keys=True)
        return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()

    def jwk(self) -> dict[str, str]:
        return {**self._public_members(), "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, "typ": "at+jwt"}
        )


@dataclass(frozen=True)
class BootstrapAccount:
    id: str
    name: str
    client_id: str
    client_secret: str
    role: str
    created_at: str

    @classmethod
    def load_or_create(cls, path: Path) -> BootstrapAccount:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        account = cls(
            id=str(uuid.uuid4()),
            name="bootstrap-admin",
            client_id=f"admin-{secrets.token_hex(6)}",
            client_secret=secrets.token_urlsafe(32),
            role="ADMIN",
            created_at=datetime.now(UTC).isoformat(),
        )
        write_private(path, (json.dumps(asdict(account), indent=2) + "\n").encode())
        return account

    @property
    def permissions(self) -> tuple[str, ...]:
        return (*ROLE_PERMISSIONS.get(self.role, ()), INTERNAL)

    def authenticates(self, client_id: str, client_secret: str) -> bool:
        # Both compared in constant time, so a timing difference tells nothing about either.
        same_id = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        same_secret = hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        return same_id and same_secret


@dataclass(frozen=True)
class Identity:
    key: SigningKey
    account: BootstrapAccount
    issuer: str = ISSUER

    @classmethod
    def load_or_create(cls, directory: Path) -> Identity:
        return cls(
            SigningKey.load_or_create(directory / "signing-key.pem"),
            BootstrapAccount.load_or_create(directory / "bootstrap-account.json"),
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.jwk()]}

    def issue(self, permissions: tuple[str, ...], lifetime: int = TOKEN_LIFETIME_SECONDS) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.account.id,
            "client_id": self.account.client_id,
            "role": self.account.role,
            "scope": " ".join(permissions),
            "permissions": list(permissions),
            "aud": list(AUDIENCE),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return self.key.sign(claims)
