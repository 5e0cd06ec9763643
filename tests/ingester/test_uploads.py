"""Uploads through the ingester: raw and multipart bodies of every size land on the element, in attr.json
and in the catalog alike, and the ingester's memory does not grow with the file."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.ingester._forms import multipart
from tests.support.cluster import Cluster
from tests.support.files import attr_json, generated, generated_sha256, shard

MiB = 1 << 20
SIZES = [0, 1, 10 * MiB]
ATTRIBUTES = {
    "description": "signed lease",
    "tags": ["legal", "2026"],
    "metadata": {"party": "acme", "pages": 12, "draft": False},
}


def _raw(client: httpx.Client, content: Any, filename: str, **attributes: Any) -> httpx.Response:
    return client.post(
        "/files",
        content=content,
        headers={
            "X-Artstore-Filename": filename,
            "Content-Type": "application/pdf",
            "X-Artstore-Attributes": json.dumps(attributes),
        },
    )


def _form(client: httpx.Client, chunks: Any, filename: str, **fields: str) -> httpx.Response:
    content_type, body = multipart(fields, filename=filename, chunks=chunks, content_type="application/pdf")
    return client.post("/files", content=body, headers={"Content-Type": content_type})


def _check_everywhere(
    cluster: Cluster, answer: dict[str, Any], *, size: int, sha256: str, filename: str
) -> None:
    """The element's bytes, its attr.json and the catalog row say the same thing about the file."""
    element = next(se for se in cluster.elements.values() if se.element_id == answer["storage_element_id"])
    file_id = answer["file_id"]
    data = shard(element.data_dir, file_id) / f"{file_id}.bin"
    digest = hashlib.sha256()
    with data.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    assert data.stat().st_size == size
    assert digest.hexdigest() == sha256

    on_disk = attr_json(element.data_dir, file_id)
    assert on_disk == answer
    assert on_disk["original_filename"] == filename
    assert on_disk["size_bytes"] == size
    assert on_disk["sha256"] == sha256
    assert on_disk["created_by"] == cluster.account("USER")["id"]

    [row] = cluster.catalog(file_id)
    assert row["storage_element_id"] == element.element_id
    assert row["original_filename"] == filename
    assert row["size_bytes"] == size
    assert row["sha256"] == sha256
    assert row["created_by"] == on_disk["created_by"]
    assert row["description"] == on_disk["description"]
    assert json.loads(row["tags"]) == on_disk["tags"]
    assert json.loads(row["metadata"]) == on_disk["metadata"]
    assert row["retention"] == on_disk["retention"]["policy"]


@pytest.mark.parametrize("size", SIZES)
def test_a_raw_upload_is_stored_whole(cluster: Cluster, size: int):
    payload = generated_sha256(size)
    response = _raw(cluster.client(), generated(size), f"lease-{size}.pdf", **ATTRIBUTES)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert response.headers["Location"] == f"/api/v1/files/{answer['file_id']}"
    assert answer["tags"] == ATTRIBUTES["tags"]
    assert answer["metadata"] == ATTRIBUTES["metadata"]
    assert answer["retention"] == {"policy": "permanent", "expires_at": None}
    _check_everywhere(cluster, answer, size=size, sha256=payload, filename=f"lease-{size}.pdf")


@pytest.mark.parametrize("size", SIZES)
def test_a_multipart_upload_is_stored_whole(cluster: Cluster, size: int):
    response = _form(
        cluster.client(),
        generated(size),
        f"scan-{size}.pdf",
        description="scanned",
        tags='["inbox"]',
        metadata='{"source": "scanner-3"}',
        retention="temporary",
        ttl_days="7",
    )

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["content_type"] == "application/pdf"
    assert answer["retention"]["policy"] == "temporary"
    expires = answer["retention"]["expires_at"]
    assert expires is not None
    assert expires > answer["created_at"]
    _check_everywhere(cluster, answer, size=size, sha256=generated_sha256(size), filename=f"scan-{size}.pdf")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_a_1_gib_upload_streams_through(cluster: Cluster, kind: str):
    size = 1024 * MiB
    client = cluster.client()
    if kind == "raw":
        response = _raw(client, generated(size), "big.bin", **ATTRIBUTES)
    else:
        response = _form(client, generated(size), "big.bin", description="big")
    assert response.status_code == 201, response.text
    _check_everywhere(cluster, response.json(), size=size, sha256=generated_sha256(size), filename="big.bin")


@pytest.mark.slow
def test_the_ingester_memory_stays_flat_during_a_2_gib_upload(cluster: Cluster):
    size = 2048 * MiB
    peak = cluster.ingester_rss()
    outcome: dict[str, Any] = {}

    def upload() -> None:
        outcome["response"] = _raw(cluster.client(), generated(size), "huge.bin")

    sender = threading.Thread(target=upload)
    sender.start()
    while sender.is_alive():
        peak = max(peak, cluster.ingester_rss())
        time.sleep(0.05)
    sender.join()

    assert outcome["response"].status_code == 201, outcome["response"].text
    assert outcome["response"].json()["size_bytes"] == size
    assert peak < 150 * MiB, f"ingester RSS peaked at {peak / MiB:.0f} MiB"


def test_temporary_files_go_to_edit_and_permanent_ones_to_rw(cluster: Cluster):
    client = cluster.client()
    temporary = _raw(client, b"draft", "draft.txt", retention={"policy": "temporary"})
    permanent = _raw(client, b"final", "final.txt")

    assert temporary.status_code == 201, temporary.text
    assert permanent.status_code == 201, permanent.text
    assert temporary.json()["storage_element_id"] == cluster.elements["edit"].element_id
    assert permanent.json()["storage_element_id"] == cluster.elements["rw"].element_id
    # A temporary file without ttl gets the ingester's default expiry, not "never".
    assert temporary.json()["retention"]["expires_at"] is not None


def test_a_client_checksum_is_checked_end_to_end(cluster: Cluster):
    client = cluster.client()
    before = cluster.catalog_count()
    good = client.post(
        "/files",
        content=b"checked bytes",
        headers={
            "X-Artstore-Filename": "ok.txt",
            "X-Checksum-SHA256": hashlib.sha256(b"checked bytes").hexdigest(),
        },
    )
    undone_before = _undone_for_checksum(cluster)
    wrong = client.post(
        "/files",
        content=b"checked bytes",
        headers={"X-Artstore-Filename": "bad.txt", "X-Checksum-SHA256": hashlib.sha256(b"other").hexdigest()},
    )

    assert good.status_code == 201, good.text
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["code"] == "CHECKSUM_MISMATCH"
    assert cluster.catalog_count() == before + 1
    # The refused upload's saga (its own, or one started ahead) is undone before the client hears of it,
    # and its error says whose upload it was.
    [undone] = [s for s in _undone_for_checksum(cluster) if s not in undone_before]
    assert undone["error"].endswith(f"(upload of 'bad.txt' by {good.json()['created_by']})"), undone["error"]


def _undone_for_checksum(cluster: Cluster) -> list[Any]:
    return [
        saga
        for saga in cluster.sagas(type="upload", status="compensated")
        if saga["error"].startswith("CHECKSUM_MISMATCH")
    ]
