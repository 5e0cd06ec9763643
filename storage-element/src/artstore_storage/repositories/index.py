"""SQL for the index table. Statements only: the caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_storage.repositories.tables import file_index
from artstore_storage.storage.attributes import FileAttributes

# The index row's columns but its document, in UPSERT_SQL's order.
_COLUMNS = (
    "file_id",
    "original_filename",
    "content_type",
    "size_bytes",
    "sha256",
    "status",
    "saga_id",
    "created_at",
    "updated_at",
)


def _values(attrs: FileAttributes) -> tuple[Any, ...]:
    return (
        uuid.UUID(attrs.file_id),
        attrs.original_filename,
        attrs.content_type,
        attrs.size_bytes,
        attrs.sha256,
        attrs.status,
        attrs.saga_id,
        attrs.created_at,
        attrs.updated_at,
    )


def _row(attrs: FileAttributes) -> dict[str, Any]:
    return {**dict(zip(_COLUMNS, _values(attrs), strict=True)), "attributes": attrs.model_dump(mode="json")}


# The upload path's statement, for IndexWriter: the row of `upsert_many`, in one prepared round trip.
UPSERT_SQL = """
INSERT INTO file_index (file_id, original_filename, content_type, size_bytes, sha256, status, saga_id,
                        created_at, updated_at, attributes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
ON CONFLICT (file_id) DO UPDATE SET
    original_filename = EXCLUDED.original_filename, content_type = EXCLUDED.content_type,
    size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, status = EXCLUDED.status,
    saga_id = EXCLUDED.saga_id, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    attributes = EXCLUDED.attributes, indexed_at = now()
"""


def upsert_arguments(attrs: FileAttributes) -> tuple[Any, ...]:
    """UPSERT_SQL's parameters, in its column order; the document serialized by pydantic in one step."""
    return (*_values(attrs), attrs.model_dump_json())


async def upsert_many(conn: AsyncConnection, batch: list[FileAttributes]) -> None:
    if not batch:
        return
    rows = [_row(a) for a in batch]
    statement = insert(file_index).values(rows)
    updates: dict[str, Any] = {k: statement.excluded[k] for k in rows[0] if k != "file_id"}
    updates["indexed_at"] = func.now()
    await conn.execute(statement.on_conflict_do_update(index_elements=["file_id"], set_=updates))


async def remove(conn: AsyncConnection, file_id: uuid.UUID) -> None:
    await conn.execute(delete(file_index).where(file_index.c.file_id == file_id))


async def remove_many(conn: AsyncConnection, file_ids: list[uuid.UUID]) -> None:
    if file_ids:
        await conn.execute(delete(file_index).where(file_index.c.file_id.in_(file_ids)))


async def restore(conn: AsyncConnection, file_id: uuid.UUID, attrs: FileAttributes | None) -> None:
    """Put a row back to an earlier image, or remove it when there was none."""
    if attrs is None:
        await remove(conn, file_id)
    else:
        await upsert_many(conn, [attrs])


async def ids_for_saga(conn: AsyncConnection, saga_id: str) -> list[uuid.UUID]:
    result = await conn.execute(select(file_index.c.file_id).where(file_index.c.saga_id == saga_id))
    return [row[0] for row in result]


async def all_attributes(conn: AsyncConnection) -> dict[uuid.UUID, dict[str, Any]]:
    result = await conn.execute(select(file_index.c.file_id, file_index.c.attributes))
    return {row[0]: row[1] for row in result}


async def page(
    conn: AsyncConnection, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    query = select(file_index.c.attributes, file_index.c.created_at, file_index.c.file_id)
    if after is not None:
        query = query.where(tuple_(file_index.c.created_at, file_index.c.file_id) > after)
    query = query.order_by(file_index.c.created_at, file_index.c.file_id).limit(limit)
    result = await conn.execute(query)
    return [dict(row._mapping) for row in result]


async def table_exists(conn: AsyncConnection) -> bool:
    found = await conn.execute(text("SELECT to_regclass('file_index') IS NOT NULL"))
    return bool(found.scalar())


async def recreate_table(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync_conn: file_index.create(sync_conn, checkfirst=True))
