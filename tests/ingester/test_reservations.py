"""Upload sagas started ahead: an upload without an Idempotency-Key takes one instead of waiting for the
admin to start its own; one left unused is released and leaves nothing behind, and none outlives the
time the admin's recovery loop allows an idle saga."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime

import httpx

from tests.support.cluster import Cluster, ClusterFactory, wait_for
from tests.support.files import shard


def _upload(cluster: Cluster, content: bytes, **headers: str) -> httpx.Response:
    return cluster.client().post(
        "/files", content=content, headers={"X-Artstore-Filename": "a.txt", **headers}
    )


def _stored_whole(cluster: Cluster, answer: dict[str, str], content: bytes) -> None:
    """The element holds the bytes and the catalog row names the saga that wrote them."""
    [element] = [se for se in cluster.elements.values() if se.element_id == answer["storage_element_id"]]
    file_id = answer["file_id"]
    assert (shard(element.data_dir, file_id) / f"{file_id}.bin").read_bytes() == content
    [row] = cluster.catalog(file_id)
    assert (row["sha256"], str(row["saga_id"])) == (hashlib.sha256(content).hexdigest(), answer["saga_id"])


def _stored_file_ids(cluster: Cluster) -> list[str]:
    return sorted(path.stem for paths in cluster.stored_files().values() for path in paths)


def test_an_upload_takes_a_saga_started_before_it_arrived(make_cluster: ClusterFactory):
    cluster = make_cluster(modes=("rw",))
    assert _upload(cluster, b"the first file\n").status_code == 201
    [reserved] = wait_for(
        cluster.unused_reservations, within=10, what="a saga reserved after the first upload"
    )
    assert reserved["storage_element_id"] == cluster.elements["rw"].element_id

    sent_at = datetime.now(UTC)
    second = _upload(cluster, b"the second file\n")

    assert second.status_code == 201, second.text
    answer = second.json()
    assert (answer["saga_id"], answer["file_id"]) == (str(reserved["id"]), str(reserved["file_id"]))
    [saga] = cluster.sagas(id=reserved["id"])
    assert saga["status"] == "completed"
    assert saga["created_at"] < sent_at  # the client did not wait for this saga's start
    _stored_whole(cluster, answer, b"the second file\n")

    # A keyed upload starts its own saga, carrying the key, so that a retry finds the first result.
    [held] = wait_for(cluster.unused_reservations, within=10, what="a saga reserved again")
    keyed = _upload(cluster, b"the keyed file\n", **{"Idempotency-Key": "reservations-test-1"})
    assert keyed.status_code == 201, keyed.text
    [keyed_saga] = cluster.sagas(id=uuid.UUID(keyed.json()["saga_id"]))
    assert keyed_saga["idempotency_key"] is not None
    assert keyed_saga["id"] != held["id"]
    assert [saga["id"] for saga in cluster.unused_reservations()] == [held["id"]]
    _stored_whole(cluster, keyed.json(), b"the keyed file\n")


def test_a_reservation_left_unused_is_released_and_leaves_nothing(make_cluster: ClusterFactory):
    cluster = make_cluster(modes=("rw",), ingester_settings={"saga_reservation_seconds": 1})
    stored = _upload(cluster, b"the only file\n")
    assert stored.status_code == 201, stored.text
    [reserved] = wait_for(cluster.unused_reservations, within=10, what="a saga reserved after the upload")

    released = wait_for(
        lambda: [s for s in cluster.sagas(id=reserved["id"]) if s["status"] == "compensated"],
        within=15,
        what="the unused reservation released",
    )

    assert "released unused" in released[0]["error"]
    assert cluster.sagas(status="started") == []  # an idle ingester holds nothing
    assert cluster.catalog_count() == 1
    assert _stored_file_ids(cluster) == [stored.json()["file_id"]]


def test_a_reservation_is_not_kept_near_the_admins_recovery_timeout(make_cluster: ClusterFactory):
    """With the admin undoing sagas idle for 2 s, a reservation is kept 0.5 s, however long the ingester's
    own setting allows. Used later, the recovery loop could have undone it while the upload ran, and the file
    would be left on the element with no saga to answer for it."""
    cluster = make_cluster(
        modes=("rw",),
        admin_settings={"saga_timeout_seconds": 2, "saga_recovery_seconds": 0.5},
        ingester_settings={"saga_reservation_seconds": 60},
    )
    first = _upload(cluster, b"before the pause\n")
    assert first.status_code == 201, first.text
    [reserved] = wait_for(cluster.unused_reservations, within=10, what="a saga reserved after the upload")
    wait_for(
        lambda: cluster.sagas(id=reserved["id"])[0]["status"] == "compensated",
        within=15,
        what="the reservation released or undone",
    )
    time.sleep(1)  # past the admin's timeout: a reservation still held now would be one undone under us

    second = _upload(cluster, b"after the pause\n")

    assert second.status_code == 201, second.text
    assert second.json()["saga_id"] != str(reserved["id"])
    _stored_whole(cluster, second.json(), b"after the pause\n")
    assert sorted([first.json()["file_id"], second.json()["file_id"]]) == _stored_file_ids(cluster)


async def _upload_at_once(cluster: Cluster, contents: list[bytes]) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {cluster.token()}", "X-Artstore-Filename": "many.txt"}
    async with httpx.AsyncClient(
        base_url=f"{cluster.ingester.url}/api/v1", headers=headers, timeout=60
    ) as client:
        return await asyncio.gather(*(client.post("/files", content=content) for content in contents))


def test_stopping_the_ingester_releases_its_reservations(make_cluster: ClusterFactory):
    cluster = make_cluster(modes=("rw",))
    contents = [f"file {i}\n".encode() * (i + 1) for i in range(8)]
    answers = asyncio.run(_upload_at_once(cluster, contents))
    assert [a.status_code for a in answers] == [201] * len(contents)
    held = wait_for(cluster.unused_reservations, within=10, what="sagas reserved after the uploads")

    cluster.ingester.stop()

    for saga in held:
        [after] = cluster.sagas(id=saga["id"])
        assert (after["status"], "released unused" in after["error"]) == ("compensated", True)
    assert cluster.sagas(status="started") == []
    assert cluster.catalog_count() == len(contents)
    assert _stored_file_ids(cluster) == sorted(a.json()["file_id"] for a in answers)


def test_the_reservations_of_a_killed_ingester_are_undone_by_the_admins_recovery(
    make_cluster: ClusterFactory,
):
    # The admin's timeout lets the ingester keep a reservation 2 s, long enough to kill it while it holds one.
    cluster = make_cluster(
        modes=("rw",), admin_settings={"saga_timeout_seconds": 8, "saga_recovery_seconds": 0.5}
    )
    stored = _upload(cluster, b"kept\n")
    assert stored.status_code == 201, stored.text
    held = wait_for(
        cluster.unused_reservations, within=10, what="a saga reserved after the upload", every=0.05
    )

    cluster.ingester.kill()

    for saga in held:
        undone = wait_for(
            lambda saga=saga: [s for s in cluster.sagas(id=saga["id"]) if s["status"] == "compensated"],
            within=30,
            what="the reservation undone by the recovery loop",
        )
        assert "not completed within" in undone[0]["error"]
    assert cluster.sagas(status="started") == []
    assert cluster.catalog_count() == 1
    assert _stored_file_ids(cluster) == [stored.json()["file_id"]]
