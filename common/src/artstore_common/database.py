"""Async SQLAlchemy engines on asyncpg."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection that died with its server (restart, outage) is replaced instead of failing a request.
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"server_settings": server_settings, "timeout": 5, "command_timeout": command_timeout},
    )
