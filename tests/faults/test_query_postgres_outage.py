"""PostgreSQL goes away under a running query module and comes back.

What is cached (L1, L2) is still served and its content still downloads (the element reads by id without a
database); what needs the catalog (an uncached file, a search) answers 503 with a clear message; once the
database is back everything answers again, without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from artstore_common.embedded import EmbeddedPostgres
from tests.faults.conftest import DATABASE
from tests.query._support import upload
from tests.support.cluster import Cluster, cluster_factory, stop_clusters, wait_for
from tests.support.infra import Infra

pytestmark = pytest.mark.faults


@pytest.fixture
def cluster(own_postgres: EmbeddedPostgres, infra: Infra, tmp_path: Path) -> Iterator[Cluster]:
    made: list[tuple[Cluster | None, list[Any]]] = []
    database_url = f"postgresql://postgres@127.0.0.1:{own_postgres.port}/{DATABASE}"
    on_own_postgres = Infra(database_url, infra.redis_url, infra.redis_namespace)
    yield cluster_factory(on_own_postgres, tmp_path, made)(queries=1)
    stop_clusters(made)


def test_cached_files_are_served_and_the_rest_fails_clearly_until_postgres_returns(
    cluster: Cluster, own_postgres: EmbeddedPostgres
):
    cached_body, uncached_body = os.urandom(40_000), os.urandom(40_000)
    cached = upload(cluster, cached_body, filename="pg-cached.bin")
    uncached = upload(cluster, uncached_body, filename="pg-uncached.bin")
    reader = cluster.query_client("READONLY")
    assert reader.get(f"/files/{cached['file_id']}").status_code == 200  # now in L1 and L2
    # The query module now also holds a token for the elements: the admin cannot issue one without PostgreSQL.
    assert reader.get(f"/files/{cached['file_id']}/content").content == cached_body

    own_postgres.stop()
    try:
        again = reader.get(f"/files/{cached['file_id']}")
        assert again.status_code == 200, again.text
        assert again.headers["X-Artstore-Cache"] == "L1"
        assert reader.get(f"/files/{cached['file_id']}/content").content == cached_body

        missing = reader.get(f"/files/{uncached['file_id']}")
        assert missing.status_code == 503, missing.text
        assert missing.json()["code"] == "DEPENDENCY_UNAVAILABLE"
        assert "catalog database is unavailable" in missing.json()["detail"]
        assert "Retry-After" in missing.headers

        search = reader.post("/search", json={"filename": "pg-"})
        assert search.status_code == 503, search.text
        assert "catalog database is unavailable" in search.json()["detail"]

        # The admin cannot issue tokens without its database: an outage (503), not a bug (500).
        refused = httpx.post(
            cluster.admin.token_url,
            data={"grant_type": "client_credentials"},
            auth=(cluster.admin.client_id, cluster.admin.client_secret),
            timeout=30,
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "DEPENDENCY_UNAVAILABLE"
        assert "Retry-After" in refused.headers

        ready = reader.get(f"{cluster.query.url}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgresql"]["ok"] is False
    finally:
        own_postgres.start()

    answered = wait_for(
        lambda: (r := reader.get(f"/files/{uncached['file_id']}")).status_code == 200 and r,
        within=30,
        what="the uncached file once PostgreSQL is back",
    )
    assert answered.json()["sha256"] == uncached["sha256"]
    assert reader.get(f"/files/{uncached['file_id']}/content").content == uncached_body
    found = reader.post("/search", json={"filename": "pg-"})
    assert found.status_code == 200, found.text
    assert {item["file_id"] for item in found.json()["items"]} == {cached["file_id"], uncached["file_id"]}
