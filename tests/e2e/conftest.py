from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e._devup import DevUp, free_base_port
from tests.support.cli import base_env
from tests.support.infra import delete_namespace_keys, own_namespace

DevUpFactory = Callable[..., DevUp]


def _dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


async def _execute(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(_dsn(server_url, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def _clusters(workdir: Path) -> Iterator[DevUpFactory]:
    """Clusters, each with its own data dir, ports, database and Redis namespace; all stopped at the end.

    PostgreSQL and Redis are the machine's when ARTSTORE_TEST_DATABASE_URL / ARTSTORE_TEST_REDIS_URL are
    set, and `dev up`'s embedded ones otherwise (or when a test asks for `embedded=True`).
    """
    server_url = os.environ.get("ARTSTORE_TEST_DATABASE_URL")
    redis_url = os.environ.get("ARTSTORE_TEST_REDIS_URL")
    clusters: list[DevUp] = []
    databases: list[str] = []
    namespaces: list[str] = []

    def make(*, embedded: bool = False) -> DevUp:
        env = base_env()
        run = uuid.uuid4().hex[:10]
        if server_url and not embedded:
            database = f"artstore_e2e_{run}"
            asyncio.run(_execute(server_url, f'CREATE DATABASE "{database}"'))
            databases.append(database)
            env["ARTSTORE_DATABASE_URL"] = _dsn(server_url, database)
        if redis_url and not embedded:
            env["ARTSTORE_REDIS_URL"] = redis_url
            namespace = own_namespace("e2e")
            namespaces.append(namespace)
            env["ARTSTORE_REDIS_NAMESPACE"] = namespace
        cluster = DevUp(workdir / f"cluster-{run}", free_base_port(), env)
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.cleanup()
        for database in databases:
            assert server_url is not None
            asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        # Only its own namespaces: clusters of session-wide fixtures under RUN_NAMESPACE may still be running.
        for namespace in namespaces:
            assert redis_url is not None
            delete_namespace_keys(redis_url, f"{namespace}:")


@pytest.fixture
def dev_up(tmp_path: Path) -> Iterator[DevUpFactory]:
    """Clusters of one test (not started yet)."""
    with _clusters(tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevUp]:
    """One running cluster shared by a module's tests."""
    with _clusters(tmp_path_factory.mktemp("e2e")) as make:
        shared = make()
        shared.start()
        yield shared
