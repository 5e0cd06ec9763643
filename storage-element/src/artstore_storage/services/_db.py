"""Turns database failures into the 503 a client can retry, naming PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from artstore_common.errors import DependencyUnavailable


@asynccontextmanager
async def index_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine.begin() as connection:
            yield connection
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        raise DependencyUnavailable(
            f"PostgreSQL is unavailable ({type(exc).__name__}); the index cannot be updated, retry later"
        ) from exc
