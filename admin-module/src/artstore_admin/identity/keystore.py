"""Signing keys in PostgreSQL: one active key, retired keys published until their grace ends.

Every admin process keeps the published keys in memory and reloads them from the database periodically and
on an unknown kid, so a process that did not rotate still signs with the current key. Rotation takes a
transaction-scoped advisory lock and re-checks the active key inside it: several admins rotating at the same
moment make exactly one new key.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from artstore_admin.audit.log import AuditLog
from artstore_admin.identity.keycrypto import KeyCipher, generate_key, public_jwk
from artstore_admin.repositories.tables import signing_keys

_KEYS_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('artstore-signing-keys'))")


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    status: str
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None
    publish_until: datetime | None

    def published(self, now: datetime) -> bool:
        return self.status == "active" or (self.publish_until is not None and self.publish_until > now)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey


@dataclass(frozen=True)
class Rotation:
    active_kid: str
    retired_kid: str | None
    rotated: bool  # False when another request or admin rotated first and this one found it done


def _new_kid() -> str:
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(8)}"


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        row.kid, row.status, dict(row.public_jwk), row.created_at, row.retired_at, row.publish_until
    )


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        cipher: KeyCipher,
        audit: AuditLog,
        *,
        rotation_seconds: int,
        grace_seconds: int,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._audit = audit
        self._rotation = timedelta(seconds=rotation_seconds)
        self._grace = timedelta(seconds=grace_seconds)
        self._published: list[KeyInfo] = []
        self._signing: SigningKey | None = None
        self._reload_lock = asyncio.Lock()

    async def start(self) -> None:
        """Make sure there is an active key (the first admin to start creates it), then load."""
        if await self.active_kid() is None:
            await self.rotate(expected_kid=None, actor="admin", reason="initial")
        await self.reload()

    async def reload(self) -> None:
        async with self._reload_lock:
            async with self._engine.connect() as connection:
                rows = (
                    await connection.execute(
                        select(signing_keys).where(
                            or_(
                                signing_keys.c.status == "active",
                                signing_keys.c.publish_until > text("now()"),
                            )
                        )
                    )
                ).all()
            active = next((row for row in rows if row.status == "active"), None)
            if active is None:
                raise RuntimeError("no active signing key in the database")
            if self._signing is None or self._signing.kid != active.kid:
                private_key = self._cipher.decrypt(active.kid, bytes(active.private_key_encrypted))
                self._signing = SigningKey(active.kid, private_key)
            self._published = [_info(row) for row in rows]

    def signing_key(self) -> SigningKey:
        if self._signing is None:
            raise RuntimeError("the key store is not loaded")
        return self._signing

    def jwks(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"keys": [dict(key.public_jwk) for key in self._published if key.published(now)]}

    async def load_jwks(self) -> dict[str, Any]:
        await self.reload()
        return self.jwks()

    def next_expiry(self) -> datetime | None:
        """When the next retired key leaves the JWKS: the verifier must drop it at that moment."""
        ends = [k.publish_until for k in self._published if k.status != "active" and k.publish_until]
        return min(ends, default=None)

    async def list_keys(self) -> list[KeyInfo]:
        async with self._engine.connect() as connection:
            rows = (
                await connection.execute(select(signing_keys).order_by(signing_keys.c.created_at.desc()))
            ).all()
        return [_info(row) for row in rows]

    async def active_kid(self) -> str | None:
        async with self._engine.connect() as connection:
            return await _active_kid(connection)

    async def rotate_if_due(self) -> Rotation | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        signing_keys.c.kid, (text("now()") - signing_keys.c.created_at).label("age")
                    ).where(signing_keys.c.status == "active")
                )
            ).first()
        if row is not None and row.age < self._rotation:
            return None
        return await self.rotate(expected_kid=row.kid if row else None, actor="admin", reason="scheduled")

    async def rotate(self, *, expected_kid: str | None, actor: str, reason: str) -> Rotation:
        """Retire `expected_kid` and activate a new key, unless the active key is no longer `expected_kid`:
        then someone else rotated a moment ago and their key stands. `expected_kid=None` only creates the
        first key."""
        # Generated before the lock so the lock is held for milliseconds, not for an RSA key generation.
        private_key = await asyncio.to_thread(generate_key)
        kid = _new_kid()
        async with self._engine.begin() as connection:
            await connection.execute(_KEYS_LOCK)
            current = await _active_kid(connection)
            if current is not None and current != expected_kid:
                lost = Rotation(current, None, rotated=False)
            else:
                lost = None
                await self._insert_successor(
                    connection, current, kid, private_key, actor=actor, reason=reason
                )
        await self.reload()
        return lost or Rotation(kid, current, rotated=True)

    async def _insert_successor(
        self,
        connection: AsyncConnection,
        current: str | None,
        kid: str,
        private_key: rsa.RSAPrivateKey,
        *,
        actor: str,
        reason: str,
    ) -> None:
        now = (await connection.execute(select(text("now()")))).scalar_one()
        if current is not None:
            await connection.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == current)
                .values(status="retired", retired_at=now, publish_until=now + self._grace)
            )
        await connection.execute(
            insert(signing_keys).values(
                kid=kid,
                algorithm="RS256",
                public_jwk=public_jwk(kid, private_key),
                private_key_encrypted=self._cipher.encrypt(kid, private_key),
                status="active",
                created_at=now,
            )
        )
        await self._audit.record(
            "key.rotated" if current else "key.created",
            actor=actor,
            subject=kid,
            details={
                "retired_kid": current,
                "reason": reason,
                "grace_seconds": self._grace.total_seconds(),
            },
            connection=connection,
        )


async def _active_kid(connection: AsyncConnection) -> str | None:
    kid = (
        await connection.execute(select(signing_keys.c.kid).where(signing_keys.c.status == "active"))
    ).scalar()
    return None if kid is None else str(kid)
