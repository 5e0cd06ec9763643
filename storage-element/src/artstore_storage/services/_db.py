"""The element's way to PostgreSQL: database failures become the 503 a client can retry, naming PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from artstore_common.errors import DependencyUnavailable
from artstore_storage.repositories import index
from artstore_storage.storage.attributes import FileAttributes

_log = logging.getLogger(__name__)

# The server went away under a pooled connection (restart, outage): worth one more try on a fresh one.
_CONNECTION_LOST = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, ConnectionError)
_UNAVAILABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    return DependencyUnavailable(
        f"PostgreSQL is unavailable ({type(exc).__name__}); the index cannot be updated, retry later"
    )


@asynccontextmanager
async def index_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine.begin() as connection:
            yield connection
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from exc


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release, which asyncpg makes a round trip (RESET ALL, UNLISTEN, CLOSE ALL...).

    The index writer's one statement changes no session state, so there is nothing to reset; asyncpg still
    rolls back a transaction left open before calling this.
    """


class IndexWriter:
    """The upload path's one statement, the index upsert, on a plain asyncpg pool.

    Built with SQLAlchemy the same upsert cost about 2 ms of the event loop's CPU per upload (statement
    construction, a pre-ping and an explicit transaction: three round trips). Here it is one prepared
    statement and one round trip; a single statement commits atomically on its own. Everything else
    keeps the SQLAlchemy engine.
    """

    def __init__(self, database_url: str, *, schema: str, pool_size: int = 10) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=5,
            command_timeout=30,
            server_settings={"application_name": "artstore", "search_path": self._schema},
            reset=_keep_session,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def upsert(self, attrs: FileAttributes) -> None:
        if self._pool is None:
            raise RuntimeError("IndexWriter.start() was not awaited")
        arguments = index.upsert_arguments(attrs)
        for attempt in (1, 2):
            try:
                # Waiting for a pooled connection is a queue under load, not an outage: a dead server
                # shows within the 5 s connect timeout, a hung statement within the 30 s command timeout.
                async with self._pool.acquire(timeout=30) as connection:
                    await connection.execute(index.UPSERT_SQL, *arguments)
                return
            except _CONNECTION_LOST as exc:
                # The upsert is idempotent, so running it again on a fresh connection is safe.
                if attempt == 2:
                    raise _unavailable(exc) from exc
                _log.info("index connection lost (%s); retrying once on a new one", type(exc).__name__)
            except _UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
