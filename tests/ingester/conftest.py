"""Fixtures for the ingester's tests (make_cluster and make_cluster_module come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster, ClusterFactory


@pytest.fixture(scope="module")
def cluster(make_cluster_module: ClusterFactory) -> Cluster:
    """One cluster shared by a module's tests that do not depend on each other's state."""
    return make_cluster_module()
