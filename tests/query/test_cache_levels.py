"""Metadata reads through the four cache levels of DESIGN section 6, and invalidation across query modules.

Every answer names the level that gave it in `X-Artstore-Cache`; the per-level counters in /metrics must
agree with those answers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.query._support import cache_reads, drop_l1, drop_l2, l2_entry, upload
from tests.support.cluster import Cluster, wait_for
from tests.support.files import attr_json
from tests.support.infra import query


def _element_dir(cluster: Cluster, stored: dict) -> object:
    return next(
        se for se in cluster.elements.values() if se.element_id == stored["storage_element_id"]
    ).data_dir


def test_each_level_answers_in_turn_and_the_counters_agree(cluster: Cluster):
    stored = upload(cluster, b"levels", description="cache me", tags=["x"], metadata={"n": 1})
    file_id = stored["file_id"]
    reader = cluster.query_client("READONLY")
    before = cache_reads(cluster.query)
    seen: Counter[str] = Counter()

    def read() -> tuple[str, dict]:
        response = reader.get(f"/files/{file_id}")
        assert response.status_code == 200, response.text
        level = response.headers["X-Artstore-Cache"]
        seen[level] += 1
        return level, dict(response.json())

    def read_from(level: str) -> dict:
        # An invalidation reaches the module a moment after it is published: until then L1 still answers.
        return wait_for(lambda: (got := read())[0] == level and got[1], within=5, what=f"a read from {level}")

    drop_l2(cluster, file_id)  # whatever the upload left there: this read must be cold
    cold = read_from("L3")
    assert seen == {"L3": 1}
    assert cold == attr_json(_element_dir(cluster, stored), file_id)
    assert l2_entry(cluster, file_id) == cold  # the cold read filled L2 ...
    assert read() == ("L1", cold)  # ... and L1

    assert drop_l1(cluster, file_id) >= 1
    assert read_from("L2") == cold
    assert read() == ("L1", cold)

    drop_l2(cluster, file_id)  # Redis lost the entry (flushed, evicted or restarted)
    drop_l1(cluster, file_id)
    assert read_from("L3") == cold
    assert read() == ("L1", cold)

    after = cache_reads(cluster.query)
    counted = {level: after.get(level, 0) - before.get(level, 0) for level in ("L1", "L2", "L3", "L4")}
    assert counted == {level: seen[level] for level in ("L1", "L2", "L3", "L4")}


def test_a_catalog_row_older_than_its_ttl_is_revalidated_from_attr_json(cluster: Cluster):
    short = cluster.add_query(l3_ttl_seconds=2)
    stored = upload(cluster, b"revalidate me", description="the truth")
    file_id = stored["file_id"]
    schema = cluster.admin.schema
    # The catalog drifted from attr.json (as after a lost update) and was synced long ago.
    stale = {**stored, "description": "stale"}
    query(
        cluster.admin.database_url,
        f'UPDATE "{schema}".files SET description = $2, attributes = $3::jsonb, synced_at = $4 WHERE file_id = $1',
        uuid.UUID(file_id),
        "stale",
        json.dumps(stale),
        datetime.now(UTC) - timedelta(hours=1),
    )
    drop_l2(cluster, file_id)
    reader = cluster.query_client("READONLY", process=short)

    response = reader.get(f"/files/{file_id}")

    assert response.status_code == 200, response.text
    assert response.headers["X-Artstore-Cache"] == "L4"
    assert response.json()["description"] == "the truth"
    [row] = cluster.catalog(file_id)
    assert row["description"] == "the truth"
    assert json.loads(row["attributes"]) == attr_json(_element_dir(cluster, stored), file_id)
    assert datetime.now(UTC) - row["synced_at"] < timedelta(minutes=1)
    # The refreshed row is trusted again until its TTL passes.
    drop_l2(cluster, file_id)
    drop_l1(cluster, file_id)
    wait_for(
        lambda: reader.get(f"/files/{file_id}").headers["X-Artstore-Cache"] == "L3", within=5, what="fresh L3"
    )
    assert cache_reads(short).get("L4", 0) == 1


def test_a_patch_is_seen_by_two_query_modules_within_a_second(cluster: Cluster):
    second = cluster.queries[1] if len(cluster.queries) > 1 else cluster.add_query()
    stored = upload(cluster, b"patch me", description="before")
    file_id = stored["file_id"]
    readers = [cluster.query_client("READONLY"), cluster.query_client("READONLY", process=second)]
    for reader in readers:  # both now hold it in L1
        reader.get(f"/files/{file_id}")
        assert reader.get(f"/files/{file_id}").headers["X-Artstore-Cache"] == "L1"

    changed = cluster.client().patch(f"/files/{file_id}", json={"description": "after", "tags": ["new"]})
    assert changed.status_code == 200, changed.text
    patched_at = time.monotonic()

    for reader in readers:
        wait_for(
            lambda reader=reader: reader.get(f"/files/{file_id}").json()["description"] == "after",
            within=max(0.0, 1.0 - (time.monotonic() - patched_at)),
            every=0.05,
            what="the patched description through every query module",
        )
    assert all(reader.get(f"/files/{file_id}").json()["tags"] == ["new"] for reader in readers)


def test_a_deleted_file_is_gone_from_every_level(cluster: Cluster):
    stored = upload(cluster, b"delete me", temporary=True)
    file_id = stored["file_id"]
    reader = cluster.query_client("READONLY")
    reader.get(f"/files/{file_id}")
    assert reader.get(f"/files/{file_id}").headers["X-Artstore-Cache"] == "L1"

    assert cluster.client().delete(f"/files/{file_id}").status_code == 200

    gone = wait_for(
        lambda: (r := reader.get(f"/files/{file_id}")).status_code == 404 and r, within=5, what="404"
    )
    assert gone.headers["content-type"].startswith("application/problem+json")
    assert l2_entry(cluster, file_id) is None


def test_who_may_read_metadata(cluster: Cluster):
    stored = upload(cluster, b"who reads")
    for role in ("READONLY", "AUDITOR", "USER"):
        response = cluster.query_client(role).get(f"/files/{stored['file_id']}")
        assert response.status_code == 200, (role, response.text)
        assert response.json()["file_id"] == stored["file_id"]
    anonymous = cluster.query_client().get(f"/files/{stored['file_id']}", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    unknown = cluster.query_client().get(f"/files/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "NOT_FOUND"
    malformed = cluster.query_client().get("/files/not-a-uuid")
    assert malformed.status_code == 422
