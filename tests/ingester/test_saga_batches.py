"""Concurrent uploads share the admin's saga requests, and each is still stored and catalogued on its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from typing import Any

import httpx

from tests.support.cluster import Cluster, ClusterFactory
from tests.support.files import attr_json, shard

UPLOADS = 32


def _batch_metric(metrics: str, call: str, part: str) -> float:
    match = re.search(rf'^artstore_ingester_saga_batch_items_{part}{{call="{call}"}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def _upload_all(
    cluster: Cluster,
    contents: list[bytes],
    attributes: list[dict[str, Any]] | None = None,
    keys: list[str | None] | None = None,
) -> list[httpx.Response]:
    """All at once; `attributes[i]` and the Idempotency-Key `keys[i]`, when given, go with `contents[i]`."""
    headers = {"Authorization": f"Bearer {cluster.token()}", "X-Artstore-Filename": "batch.txt"}
    limits = httpx.Limits(max_connections=len(contents))
    described = attributes or [{}] * len(contents)
    idempotency = [{"Idempotency-Key": key} if key else {} for key in keys or [None] * len(contents)]
    async with httpx.AsyncClient(
        base_url=f"{cluster.ingester.url}/api/v1", headers=headers, limits=limits, timeout=120
    ) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/files", content=content, headers={"X-Artstore-Attributes": json.dumps(about), **key}
                )
                for content, about, key in zip(contents, described, idempotency, strict=True)
            )
        )


def test_concurrent_uploads_share_saga_requests_and_each_is_stored_whole(cluster: Cluster):
    held = len(cluster.unused_reservations())  # started ahead by earlier tests' uploads
    before = cluster.metrics()
    contents = [f"document number {i}\n".encode() * (i + 1) for i in range(UPLOADS)]

    responses = asyncio.run(_upload_all(cluster, contents))

    assert [r.status_code for r in responses] == [201] * UPLOADS, [
        r.text for r in responses if r.status_code != 201
    ]
    answers = [r.json() for r in responses]
    assert len({a["file_id"] for a in answers}) == UPLOADS
    for content, answer in zip(contents, answers, strict=True):
        assert answer["sha256"] == hashlib.sha256(content).hexdigest()
        element = next(
            se for se in cluster.elements.values() if se.element_id == answer["storage_element_id"]
        )
        assert (
            shard(element.data_dir, answer["file_id"]) / f"{answer['file_id']}.bin"
        ).read_bytes() == content
        assert attr_json(element.data_dir, answer["file_id"]) == answer
        [row] = cluster.catalog(answer["file_id"])
        assert (row["sha256"], row["size_bytes"]) == (answer["sha256"], len(content))
        [saga] = cluster.sagas(file_id=row["file_id"])
        assert (saga["status"], str(saga["id"])) == ("completed", answer["saga_id"])

    after = cluster.metrics()
    for call in ("start", "complete"):
        items = _batch_metric(after, call, "sum") - _batch_metric(before, call, "sum")
        requests = _batch_metric(after, call, "count") - _batch_metric(before, call, "count")
        if call == "complete":
            assert items == UPLOADS, f"{items} completions batched for {UPLOADS} uploads"
        else:
            # Each upload's saga was started in a batch: its own, or one started ahead (more may be held now).
            assert items >= UPLOADS - held, (
                f"{items} starts batched for {UPLOADS} uploads, {held} held before"
            )
        assert requests < UPLOADS, f"{call}: {UPLOADS} uploads at once took {requests} requests to the admin"


def _audited_request_ids(cluster: Cluster, file_id: str) -> dict[str, list[str | None]]:
    """The request id of each audit record about `file_id`, by action."""
    found: dict[str, list[str | None]] = {}
    with httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    ) as api:
        response = api.get("/audit", params={"subject": file_id, "limit": 100})
    assert response.status_code == 200, response.text
    for record in response.json()["items"]:
        if record["subject"] == file_id:
            found.setdefault(record["action"], []).append(record["request_id"])
    return found


def _upload_patch_delete(cluster: Cluster, tag: str) -> str:
    """One file through its three sagas, each request with an X-Request-ID of its own; the file's id."""
    client = cluster.client()
    headers = {
        "X-Artstore-Filename": "alone.txt",
        "X-Artstore-Attributes": '{"retention": {"policy": "temporary"}}',
        "X-Request-ID": f"{tag}-upload",
    }
    stored = client.post("/files", content=b"alone", headers=headers)
    assert stored.status_code == 201, stored.text
    file_id: str = stored.json()["file_id"]
    patched = client.patch(
        f"/files/{file_id}", json={"description": "changed"}, headers={"X-Request-ID": f"{tag}-patch"}
    )
    assert patched.status_code == 200, patched.text
    assert cluster.catalog(file_id)[0]["description"] == "changed"
    deleted = client.delete(f"/files/{file_id}", headers={"X-Request-ID": f"{tag}-delete"})
    assert deleted.status_code == 200, deleted.text
    assert cluster.catalog(file_id) == []
    return file_id


def test_with_batching_off_each_saga_goes_alone_and_uploads_patches_and_deletes_work(
    make_cluster: ClusterFactory,
):
    cluster = make_cluster(modes=("edit",), ingester_settings={"saga_batch_size": 1})

    file_id = _upload_patch_delete(cluster, "alone")

    assert [s["status"] for s in cluster.sagas(file_id=uuid.UUID(file_id))] == ["completed"] * 3
    metrics = cluster.metrics()
    assert _batch_metric(metrics, "start", "count") == _batch_metric(metrics, "complete", "count") == 0
    # Each saga call went for one client request: the admin's audit record names that request.
    assert _audited_request_ids(cluster, file_id) == {
        "file.uploaded": ["alone-upload"],
        "file.updated": ["alone-patch"],
        "file.deleted": ["alone-delete"],
    }


def test_audit_records_name_the_client_request_when_sagas_go_in_batches(make_cluster: ClusterFactory):
    cluster = make_cluster(modes=("edit",))

    file_id = _upload_patch_delete(cluster, "batched")

    assert _audited_request_ids(cluster, file_id) == {
        "file.uploaded": ["batched-upload"],
        "file.updated": ["batched-patch"],
        "file.deleted": ["batched-delete"],
    }


def test_an_upload_the_admin_refuses_does_not_fail_the_uploads_batched_with_it(cluster: Cluster):
    # Valid for the ingester, but its Idempotency-Key was used for another upload: the admin refuses its
    # saga start, an item among the others' starts and completions.
    [first] = asyncio.run(_upload_all(cluster, [b"first"], [{"description": "first"}], keys=["reused-1"]))
    assert first.status_code == 201, first.text
    stored = (sum(len(files) for files in cluster.stored_files().values()), cluster.catalog_count())
    contents = [f"neighbour {i}\n".encode() for i in range(UPLOADS)] + [b"first"]

    *answers, refused = asyncio.run(
        _upload_all(
            cluster,
            contents,
            [{}] * UPLOADS + [{"description": "another"}],
            keys=[None] * UPLOADS + ["reused-1"],
        )
    )

    assert [r.status_code for r in answers] == [201] * UPLOADS, [
        r.text for r in answers if r.status_code != 201
    ]
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert sum(len(files) for files in cluster.stored_files().values()) == stored[0] + UPLOADS
    assert cluster.catalog_count() == stored[1] + UPLOADS
    assert all(len(cluster.catalog(r.json()["file_id"])) == 1 for r in answers)
