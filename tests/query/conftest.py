"""Fixtures for the query module's tests: clusters of real processes with query modules (tests.support.cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, ClusterFactory, cluster_factory, stop_clusters
from tests.support.infra import Infra


@pytest.fixture
def make_cluster(infra: Infra, tmp_path: Path) -> Iterator[ClusterFactory]:
    made: list[tuple[Cluster | None, list[Any]]] = []
    yield cluster_factory(infra, tmp_path, made)
    stop_clusters(made)


@pytest.fixture(scope="module")
def cluster(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster with one query module, shared by a module's tests that do not depend on each other's state."""
    made: list[tuple[Cluster | None, list[Any]]] = []
    yield cluster_factory(infra, tmp_path_factory.mktemp("cluster"), made)(queries=1)
    stop_clusters(made)
