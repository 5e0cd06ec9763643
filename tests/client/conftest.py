"""Fixtures shared by the SDK's and the command line's tests: one real cluster per module (admin, an `edit` and an
`rw` element, an ingester and a query module, all processes) and an ADMIN service account of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.cluster import Cluster, ClusterFactory

if TYPE_CHECKING:
    from artstore_client import Client


@pytest.fixture(scope="module")
def cluster(make_cluster_module: ClusterFactory) -> Cluster:
    """A cluster with one query module, shared by the tests of a module."""
    return make_cluster_module(queries=1)


@pytest.fixture(scope="module")
def admin_account(cluster: Cluster) -> dict[str, str]:
    """An ADMIN service account of `cluster` (made once): id, client_id, client_secret, ..."""
    return cluster.account("ADMIN")


def cluster_env(cluster: Cluster, account: dict[str, str]) -> dict[str, str]:
    """The ARTSTORE_* variables that point a client at `cluster` as `account`."""
    return {
        "ARTSTORE_ADMIN_URL": cluster.admin.url,
        "ARTSTORE_INGESTER_URL": cluster.ingester.url,
        "ARTSTORE_QUERY_URL": cluster.query.url,
        "ARTSTORE_CLIENT_ID": account["client_id"],
        "ARTSTORE_CLIENT_SECRET": account["client_secret"],
    }


@pytest.fixture
def client_env(cluster: Cluster, admin_account: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Variables for a subprocess run of the CLI as the ADMIN account; its data dir is an empty one under
    tmp_path, so no credentials file of a developer's `artstore dev up` is picked up."""
    data_dir = tmp_path / "artstore-data"
    data_dir.mkdir(exist_ok=True)
    return {**cluster_env(cluster, admin_account), "ARTSTORE_DATA_DIR": str(data_dir)}


@pytest.fixture
def client(cluster: Cluster, admin_account: dict[str, str]) -> Iterator[Client]:
    """An SDK client of `cluster` as the ADMIN account, closed after the test."""
    with cluster.sdk(admin_account) as made:
        yield made
