from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from artstore_common.embedded import EmbeddedPostgres, EmbeddedRedis, free_port


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> int:
    """The seed of a test's random choices; ARTSTORE_FAULT_SEED replays a failing run."""
    seed = int(os.environ.get("ARTSTORE_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
    # Printed so it appears in the report of a failing test; rerun with ARTSTORE_FAULT_SEED=<seed>.
    print(f"{request.node.nodeid}: ARTSTORE_FAULT_SEED={seed}")
    return seed


DATABASE = "artstore_faults"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test alone, so stopping it disturbs nothing else."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test alone, so stopping it disturbs nothing else.

    Its data directory is not under tmp_path: every pytest session that starts on the machine resets
    /tmp/pytest-of-<user> to mode 0700, which (when tests run as root) locks out the unprivileged account
    PostgreSQL runs as, and the server then fails on its next file open.
    """
    workdir = Path(tempfile.mkdtemp(prefix="artstore-faults-pg-"))
    server = EmbeddedPostgres(workdir / "pg", port=free_port())

    async def create_database() -> None:
        conn = await asyncpg.connect(server.url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    try:
        server.start()
        asyncio.run(create_database())
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
