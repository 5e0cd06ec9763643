"""Redis goes away under a running query module: search, metadata (from L1, L3 and L4) and downloads go on.

The cluster runs on a Redis of this test alone, so stopping it disturbs nothing else.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from artstore_common.embedded import EmbeddedRedis
from tests.query._support import upload
from tests.support.cluster import Cluster, cluster_factory, stop_clusters, wait_for
from tests.support.infra import Infra, query

pytestmark = pytest.mark.faults


@pytest.fixture
def cluster(own_redis: EmbeddedRedis, infra: Infra, tmp_path: Path) -> Iterator[Cluster]:
    made: list[tuple[Cluster | None, list[Any]]] = []
    on_own_redis = Infra(infra.database_url, own_redis.url, infra.redis_namespace)
    yield cluster_factory(on_own_redis, tmp_path, made)(queries=1, query_settings={"l3_ttl_seconds": 30})
    stop_clusters(made)


def _age(cluster: Cluster, file_id: str) -> None:
    """Make the catalog row look synced long ago, so the next read past L1 revalidates it (L4)."""
    query(
        cluster.admin.database_url,
        f'UPDATE "{cluster.admin.schema}".files SET synced_at = $2 WHERE file_id = $1',
        uuid.UUID(file_id),
        datetime.now(UTC) - timedelta(hours=1),
    )


def test_search_metadata_and_downloads_keep_working_without_redis(cluster: Cluster, own_redis: EmbeddedRedis):
    bodies = {name: os.urandom(50_000) for name in ("cached", "catalog", "aged")}
    stored = {name: upload(cluster, body, filename=f"outage-{name}.bin") for name, body in bodies.items()}
    reader = cluster.query_client("READONLY")
    assert reader.get(f"/files/{stored['cached']['file_id']}").status_code == 200  # now in L1

    own_redis.stop()

    levels = {}
    for name in ("cached", "catalog"):
        response = reader.get(f"/files/{stored[name]['file_id']}")
        assert response.status_code == 200, response.text
        levels[name] = response.headers["X-Artstore-Cache"]
    _age(cluster, stored["aged"]["file_id"])
    aged = reader.get(f"/files/{stored['aged']['file_id']}")
    assert aged.status_code == 200, aged.text
    levels["aged"] = aged.headers["X-Artstore-Cache"]
    assert levels == {"cached": "L1", "catalog": "L3", "aged": "L4"}

    found = reader.post("/search", json={"filename": "outage-"})
    assert found.status_code == 200, found.text
    assert {item["file_id"] for item in found.json()["items"]} == {s["file_id"] for s in stored.values()}

    for name, body in bodies.items():
        downloaded = reader.get(f"/files/{stored[name]['file_id']}/content")
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == body

    health = reader.get(f"{cluster.query.url}/health/ready")
    assert health.status_code == 200, health.text  # Redis is not critical to the query module
    assert health.json()["checks"]["redis"]["ok"] is False

    own_redis.start()  # the invalidation channel comes back on its own

    def resubscribed() -> bool:
        checks = reader.get(f"{cluster.query.url}/health/ready").json()["checks"]
        return bool(checks["redis"]["ok"] and checks["cache_invalidation"]["ok"])

    wait_for(resubscribed, within=30, what="the query module back on Redis")
