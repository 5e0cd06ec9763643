import hashlib

from tests.support.files import attr_json, put


def test_upload_then_download_returns_identical_bytes(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    response = put(client, b"hello world", filename="greeting.txt")
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]
    download = client.get(f"/files/{file_id}")
    assert download.status_code == 200
    assert download.content == b"hello world"
    stored = attr_json(se.data_dir, file_id)
    assert stored["sha256"] == hashlib.sha256(b"hello world").hexdigest()
