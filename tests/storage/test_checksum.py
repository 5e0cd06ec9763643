import base64
import hashlib
import uuid

from tests.support.files import files_on_disk, put, tmp_entries
from tests.support.infra import query


def _index_rows(se, file_id):
    schema = "se_" + se.element_id.replace("-", "_")
    return query(se.database_url, f'SELECT file_id FROM "{schema}".file_index WHERE file_id = $1', file_id)


def test_wrong_client_checksum_is_422_and_leaves_nothing_behind(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    file_id = uuid.uuid4()
    response = put(
        client, b"the real content" * 1000, file_id=file_id, headers={"X-Checksum-SHA256": "ab" * 32}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "CHECKSUM_MISMATCH"
    assert files_on_disk(se.data_dir) == []
    assert tmp_entries(se.data_dir) == []
    assert _index_rows(se, file_id) == []
    assert client.get(f"/files/{file_id}").status_code == 404
    assert client.get("/info").json()["capacity"]["used"] == 0


def test_matching_checksums_in_either_header_are_accepted(shared_se, client_for):
    client = client_for(shared_se)
    content = b"checked"
    digest = hashlib.sha256(content)
    by_hex = put(client, content, headers={"X-Checksum-SHA256": digest.hexdigest().upper()})
    assert by_hex.status_code == 201, by_hex.text
    rfc9530 = f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    by_digest = put(client, content, headers={"Content-Digest": rfc9530})
    assert by_digest.status_code == 201, by_digest.text


def test_wrong_content_digest_is_422(shared_se, client_for):
    client = client_for(shared_se)
    wrong = f"sha-256=:{base64.b64encode(hashlib.sha256(b'other').digest()).decode()}:"
    response = put(client, b"content", headers={"Content-Digest": wrong})
    assert response.status_code == 422
    assert response.json()["code"] == "CHECKSUM_MISMATCH"
