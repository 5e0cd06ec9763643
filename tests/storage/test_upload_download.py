import hashlib
import uuid

import pytest

from tests.support.files import attr_json, generated, generated_sha256, put

DESIGN_FIELDS = {
    "schema_version", "file_id", "original_filename", "content_type", "size_bytes", "sha256",
    "storage_element_id", "created_at", "updated_at", "created_by", "description", "tags", "metadata",
    "retention", "status", "saga_id",
}  # fmt: skip


@pytest.mark.parametrize("size", [0, 1, 10 * 1024 * 1024], ids=["0B", "1B", "10MiB"])
def test_upload_answers_201_and_download_returns_identical_bytes(shared_se, client_for, issuer, size):
    client = client_for(shared_se, issuer.token(sub="uploader-42"))
    content = b"".join(generated(size))
    response = put(
        client,
        content,
        filename="report 2026.pdf",
        headers={"Content-Type": "application/pdf"},
        attributes={
            "description": "annual report",
            "tags": ["finance", "2026"],
            "metadata": {"department": "accounting", "pages": 12},
            "retention": {"policy": "temporary", "expires_at": "2030-01-01T00:00:00Z"},
        },
    )
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]
    assert response.headers["location"] == f"/api/v1/files/{file_id}"

    download = client.get(f"/files/{file_id}")
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "application/pdf"

    stored = attr_json(shared_se.data_dir, file_id)
    assert set(stored) == DESIGN_FIELDS
    assert stored["schema_version"] == 1
    assert stored["size_bytes"] == size
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored["created_by"] == "uploader-42"
    assert stored["original_filename"] == "report 2026.pdf"
    assert stored["storage_element_id"] == shared_se.element_id
    assert stored["tags"] == ["finance", "2026"]
    assert stored["metadata"] == {"department": "accounting", "pages": 12}
    assert stored["retention"]["policy"] == "temporary"
    assert stored["status"] == "active"
    assert response.json() == stored


@pytest.mark.slow
def test_one_gibibyte_streamed_from_a_generator(shared_se, client_for):
    client = client_for(shared_se)
    size = 1 << 30
    response = put(client, generated(size, seed=1), filename="big.bin")
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]
    assert response.json()["size_bytes"] == size
    expected = generated_sha256(size, seed=1)
    assert response.json()["sha256"] == expected

    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", f"/files/{file_id}") as download:
        assert download.status_code == 200
        for block in download.iter_bytes():
            digest.update(block)
            received += len(block)
    assert received == size
    assert digest.hexdigest() == expected
    assert attr_json(shared_se.data_dir, file_id)["sha256"] == expected


def test_non_ascii_filename_is_percent_decoded_and_served_with_rfc6266(shared_se, client_for):
    client = client_for(shared_se)
    response = put(client, b"x", filename="%D0%BE%D1%82%D1%87%D1%91%D1%82.txt")
    assert response.status_code == 201, response.text
    assert response.json()["original_filename"] == "отчёт.txt"
    download = client.get(f"/files/{response.json()['file_id']}")
    assert "filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.txt" in download.headers["content-disposition"]


def test_unknown_file_is_404_problem_json(shared_se, client_for):
    response = client_for(shared_se).get(f"/files/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "NOT_FOUND"
    assert response.json()["request_id"]
