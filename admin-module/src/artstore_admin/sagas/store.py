"""SQL statements on the saga tables and the catalog. Flush, never commit: callers own the transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.repositories.tables import files, saga_steps, sagas, storage_elements

Row = RowMapping
# The types the saga service drives; mode changes (type mode_change) are the registry's, on the same tables.
SAGA_TYPES = ("upload", "update", "delete")


async def insert_saga(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a saga; False when its idempotency key is already taken (the caller then reads that one)."""
    statement = pg_insert(sagas).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    result = await connection.execute(statement.returning(sagas.c.id))
    return result.first() is not None


async def by_idempotency_key(connection: AsyncConnection, key: str, *, lock: bool = False) -> Row | None:
    statement = select(sagas).where(sagas.c.idempotency_key == key)
    if lock:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().first()


async def release_idempotency_key(connection: AsyncConnection, saga_id: uuid.UUID) -> None:
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(idempotency_key=None))


async def touch(connection: AsyncConnection, saga_id: uuid.UUID) -> None:
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(updated_at=func.now()))


async def get(connection: AsyncConnection, saga_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    statement = select(sagas).where(sagas.c.id == saga_id)
    if lock:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().first()


async def steps(connection: AsyncConnection, saga_id: uuid.UUID) -> list[Row]:
    statement = select(saga_steps).where(saga_steps.c.saga_id == saga_id).order_by(saga_steps.c.id)
    return list((await connection.execute(statement)).mappings())


async def add_step(
    connection: AsyncConnection, saga_id: uuid.UUID, step: str, status: str, details: dict[str, Any]
) -> None:
    await connection.execute(
        insert(saga_steps).values(saga_id=saga_id, step=step, status=status, details=details)
    )


async def set_status(
    connection: AsyncConnection,
    saga_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if error is not None:
        values["error"] = error
    if payload is not None:
        values["payload"] = payload
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(**values))


async def claim_stale(
    connection: AsyncConnection, *, started_before: timedelta, retry_after: timedelta, batch: int
) -> list[uuid.UUID]:
    """Claim sagas nobody finished: rows another admin holds are skipped, and the claim is a lease.

    Touching updated_at is the lease: once this transaction commits, other admins see the row as fresh
    and leave it alone until the lease runs out, even though the row lock itself is gone.
    """
    stale = sagas.c.type.in_(SAGA_TYPES) & or_(
        (sagas.c.status == "started") & (sagas.c.updated_at < func.now() - started_before),
        (sagas.c.status == "compensating") & (sagas.c.updated_at < func.now() - retry_after),
    )
    statement = (
        select(sagas.c.id)
        .where(stale)
        .order_by(sagas.c.updated_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    claimed = list((await connection.execute(statement)).scalars())
    if claimed:
        await connection.execute(update(sagas).where(sagas.c.id.in_(claimed)).values(updated_at=func.now()))
    return claimed


async def element_url(connection: AsyncConnection, element_id: str) -> str | None:
    statement = select(storage_elements.c.url).where(storage_elements.c.id == element_id)
    value = (await connection.execute(statement)).scalar_one_or_none()
    return None if value is None else str(value)


async def catalog_row(connection: AsyncConnection, file_id: uuid.UUID) -> Row | None:
    return (await connection.execute(select(files).where(files.c.file_id == file_id))).mappings().first()


async def insert_catalog_row(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a catalog row; False when the file id is already in the catalog."""
    statement = pg_insert(files).values(**values).on_conflict_do_nothing(index_elements=["file_id"])
    return (await connection.execute(statement.returning(files.c.file_id))).first() is not None


async def update_catalog_row(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Replace the indexed fields of a catalog row; the upload's saga id stays. False when there is none."""
    changes = {k: v for k, v in values.items() if k not in ("file_id", "saga_id")}
    statement = (
        update(files).where(files.c.file_id == values["file_id"]).values(**changes, synced_at=func.now())
    )
    return bool((await connection.execute(statement.returning(files.c.file_id))).first())


async def remove_catalog_row(
    connection: AsyncConnection, file_id: uuid.UUID, *, saga_id: uuid.UUID | None = None
) -> bool:
    statement = delete(files).where(files.c.file_id == file_id)
    if saga_id is not None:
        # A compensation removes only the row its own saga wrote, never an older upload's.
        statement = statement.where(files.c.saga_id == saga_id)
    return bool((await connection.execute(statement.returning(files.c.file_id))).first())


# -- several sagas in one statement (the batch endpoints) -------------------------------------------------


async def registered_elements(connection: AsyncConnection, element_ids: set[str]) -> set[str]:
    statement = select(storage_elements.c.id).where(storage_elements.c.id.in_(element_ids))
    return {str(value) for value in (await connection.execute(statement)).scalars()}


async def insert_sagas(connection: AsyncConnection, rows: list[dict[str, Any]]) -> dict[uuid.UUID, Row]:
    """Insert sagas without idempotency keys; each one's timestamps by id."""
    statement = insert(sagas).returning(sagas.c.id, sagas.c.created_at, sagas.c.updated_at)
    return {row["id"]: row for row in (await connection.execute(statement, rows)).mappings()}


async def add_steps(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert step rows (saga_id, step, status, details each) in one round trip."""
    if rows:
        await connection.execute(insert(saga_steps), rows)


async def get_many(
    connection: AsyncConnection, saga_ids: list[uuid.UUID], *, lock: bool = False
) -> list[Row]:
    """The sagas found, in id order: concurrent batches lock their rows in one order and never deadlock."""
    statement = select(sagas).where(sagas.c.id.in_(saga_ids)).order_by(sagas.c.id)
    if lock:
        statement = statement.with_for_update()
    return list((await connection.execute(statement)).mappings())


async def set_status_many(connection: AsyncConnection, saga_ids: list[uuid.UUID], status: str) -> None:
    if saga_ids:
        await connection.execute(
            update(sagas).where(sagas.c.id.in_(saga_ids)).values(status=status, updated_at=func.now())
        )


async def insert_catalog_rows(
    connection: AsyncConnection, rows: list[dict[str, Any]]
) -> dict[uuid.UUID, uuid.UUID]:
    """Insert catalog rows, skipping file ids already catalogued; the saga id of each row inserted, by file id."""
    if not rows:
        return {}
    statement = (
        pg_insert(files)
        .on_conflict_do_nothing(index_elements=["file_id"])
        .returning(files.c.file_id, files.c.saga_id)
    )
    return {row.file_id: row.saga_id for row in await connection.execute(statement, rows)}
