"""Saga details a user notices: long uploads outlive the saga timeout, refused changes leave the catalog
as attr.json says, and catalog changes invalidate the query modules' caches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import redis

from artstore_common.cache import invalidation_channel, metadata_key
from tests.support.cluster import Cluster, ClusterFactory, wait_for
from tests.support.files import files_on_disk


def _slow_body(seconds: float, pieces: int = 12) -> Iterator[bytes]:
    for _ in range(pieces):
        time.sleep(seconds / pieces)
        yield b"s" * 4096


def _upload_outliving_the_saga_timeout(
    make_cluster: ClusterFactory, heartbeat_seconds: float
) -> tuple[Cluster, httpx.Response]:
    """A 6 s upload to a cluster whose admin undoes a saga left without a heartbeat for 2 s."""
    cluster = make_cluster(
        modes=("rw",),
        admin_settings={"saga_timeout_seconds": 2, "saga_recovery_seconds": 0.5},
        ingester_settings={"saga_heartbeat_seconds": heartbeat_seconds},
    )
    response = cluster.client().post(
        "/files", content=_slow_body(6), headers={"X-Artstore-Filename": "slow.bin"}
    )
    return cluster, response


def test_an_upload_longer_than_the_saga_timeout_is_kept_alive(make_cluster: ClusterFactory):
    cluster, response = _upload_outliving_the_saga_timeout(make_cluster, heartbeat_seconds=0.5)

    assert response.status_code == 201, response.text
    assert len(cluster.catalog(response.json()["file_id"])) == 1
    [saga] = cluster.sagas_in_use(type="upload")
    assert saga["status"] == "completed"


def test_an_upload_whose_saga_was_undone_meanwhile_is_503_and_stores_nothing(make_cluster: ClusterFactory):
    # No heartbeat within the saga timeout: the admin takes the upload for abandoned and undoes its saga
    # while the body is still arriving. For the client that is a server-side failure it can retry.
    cluster, response = _upload_outliving_the_saga_timeout(make_cluster, heartbeat_seconds=60)

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "SAGA_COMPENSATED"
    assert "send the file again" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    [saga] = cluster.sagas_in_use(type="upload")
    assert saga["status"] == "compensated"
    assert cluster.catalog(str(saga["file_id"])) == []
    wait_for(
        lambda: files_on_disk(cluster.elements["rw"].data_dir) == [], within=10, what="nothing on the element"
    )


def test_a_patch_the_element_refuses_leaves_file_and_catalog_as_they_were(make_cluster: ClusterFactory):
    cluster = make_cluster(modes=("rw",))
    stored = (
        cluster.client()
        .post("/files", content=b"sealed soon", headers={"X-Artstore-Filename": "s.txt"})
        .json()
    )
    with httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    ) as api:
        sealed = api.post(
            f"/storage-elements/{stored['storage_element_id']}/mode", json={"target_mode": "ro"}
        )
    assert sealed.status_code == 200, sealed.text

    response = cluster.client().patch(f"/files/{stored['file_id']}", json={"description": "too late"})

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "MODE_NOT_ALLOWED"
    [row] = cluster.catalog(stored["file_id"])
    assert row["description"] == ""
    assert json.loads(row["attributes"]) == stored
    [saga] = cluster.sagas(type="update")
    assert saga["status"] == "compensated"


def test_a_patch_or_delete_invalidates_the_metadata_cache(cluster: Cluster):
    client = cluster.client()
    stored = client.post(
        "/files",
        content=b"cached",
        headers={
            "X-Artstore-Filename": "c.txt",
            "X-Artstore-Attributes": '{"retention": {"policy": "temporary"}}',
        },
    ).json()
    file_id = stored["file_id"]
    url = cluster.admin.env["ARTSTORE_ADMIN_REDIS_URL"]
    with redis.Redis.from_url(url, decode_responses=True) as plain:
        cached = metadata_key(cluster.namespace, file_id)
        plain.set(cached, json.dumps(stored))
        listener = plain.pubsub()
        listener.subscribe(invalidation_channel(cluster.namespace))
        listener.get_message(timeout=2)  # the subscription confirmation

        assert client.patch(f"/files/{file_id}", json={"tags": ["new"]}).status_code == 200
        first = wait_for(
            lambda: listener.get_message(timeout=1), within=5, what="an invalidation after PATCH"
        )
        assert plain.get(cached) is None
        plain.set(cached, json.dumps(stored))
        assert client.delete(f"/files/{file_id}").status_code == 200
        second = wait_for(
            lambda: listener.get_message(timeout=1), within=5, what="an invalidation after DELETE"
        )
        listener.close()
        assert plain.get(cached) is None

    assert json.loads(first["data"]) == {"file_id": file_id, "event": "updated"}
    assert json.loads(second["data"]) == {"file_id": file_id, "event": "deleted"}
