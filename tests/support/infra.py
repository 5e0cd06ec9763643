"""PostgreSQL and Redis for a test run: the machine's if ARTSTORE_TEST_* URLs say so, else embedded.

Each run gets its own database and its own Redis key namespace, so runs never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from artstore_common.embedded import EmbeddedPostgres, EmbeddedRedis


@dataclass(frozen=True)
class Infra:
    database_url: str
    redis_url: str
    redis_namespace: str


def _admin_dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


async def _create_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(server_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def test_infra(workdir: Path) -> Iterator[Infra]:
    run = uuid.uuid4().hex[:10]
    embedded: list[Any] = []
    embedded_dirs: list[Path] = []
    server_url = os.environ.get("ARTSTORE_TEST_DATABASE_URL")
    if not server_url:
        # Not under pytest's tmp tree: each new pytest session resets that tree to mode 0700, which would
        # lock the embedded server's own (non-root) account out of its files.
        pg_dir = Path(tempfile.mkdtemp(prefix="artstore-test-pg-"))
        embedded_dirs.append(pg_dir)
        pg = EmbeddedPostgres(pg_dir / "data").start()
        embedded.append(pg)
        server_url = pg.url
    redis_url = os.environ.get("ARTSTORE_TEST_REDIS_URL")
    if not redis_url:
        redis = EmbeddedRedis(workdir / "redis").start()
        embedded.append(redis)
        redis_url = redis.url
    database = f"artstore_test_{run}"
    try:
        asyncio.run(_create_database(server_url, database))
        try:
            yield Infra(_admin_dsn(server_url, database), redis_url, f"artstore-test-{run}")
        finally:
            asyncio.run(_drop_database(server_url, database))
    finally:
        for server in reversed(embedded):
            with contextlib.suppress(Exception):
                server.stop()
        for directory in embedded_dirs:
            shutil.rmtree(directory, ignore_errors=True)


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())
