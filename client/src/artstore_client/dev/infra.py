"""PostgreSQL and Redis for the dev cluster: the ones the environment names, or embedded ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from artstore_client.dev.layout import DevLayout
from artstore_client.settings import DevSettings
from artstore_common.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from artstore_common.redis import create_redis

DATABASE = "artstore"
_log = logging.getLogger("artstore.dev")


class InfrastructureUnavailable(Exception):
    """PostgreSQL or Redis cannot be used; the message says which, where and what to do."""


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Infrastructure:
    database_url: str
    redis_url: str
    redis_namespace: str
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    _stopped: bool = field(default=False, repr=False)

    def describe(self) -> dict[str, dict[str, object]]:
        return {
            "database": {
                "url": mask_password(self.database_url),
                "embedded": self.embedded_postgres is not None,
            },
            "redis": {
                "url": mask_password(self.redis_url),
                "embedded": self.embedded_redis is not None,
                "namespace": self.redis_namespace,
            },
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _check_postgres(url: str) -> None:
    try:
        connection = await asyncpg.connect(_dsn(url), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:  # TimeoutError is an OSError
        raise InfrastructureUnavailable(
            f"cannot connect to PostgreSQL at {mask_password(url)}: {exc}. "
            "Fix ARTSTORE_DATABASE_URL, or unset it to run an embedded PostgreSQL."
        ) from exc
    await connection.close()


async def _create_database_if_missing(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(_dsn(server_url, "postgres"), timeout=10)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name, timeout=10)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"', timeout=30)
            _log.info("created database %s", name)
    finally:
        await connection.close()


async def _check_redis(url: str) -> None:
    client = create_redis(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise InfrastructureUnavailable(
            f"cannot reach Redis at {mask_password(url)}: {exc}. "
            "Fix ARTSTORE_REDIS_URL, or unset it to run an embedded Redis."
        ) from exc
    finally:
        await client.aclose()


def _start_embedded_postgres(layout: DevLayout) -> EmbeddedPostgres:
    server = EmbeddedPostgres(layout.postgres, port=free_port())
    if (layout.postgres / "postmaster.pid").exists():
        # A previous `dev up` ended without stopping its server (kill -9, power cut); ours holds the
        # data-directory lock, so whatever still runs there is an orphan of that run.
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
    try:
        return server.start()
    except (subprocess.SubprocessError, RuntimeError) as exc:
        raise InfrastructureUnavailable(
            f"the embedded PostgreSQL in {layout.postgres} did not start: {exc} "
            f"(its log: {layout.postgres / 'server.log'})"
        ) from exc


def _start_embedded_redis(layout: DevLayout) -> EmbeddedRedis:
    try:
        return EmbeddedRedis(layout.redis, port=free_port()).start()
    except (OSError, RuntimeError) as exc:
        raise InfrastructureUnavailable(
            f"the embedded Redis did not start: {exc} (its log: {layout.redis / 'redis.log'})"
        ) from exc


async def start_infrastructure(settings: DevSettings, layout: DevLayout) -> Infrastructure:
    """Servers from the environment are checked; embedded ones are started. Stop what this returns."""
    infra = Infrastructure(database_url="", redis_url="", redis_namespace=settings.redis_namespace)
    try:
        if settings.database_url is not None:
            infra.database_url = settings.database_url.get_secret_value()
            await _check_postgres(infra.database_url)
        else:
            infra.embedded_postgres = await asyncio.to_thread(_start_embedded_postgres, layout)
            await _create_database_if_missing(infra.embedded_postgres.url, DATABASE)
            infra.database_url = _dsn(infra.embedded_postgres.url, DATABASE)
        if settings.redis_url is not None:
            infra.redis_url = settings.redis_url.get_secret_value()
            await _check_redis(infra.redis_url)
        else:
            infra.embedded_redis = await asyncio.to_thread(_start_embedded_redis, layout)
            infra.redis_url = infra.embedded_redis.url
    except BaseException:
        await asyncio.to_thread(infra.stop)
        raise
    return infra
