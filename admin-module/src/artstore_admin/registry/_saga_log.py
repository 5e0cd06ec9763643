"""The saga row and its step log for a mode change (tables `sagas` and `saga_steps`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.repositories.tables import saga_steps, sagas


async def start(
    connection: AsyncConnection, *, element_id: str, payload: dict[str, Any], created_by: str | None
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    await connection.execute(
        insert(sagas).values(
            id=saga_id,
            type="mode_change",
            status="started",
            storage_element_id=element_id,
            payload=payload,
            created_by=created_by,
        )
    )
    return saga_id


async def step(
    connection: AsyncConnection, saga_id: uuid.UUID, name: str, status: str, details: dict[str, Any]
) -> None:
    await connection.execute(
        insert(saga_steps).values(saga_id=saga_id, step=name, status=status, details=details)
    )


async def finish(
    connection: AsyncConnection,
    saga_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": func.now()}
    if payload is not None:
        values["payload"] = payload
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(**values))
