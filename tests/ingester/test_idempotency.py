"""Idempotency-Key on uploads: a retry returns the first result and stores one copy; the same key for
another upload is refused (draft-ietf-httpapi-idempotency-key-header: 422 for a different request)."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.ingester._forms import multipart
from tests.support.cluster import Cluster


def _upload(client: httpx.Client, key: str, content: bytes, filename: str = "invoice.pdf") -> httpx.Response:
    return client.post(
        "/files", content=content, headers={"X-Artstore-Filename": filename, "Idempotency-Key": key}
    )


def _bins(cluster: Cluster) -> int:
    return sum(len(files) for files in cluster.stored_files().values())


def test_a_retry_returns_the_first_result_and_stores_one_copy(cluster: Cluster):
    client = cluster.client()
    key = f"invoice-{uuid.uuid4()}"
    before = (_bins(cluster), cluster.catalog_count())

    first = _upload(client, key, b"invoice 2026-001")
    again = _upload(client, key, b"invoice 2026-001")

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (_bins(cluster), cluster.catalog_count()) == (before[0] + 1, before[1] + 1)


def test_a_keyed_upload_with_attributes_near_their_limits_is_stored_once_and_replayed(cluster: Cluster):
    # About 17 KiB of attributes, each within its own limit: as welcome with a key as without one.
    bulky = {
        "description": "d" * 4000,
        "tags": [f"{i:03d}" + "t" * 125 for i in range(100)],
        "metadata": {f"key-{i}": "v" * 20 for i in range(50)},
    }
    headers = {"X-Artstore-Filename": "bulky.pdf", "X-Artstore-Attributes": json.dumps(bulky)}
    client = cluster.client()
    key = f"bulky-{uuid.uuid4()}"
    before = (_bins(cluster), cluster.catalog_count())

    first = client.post("/files", content=b"bulky", headers={**headers, "Idempotency-Key": key})
    again = client.post("/files", content=b"bulky", headers={**headers, "Idempotency-Key": key})
    other = client.post(
        "/files",
        content=b"bulky",
        headers={
            **headers,
            "Idempotency-Key": key,
            "X-Artstore-Attributes": json.dumps(bulky | {"tags": []}),
        },
    )

    assert first.status_code == 201, first.text
    assert (first.json()["description"], first.json()["tags"]) == (bulky["description"], bulky["tags"])
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert other.status_code == 422, other.text  # the same key for other attributes is another request
    assert other.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert (_bins(cluster), cluster.catalog_count()) == (before[0] + 1, before[1] + 1)
    # The saga log says what was uploaded and by whom; the attributes themselves are in the catalog.
    [saga] = cluster.sagas(id=uuid.UUID(first.json()["saga_id"]))
    recorded = json.loads(saga["payload"])
    assert (recorded["filename"], recorded["requested_by"]) == ("bulky.pdf", first.json()["created_by"])
    assert len(recorded["request_sha256"]) == 64


def test_a_multipart_retry_with_another_boundary_is_the_same_request(cluster: Cluster):
    client = cluster.client()
    key = f"scan-{uuid.uuid4()}"
    answers = []
    for _ in range(2):
        content_type, body = multipart(
            {"description": "scan"}, filename="scan.pdf", chunks=[b"%PDF-1.7 scan"]
        )
        answers.append(
            client.post(
                "/files", content=body, headers={"Content-Type": content_type, "Idempotency-Key": key}
            )
        )

    assert [a.status_code for a in answers] == [201, 201], answers[-1].text
    assert answers[0].json()["file_id"] == answers[1].json()["file_id"]


def test_the_same_key_with_other_content_is_refused_and_stores_nothing(cluster: Cluster):
    client = cluster.client()
    key = f"report-{uuid.uuid4()}"
    first = _upload(client, key, b"quarterly report v1")
    before = (_bins(cluster), cluster.catalog_count())

    other_bytes = _upload(client, key, b"quarterly report v2")
    other_name = _upload(client, key, b"quarterly report v1", filename="renamed.pdf")

    assert first.status_code == 201, first.text
    for refused in (other_bytes, other_name):
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
        assert "new key" in refused.json()["detail"]
    assert (_bins(cluster), cluster.catalog_count()) == before


def test_keys_belong_to_their_account(cluster: Cluster):
    key = f"shared-{uuid.uuid4()}"
    mine = _upload(cluster.client("USER"), key, b"mine")
    theirs = _upload(cluster.client("ADMIN"), key, b"theirs")

    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 201, theirs.text
    assert mine.json()["file_id"] != theirs.json()["file_id"]


def test_a_key_whose_upload_failed_can_be_used_again(cluster: Cluster):
    client = cluster.client()
    key = f"retry-{uuid.uuid4()}"
    wrong_checksum = client.post(
        "/files",
        content=b"payload",
        headers={"X-Artstore-Filename": "p.bin", "Idempotency-Key": key, "X-Checksum-SHA256": "0" * 64},
    )
    retry = _upload(client, key, b"payload", filename="p.bin")

    assert wrong_checksum.status_code == 422, wrong_checksum.text
    # The retry differs (no checksum header), so it is a new request under a released key.
    assert retry.status_code == 201, retry.text
