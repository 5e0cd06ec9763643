"""Reading the audit log: filtered, in chain order, one keyset page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.repositories.tables import audit_log


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None


async def page(
    engine: AsyncEngine, where: AuditFilter, *, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Records with id > after that match; the id to continue after, or None on the last page."""
    statement = select(audit_log).order_by(audit_log.c.id).limit(limit + 1)
    if after is not None:
        statement = statement.where(audit_log.c.id > after)
    if where.action is not None:
        statement = statement.where(audit_log.c.action == where.action)
    if where.actor is not None:
        statement = statement.where(audit_log.c.actor == where.actor)
    if where.since is not None:
        statement = statement.where(audit_log.c.occurred_at >= where.since)
    async with engine.connect() as connection:
        rows = list((await connection.execute(statement)).mappings())
    more = len(rows) > limit
    items = [_describe(row) for row in rows[:limit]]
    return items, (items[-1]["id"] if more else None)


def _describe(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "action": row["action"],
        "outcome": row["outcome"],
        "actor": row["actor"],
        "subject": row["subject"],
        "service": row["service"],
        "request_id": row["request_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
        "signature": row["signature"],
    }
