"""Pooled connections that died with their server backend are replaced before a request gets them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_common import database
from artstore_common.database import create_engine
from tests.support.infra import Infra

T = TypeVar("T")


def _with_engine(infra: Infra, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = create_engine(infra.database_url, pool_size=1)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(infra: Infra, pid: int) -> None:
    """What a server restart does to every pooled connection."""
    connection = await asyncpg.connect(infra.database_url)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await connection.close()


def test_a_connection_the_server_closed_is_replaced_without_failing_the_next_request(infra: Infra) -> None:
    async def work(engine: AsyncEngine) -> tuple[int, int]:
        first = await _backend_pid(engine)
        await _terminate(infra, first)
        await asyncio.sleep(0.2)  # the pool's connection sees the end of file while it waits
        return first, await _backend_pid(engine)

    first, second = _with_engine(infra, work)
    assert second != first


def test_a_connection_idle_past_the_quiet_time_is_pinged_and_a_dead_one_replaced(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def work(engine: AsyncEngine) -> tuple[int, int]:
        first = await _backend_pid(engine)
        async with engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            driver = pooled.driver_connection
            assert driver is not None
        # A connection that died quietly (no end of file seen): its socket looks open until it is used.
        really_closed = asyncpg.Connection.is_closed
        with monkeypatch.context() as patch:
            patch.setattr(
                asyncpg.Connection, "is_closed", lambda self: False if self is driver else really_closed(self)
            )
            await _terminate(infra, first)
            await asyncio.sleep(0.2)
            return first, await _backend_pid(engine)

    monkeypatch.setattr(database, "QUIET_SECONDS", 0.0)
    first, second = _with_engine(infra, work)
    assert second != first
