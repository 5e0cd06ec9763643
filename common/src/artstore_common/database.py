"""Async SQLAlchemy engines on asyncpg."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

# A connection back in the pool for longer than this is pinged before it is lent again.
QUIET_SECONDS = 1.0
_IDLE_SINCE = "artstore_idle_since"


def asyncpg_url(url: str) -> str:
    """Accept the usual postgresql:// spellings and point them at the asyncpg driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(
    url: str, *, schema: str | None = None, pool_size: int = 10, command_timeout: float | None = 30
) -> AsyncEngine:
    """`command_timeout` bounds each statement on the client side; None for work that takes as long as the
    data makes it (a migration building an index over the whole catalog)."""
    server_settings = {"application_name": "artstore"}
    if schema:
        server_settings["search_path"] = schema
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"server_settings": server_settings, "timeout": 5, "command_timeout": command_timeout},
    )
    event.listen(engine.sync_engine.pool, "connect", _note_idle)
    event.listen(engine.sync_engine.pool, "checkin", _note_idle)
    event.listen(engine.sync_engine.pool, "checkout", _check_alive)
    return engine


def _note_idle(dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _check_alive(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """A connection that died with its server (restart, outage) is replaced instead of failing a request.

    SQLAlchemy's pool_pre_ping did this with three round trips on every checkout (BEGIN, a ping, ROLLBACK),
    three of a saga batch's eight. Here a connection whose socket the server closed is known without asking
    (asyncpg sees the end of file while the connection waits in the pool), and only a connection idle for
    over QUIET_SECONDS, which could have died quietly, is pinged. Raising DisconnectionError makes the
    pool discard it and connect anew.
    """
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")
    if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) > QUIET_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection did not answer a ping ({exc})") from exc
