"""Service accounts: creation, changes, secret rotation, and checking a client's credentials."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from artstore_admin.audit.log import AuditLog
from artstore_admin.identity.ratelimits import RateLimitPublisher
from artstore_admin.identity.secret_hash import DECOY_HASH, hash_secret, new_secret, verify_secret
from artstore_admin.repositories.tables import account_secrets, service_accounts
from artstore_common.errors import AlreadyExists, Conflict, NotFound

_BOOTSTRAP_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('artstore-bootstrap-account'))")
_NOW = text("now()")


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    name: str
    client_id: str
    role: str
    status: str
    is_system: bool
    description: str | None
    rate_limit_per_minute: int | None
    rate_limit_burst: int | None
    secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _account(row: Any) -> Account:
    return Account(**{name: getattr(row, name) for name in Account.__dataclass_fields__})


@dataclass(frozen=True)
class Credentials:
    """The outcome of a client authentication: the account, or why it was refused (for the audit only)."""

    account: Account | None
    refusal: str | None


class AccountService:
    def __init__(
        self,
        engine: AsyncEngine,
        audit: AuditLog,
        limits: RateLimitPublisher,
        *,
        secret_overlap_seconds: int,
        secret_lifetime_days: int | None,
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._limits = limits
        self._overlap = timedelta(seconds=secret_overlap_seconds)
        self._lifetime = timedelta(days=secret_lifetime_days) if secret_lifetime_days else None

    async def list_accounts(self, status: str | None = None) -> list[Account]:
        query = select(service_accounts).order_by(service_accounts.c.created_at, service_accounts.c.id)
        if status is None:
            query = query.where(service_accounts.c.status != "deleted")
        else:
            query = query.where(service_accounts.c.status == status)
        async with self._engine.connect() as connection:
            return [_account(row) for row in (await connection.execute(query)).all()]

    async def get(self, account_id: uuid.UUID) -> Account:
        async with self._engine.connect() as connection:
            return await _get(connection, account_id)

    async def create(self, fields: dict[str, Any], *, actor: str) -> tuple[Account, str]:
        secret = new_secret()
        account = await self._insert(fields, secret, actor=actor)
        return account, secret

    async def _insert(
        self, fields: dict[str, Any], secret: str, *, actor: str, connection: AsyncConnection | None = None
    ) -> Account:
        values = dict(fields)
        values.setdefault("client_id", values["name"])
        if values.get("secret_expires_at") is None and self._lifetime is not None:
            values["secret_expires_at"] = datetime.now().astimezone() + self._lifetime
        secret_hash = await hash_secret(secret)
        account_id = uuid.uuid4()
        try:
            async with _transaction(self._engine, connection) as tx:
                row = (
                    await tx.execute(
                        insert(service_accounts)
                        .values(id=account_id, status="active", **values)
                        .returning(service_accounts)
                    )
                ).one()
                await tx.execute(
                    insert(account_secrets).values(account_id=account_id, secret_hash=secret_hash)
                )
                account = _account(row)
                await self._audit.record(
                    "account.created",
                    actor=actor,
                    subject=str(account_id),
                    details=_audit_view(account),
                    connection=tx,
                )
        except IntegrityError as exc:
            raise _duplicate(values) from exc
        await self._limits.publish(str(account.id), account.rate_limit_per_minute, account.rate_limit_burst)
        return account

    async def update(self, account_id: uuid.UUID, changes: dict[str, Any], *, actor: str) -> Account:
        async with self._engine.begin() as tx:
            before = await _get(tx, account_id, for_update=True)
            if before.status == "deleted":
                raise Conflict(f"account {account_id} is deleted; create a new one instead")
            _refuse_self_lockout(before, changes, actor)
            if changes:
                row = (
                    await tx.execute(
                        update(service_accounts)
                        .where(service_accounts.c.id == account_id)
                        .values(**changes, updated_at=func.now())
                        .returning(service_accounts)
                    )
                ).one()
                after = _account(row)
                await self._audit.record(
                    "account.updated",
                    actor=actor,
                    subject=str(account_id),
                    details={"changes": {k: after.public()[k] for k in changes}},
                    connection=tx,
                )
            else:
                after = before
        await self._limits.publish(str(after.id), after.rate_limit_per_minute, after.rate_limit_burst)
        return after

    async def delete(self, account_id: uuid.UUID, *, actor: str) -> None:
        async with self._engine.begin() as tx:
            account = await _get(tx, account_id, for_update=True)
            if account.status == "deleted":
                return
            _refuse_self_lockout(account, {"status": "deleted"}, actor)
            await tx.execute(
                update(service_accounts)
                .where(service_accounts.c.id == account_id)
                .values(status="deleted", updated_at=func.now())
            )
            await self._audit.record("account.deleted", actor=actor, subject=str(account_id), connection=tx)
        await self._limits.publish(str(account_id), None, None)

    async def rotate_secret(self, account_id: uuid.UUID, *, actor: str) -> tuple[Account, str, datetime]:
        """A new secret; the current one keeps working for the overlap, so clients can switch without a gap."""
        secret = new_secret()
        secret_hash = await hash_secret(secret)
        async with self._engine.begin() as tx:
            account = await _get(tx, account_id, for_update=True)
            if account.status == "deleted":
                raise Conflict(f"account {account_id} is deleted; its secret cannot be rotated")
            now = (await tx.execute(select(_NOW))).scalar_one()
            old_valid_until = now + self._overlap
            # A secret already in its overlap keeps the earlier end: a second rotation never extends it.
            await tx.execute(
                update(account_secrets)
                .where(account_secrets.c.account_id == account_id)
                .where(
                    or_(
                        account_secrets.c.valid_until.is_(None),
                        account_secrets.c.valid_until > old_valid_until,
                    )
                )
                .values(valid_until=old_valid_until)
            )
            await tx.execute(insert(account_secrets).values(account_id=account_id, secret_hash=secret_hash))
            row = (
                await tx.execute(
                    update(service_accounts)
                    .where(service_accounts.c.id == account_id)
                    .values(
                        secret_expires_at=now + self._lifetime if self._lifetime else None, updated_at=now
                    )
                    .returning(service_accounts)
                )
            ).one()
            await self._audit.record(
                "account.secret_rotated",
                actor=actor,
                subject=str(account_id),
                details={"previous_secret_valid_until": old_valid_until},
                connection=tx,
            )
        return _account(row), secret, old_valid_until

    async def authenticate(self, client_id: str, secrets: list[str]) -> Credentials:
        """Check a client's secret (the raw value and, when it differs, its form-decoded value)."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(service_accounts).where(service_accounts.c.client_id == client_id)
                )
            ).first()
            hashes: list[tuple[str, bool]] = []
            if row is not None:
                rows = await connection.execute(
                    select(
                        account_secrets.c.secret_hash,
                        account_secrets.c.valid_until.is_(None).label("current"),
                    )
                    .where(account_secrets.c.account_id == row.id)
                    .where(or_(account_secrets.c.valid_until.is_(None), account_secrets.c.valid_until > _NOW))
                    .order_by(account_secrets.c.id.desc())
                )
                hashes = [(r.secret_hash, bool(r.current)) for r in rows]
                now = (await connection.execute(select(_NOW))).scalar_one()
        if row is None:
            await verify_secret(secrets[0], DECOY_HASH)
            return Credentials(None, "unknown client")
        account = _account(row)
        matched: bool | None = None  # None: no match; else whether the matching secret is the current one
        for stored, current in hashes:
            for candidate in secrets:
                if await verify_secret(candidate, stored):
                    matched = current
                    break
            if matched is not None:
                break
        if matched is None:
            return Credentials(None, "wrong secret")
        if account.status != "active":
            return Credentials(None, f"account is {account.status}")
        if matched and account.secret_expires_at is not None and account.secret_expires_at <= now:
            return Credentials(None, "secret expired")
        return Credentials(account, None)

    async def bootstrap(self, client_id: str, secret: str | None, *, is_system: bool = False) -> Account:
        """The first ADMIN account, created once; later starts leave it exactly as it is."""
        async with self._engine.begin() as tx:
            # Several admins may start together: one creates, the others find it.
            await tx.execute(_BOOTSTRAP_LOCK)
            row = (
                await tx.execute(select(service_accounts).where(service_accounts.c.client_id == client_id))
            ).first()
            if row is not None:
                return _account(row)
            if not secret:
                raise RuntimeError(
                    f"there is no bootstrap account '{client_id}' yet and ARTSTORE_ADMIN_BOOTSTRAP_CLIENT_SECRET "
                    "is not set: set it to the secret the first ADMIN account should have, then start again"
                )
            fields = {
                "name": client_id,
                "client_id": client_id,
                "role": "ADMIN",
                "is_system": is_system,
                "description": "bootstrap ADMIN account",
            }
            return await self._insert(fields, secret, actor="bootstrap", connection=tx)

    async def publish_rate_limits(self) -> None:
        query = select(
            service_accounts.c.id,
            service_accounts.c.rate_limit_per_minute,
            service_accounts.c.rate_limit_burst,
        ).where(service_accounts.c.status != "deleted")
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        await self._limits.publish_all((str(r.id), r.rate_limit_per_minute, r.rate_limit_burst) for r in rows)


@asynccontextmanager
async def _transaction(
    engine: AsyncEngine, connection: AsyncConnection | None
) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction when it has one, else a new one."""
    if connection is not None:
        yield connection
        return
    async with engine.begin() as own:
        yield own


async def _get(connection: AsyncConnection, account_id: uuid.UUID, *, for_update: bool = False) -> Account:
    query = select(service_accounts).where(service_accounts.c.id == account_id)
    if for_update:
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        raise NotFound(f"there is no service account {account_id}")
    return _account(row)


def _refuse_self_lockout(account: Account, changes: dict[str, Any], actor: str) -> None:
    if str(account.id) != actor:
        return
    if changes.get("status", account.status) != "active" or changes.get("role", account.role) != account.role:
        raise Conflict(
            "you cannot suspend, delete or change the role of the account you are calling with; "
            "use another ADMIN account"
        )


def _duplicate(values: dict[str, Any]) -> AlreadyExists:
    return AlreadyExists(
        f"a service account named '{values['name']}' or with client_id '{values['client_id']}' already exists; "
        "choose another name or client_id"
    )


def _audit_view(account: Account) -> dict[str, Any]:
    view = account.public()
    for field in ("id", "created_at", "updated_at"):
        view.pop(field)
    return view
