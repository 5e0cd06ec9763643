from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, ClusterFactory, cluster_factory, stop_clusters
from tests.support.infra import Infra, test_infra
from tests.support.issuer import TestIssuer
from tests.support.processes import StorageElement, storage_element


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with test_infra(tmp_path_factory.mktemp("infra")) as value:
        yield value


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    server = TestIssuer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_token(issuer: TestIssuer) -> str:
    return issuer.token(lifetime=6 * 3600)


SEFactory = Callable[..., StorageElement]


def _make_factory(infra: Infra, issuer: TestIssuer, base: Path, started: list[StorageElement]) -> SEFactory:
    def factory(mode: str = "rw", *, start: bool = True, **settings: Any) -> StorageElement:
        element_id = settings.pop("element_id", f"se-{uuid.uuid4().hex[:8]}")
        data_dir = settings.pop("data_dir", base / element_id)
        se = storage_element(
            element_id=element_id,
            data_dir=data_dir,
            database_url=settings.pop("database_url", infra.database_url),
            redis_url=settings.pop("redis_url", infra.redis_url),
            redis_namespace=infra.redis_namespace,
            jwks_url=settings.pop("jwks_url", issuer.url),
            log_dir=base,
            mode=mode,
            **settings,
        )
        started.append(se)
        return se.start() if start else se

    return factory


@pytest.fixture
def make_se(infra: Infra, issuer: TestIssuer, tmp_path: Path) -> Iterator[SEFactory]:
    """A fresh storage element process per call; stopped after the test."""
    started: list[StorageElement] = []
    yield _make_factory(infra, issuer, tmp_path, started)
    for se in started:
        se.stop()


@pytest.fixture(scope="module")
def shared_se(
    infra: Infra, issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StorageElement]:
    """One `edit` element shared by a module's tests that do not depend on its state."""
    started: list[StorageElement] = []
    se = _make_factory(infra, issuer, tmp_path_factory.mktemp("shared-se"), started)("edit")
    yield se
    for each in started:
        each.stop()


@pytest.fixture
def client_for(admin_token: str) -> Iterator[Callable[..., httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(se: StorageElement, token: str | None = admin_token) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=se.url + "/api/v1", headers=headers, timeout=120)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_cluster(infra: Infra, tmp_path: Path) -> Iterator[ClusterFactory]:
    """Clusters of real processes (tests.support.cluster), stopped after the test."""
    made: list[tuple[Cluster | None, list[Any]]] = []
    yield cluster_factory(infra, tmp_path, made)
    stop_clusters(made)


@pytest.fixture(scope="module")
def make_cluster_module(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFactory]:
    """Clusters shared by the tests of one module, stopped after its last test."""
    made: list[tuple[Cluster | None, list[Any]]] = []
    yield cluster_factory(infra, tmp_path_factory.mktemp("clusters"), made)
    stop_clusters(made)
