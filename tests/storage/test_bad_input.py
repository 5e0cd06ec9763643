"""Bad input gets a clear 4xx and leaves stored data untouched."""

import json
import uuid

import pytest

from tests.support.files import attr_json, files_on_disk, put, tmp_entries

BAD_UPLOADS = {
    "filename with ../": ({"X-Artstore-Filename": "../../etc/passwd"}, 400),
    "filename with a slash": ({"X-Artstore-Filename": "dir/name.txt"}, 400),
    "filename with NUL": ({"X-Artstore-Filename": "evil%00.txt"}, 400),
    "filename with a newline": ({"X-Artstore-Filename": "a%0Ab.txt"}, 400),
    "filename of 10 KB": ({"X-Artstore-Filename": "a" * 10_000}, 400),
    "filename of dots": ({"X-Artstore-Filename": ".."}, 400),
    "empty filename": ({"X-Artstore-Filename": ""}, 400),
    "no filename": ({"X-Artstore-Filename": None}, 400),
    "non-UTF-8 filename bytes": ({"X-Artstore-Filename": b"caf\xe9\xff.txt"}, 400),
    "percent-encoded non-UTF-8": ({"X-Artstore-Filename": "caf%E9.txt"}, 400),
    "broken attributes JSON": ({"X-Artstore-Attributes": '{"tags": ["a"'}, 400),
    "oversized attributes JSON": ({"X-Artstore-Attributes": json.dumps({"description": "x" * 40_000})}, 400),
    "attributes not an object": ({"X-Artstore-Attributes": "[1, 2]"}, 422),
    "tags not a list of strings": ({"X-Artstore-Attributes": '{"tags": [1, {"a": 2}]}'}, 422),
    "nested metadata": ({"X-Artstore-Attributes": '{"metadata": {"a": {"b": 1}}}'}, 422),
    "unknown attribute": ({"X-Artstore-Attributes": '{"owner": "root"}'}, 422),
    "unknown retention": ({"X-Artstore-Attributes": '{"retention": {"policy": "forever"}}'}, 422),
    "malformed checksum": ({"X-Checksum-SHA256": "not-hex"}, 400),
    "malformed Content-Digest": ({"Content-Digest": "sha-256=abc"}, 400),
    "malformed saga id": ({"X-Saga-Id": "a b;c"}, 400),
    "malformed content type": ({"Content-Type": "not a media type"}, 400),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_upload_is_a_clear_4xx_with_nothing_stored(make_se_once, client_for, case):
    se = make_se_once
    client = client_for(se)
    before = files_on_disk(se.data_dir)
    headers, status = BAD_UPLOADS[case]
    sent = {"X-Artstore-Filename": "ok.txt", "Content-Type": "text/plain"}
    for name, value in headers.items():
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    response = client.put(f"/files/{uuid.uuid4()}", content=b"payload", headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"]
    assert problem["status"] == status
    assert files_on_disk(se.data_dir) == before
    assert tmp_entries(se.data_dir) == []


@pytest.fixture(scope="module")
def make_se_once(shared_se):
    return shared_se


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "..", "%2e%2e%2fetc", "1234", uuid.uuid4().hex])
def test_an_id_that_is_not_a_uuid_is_400(shared_se, client_for, bad_id):
    client = client_for(shared_se)
    before = files_on_disk(shared_se.data_dir)
    for response in (
        client.put(f"/files/{bad_id}", content=b"x", headers={"X-Artstore-Filename": "a"}),
        client.get(f"/files/{bad_id}"),
        client.get(f"/files/{bad_id}/attributes"),
        client.delete(f"/files/{bad_id}"),
    ):
        assert response.status_code in {400, 404}, response.text
        if response.status_code == 400:
            assert "UUID" in response.json()["detail"]
    assert files_on_disk(shared_se.data_dir) == before


def test_put_to_an_existing_id_is_409_and_keeps_the_original(shared_se, client_for):
    client = client_for(shared_se)
    file_id = uuid.uuid4()
    assert put(client, b"original", file_id=file_id).status_code == 201
    original = attr_json(shared_se.data_dir, str(file_id))
    response = put(client, b"replacement", file_id=file_id, filename="other.txt")
    assert response.status_code == 409
    assert response.json()["code"] == "ALREADY_EXISTS"
    assert client.get(f"/files/{file_id}").content == b"original"
    assert attr_json(shared_se.data_dir, str(file_id)) == original


def test_a_put_to_an_existing_id_is_409_before_its_size_is_weighed_and_logs_no_intent(make_se, client_for):
    # The check that the id is free runs with the WAL intent (a refused create must never get one: its undo
    # would delete the file that is there), and before capacity is reserved, so the answer is 409, not 507.
    se = make_se("rw", quota_bytes=64 * 1024)
    client = client_for(se)
    file_id = uuid.uuid4()
    assert put(client, b"original", file_id=file_id).status_code == 201
    too_big = put(client, b"x" * (128 * 1024), file_id=file_id)
    assert too_big.status_code == 409
    assert too_big.json()["code"] == "ALREADY_EXISTS"
    assert put(client, b"x" * (128 * 1024)).status_code == 507  # a new id of that size does not fit
    assert client.get(f"/files/{file_id}").content == b"original"
    se.stop()
    records = [
        json.loads(line)
        for segment in sorted((se.data_dir / "wal").iterdir())
        for line in segment.read_bytes().rstrip(b"\0").splitlines()
    ]
    intents = [r for r in records if r["type"] == "begin" and r.get("file_id") == str(file_id)]
    assert len(intents) == 1, intents  # the original's; the refused PUT logged nothing
    se.start()
    assert client_for(se).get(f"/files/{file_id}").content == b"original"  # recovery undid nothing


def test_body_over_the_size_limit_is_413_with_nothing_stored(make_se, client_for):
    se = make_se("rw", max_file_size=1000)
    client = client_for(se)
    declared = put(client, b"x" * 1001)
    assert declared.status_code == 413
    assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"
    streamed = put(client, (b"x" * 100 for _ in range(20)))  # chunked: the size is known only while reading
    assert streamed.status_code == 413
    assert files_on_disk(se.data_dir) == []
    assert tmp_entries(se.data_dir) == []
    assert client.get("/info").json()["capacity"]["reserved"] == 0
    assert put(client, b"x" * 1000).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        b'{"tags": ["a"',
        b'{"tags": "not-a-list"}',
        b'{"metadata": {"x": [1]}}',
        b'{"status": "deleted"}',
        b"[]",
    ],
)
def test_bad_patch_is_422_and_changes_nothing(shared_se, client_for, body):
    client = client_for(shared_se)
    file_id = put(client, b"patch me").json()["file_id"]
    before = attr_json(shared_se.data_dir, file_id)
    response = client.patch(
        f"/files/{file_id}/attributes", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert attr_json(shared_se.data_dir, file_id) == before


def test_patch_that_would_exceed_64_kib_is_refused(shared_se, client_for):
    client = client_for(shared_se)
    file_id = put(client, b"patch me").json()["file_id"]
    before = attr_json(shared_se.data_dir, file_id)
    metadata = {f"key{i}": "v" * 1000 for i in range(90)}
    response = client.patch(f"/files/{file_id}/attributes", json={"metadata": metadata})
    assert response.status_code == 422
    assert "64 KiB" in response.json()["detail"]
    assert attr_json(shared_se.data_dir, file_id) == before
