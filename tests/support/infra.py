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
import redis
from sqlalchemy.engine import make_url

from artstore_common.embedded import EmbeddedPostgres, EmbeddedRedis

# Every Redis namespace this process makes starts with this, so that it can delete its keys when done: some
# (discovery snapshots) have no expiry and would otherwise stay in a shared Redis for good.
RUN_NAMESPACE = f"artstore-test-{uuid.uuid4().hex[:10]}"


def own_namespace(kind: str) -> str:
    """A Redis namespace of its own for one cluster or test, under this process's RUN_NAMESPACE."""
    return f"{RUN_NAMESPACE}-{kind}-{uuid.uuid4().hex[:8]}"


def delete_namespace_keys(redis_url: str, prefix: str) -> int:
    """Delete every key that starts with `prefix` (best effort: a Redis already gone is not an error)."""
    deleted = 0
    with (
        contextlib.suppress(redis.RedisError, OSError),
        redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5) as client,
    ):
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    return deleted


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
            yield Infra(_admin_dsn(server_url, database), redis_url, own_namespace("infra"))
        finally:
            asyncio.run(_drop_database(server_url, database))
            delete_namespace_keys(redis_url, RUN_NAMESPACE)
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
