"""SQL for the storage-element registry. Functions take the caller's connection; they never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.elements.client import ElementInfo
from artstore_admin.repositories.tables import storage_elements

Row = dict[str, Any]

# What a discovery subscriber sees; a change in any of these is worth a new snapshot.
VISIBLE = ("name", "url", "mode", "status", "priority", "used_bytes", "file_count")
# Without a quota an element's free space follows its disk, which every log line moves. Publishing each
# wobble would mean a snapshot per poll; a 1% move (never less than 64 KiB) is one that matters to the
# choice of an element, and the finer it gets the closer the element is to full.
DRIFTING = ("capacity_bytes", "free_bytes")
_MIN_DRIFT = 64 * 1024


class DuplicateElement(Exception):
    pass


def info_values(info: ElementInfo) -> Row:
    return {
        "mode": info.mode,
        "capacity_bytes": info.capacity_bytes,
        "used_bytes": info.used_bytes,
        "free_bytes": info.free_bytes,
        "file_count": info.file_count,
        "info": info.raw,
    }


async def list_all(connection: AsyncConnection) -> list[Row]:
    query = select(storage_elements).order_by(storage_elements.c.priority.desc(), storage_elements.c.id)
    return [dict(row) for row in (await connection.execute(query)).mappings()]


async def get(connection: AsyncConnection, element_id: str) -> Row | None:
    row = (
        (await connection.execute(select(storage_elements).where(storage_elements.c.id == element_id)))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def insert_element(connection: AsyncConnection, values: Row) -> Row:
    try:
        async with connection.begin_nested():
            row = (
                (
                    await connection.execute(
                        insert(storage_elements).values(**values).returning(storage_elements)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError as exc:
        raise DuplicateElement(values["id"]) from exc
    return dict(row)


async def update_element(
    connection: AsyncConnection, element_id: str, values: Row, *, if_updated_at: datetime | None = None
) -> Row | None:
    """Update one row; with `if_updated_at`, only if nobody changed it since (a stale poll must not win)."""
    statement = update(storage_elements).where(storage_elements.c.id == element_id)
    if if_updated_at is not None:
        statement = statement.where(storage_elements.c.updated_at == if_updated_at)
    statement = statement.values(**values, updated_at=func.clock_timestamp()).returning(storage_elements)
    row = (await connection.execute(statement)).mappings().first()
    return dict(row) if row is not None else None


async def delete_element(connection: AsyncConnection, element_id: str) -> bool:
    result = await connection.execute(
        delete(storage_elements).where(storage_elements.c.id == element_id).returning(storage_elements.c.id)
    )
    return result.first() is not None


def _moved(before: object, after: object) -> bool:
    if not isinstance(before, int) or not isinstance(after, int):
        return before != after
    return abs(after - before) >= max(before // 100, _MIN_DRIFT)


def visible_change(before: Row, after: Row) -> bool:
    return any(before.get(f) != after.get(f) for f in VISIBLE) or any(
        _moved(before.get(f), after.get(f)) for f in DRIFTING
    )
