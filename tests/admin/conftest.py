"""Admin processes for the admin's tests: each gets a schema of its own in the run's database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.infra import Infra
from tests.support.processes import AdminModule, admin_module

AdminFactory = Callable[..., AdminModule]


def _factory(infra: Infra, base: Path, started: list[AdminModule]) -> AdminFactory:
    def make(*, start: bool = True, schema: str | None = None, **settings: Any) -> AdminModule:
        schema = schema or f"admin_{uuid.uuid4().hex[:10]}"
        admin = admin_module(
            database_url=settings.pop("database_url", infra.database_url),
            redis_url=settings.pop("redis_url", infra.redis_url),
            redis_namespace=settings.pop("redis_namespace", infra.redis_namespace),
            log_dir=base,
            name=f"{schema}-{len(started)}",
            schema=schema,
            **settings,
        )
        started.append(admin)
        return admin.start() if start else admin  # type: ignore[return-value]

    return make


@pytest.fixture
def make_admin(infra: Infra, tmp_path: Path) -> Iterator[AdminFactory]:
    """A fresh admin process per call (its own schema unless given one); stopped after the test."""
    started: list[AdminModule] = []
    yield _factory(infra, tmp_path, started)
    for admin in started:
        admin.stop()


@pytest.fixture(scope="module")
def admin(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminModule]:
    """One admin shared by a module's tests that do not depend on each other's state."""
    started: list[AdminModule] = []
    yield _factory(infra, tmp_path_factory.mktemp("admin"), started)()
    for each in started:
        each.stop()
