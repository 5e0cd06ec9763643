import hashlib

import pytest

from tests.support.files import put

CONTENT = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable


@pytest.fixture(scope="module")
def stored(shared_se, admin_token):
    import httpx

    with httpx.Client(
        base_url=shared_se.url + "/api/v1", headers={"Authorization": f"Bearer {admin_token}"}
    ) as c:
        response = put(c, CONTENT, filename="bytes.bin")
        assert response.status_code == 201
        return response.json()


@pytest.fixture
def client(shared_se, client_for):
    return client_for(shared_se)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=-10", 1014, 1023),
        ("bytes=10-", 10, 1023),
        ("bytes=1000-5000", 1000, 1023),
    ],
)
def test_satisfiable_ranges_are_206_with_content_range(client, stored, header, start, end):
    response = client.get(f"/files/{stored['file_id']}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/1024"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == CONTENT[start : end + 1]


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_is_416_with_size(client, stored, header):
    response = client.get(f"/files/{stored['file_id']}", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1024"
    assert response.json()["code"] == "RANGE_NOT_SATISFIABLE"


@pytest.mark.parametrize("header", ["bytes=5-2", "items=0-1", "bytes=0-1,5-6", "garbage"])
def test_unparseable_or_multi_ranges_are_ignored_and_the_whole_file_sent(client, stored, header):
    response = client.get(f"/files/{stored['file_id']}", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == CONTENT


def test_etag_is_quoted_sha256_and_if_none_match_gives_304(client, stored):
    etag = f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    full = client.get(f"/files/{stored['file_id']}")
    assert full.headers["etag"] == etag
    assert full.headers["accept-ranges"] == "bytes"
    assert client.get(f"/files/{stored['file_id']}", headers={"If-None-Match": etag}).status_code == 304
    assert (
        client.get(f"/files/{stored['file_id']}", headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    )
    other = client.get(f"/files/{stored['file_id']}", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert other.content == CONTENT


def test_if_range_honours_range_only_for_the_current_etag(client, stored):
    etag = f'"{stored["sha256"]}"'
    matching = client.get(f"/files/{stored['file_id']}", headers={"Range": "bytes=0-3", "If-Range": etag})
    assert matching.status_code == 206
    assert matching.content == CONTENT[:4]
    stale = client.get(f"/files/{stored['file_id']}", headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == CONTENT


def test_head_gives_headers_and_no_body(client, stored):
    response = client.head(f"/files/{stored['file_id']}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "1024"
    assert response.headers["etag"] == f'"{stored["sha256"]}"'
    assert response.headers["content-disposition"].startswith('attachment; filename="bytes.bin"')
    ranged = client.head(f"/files/{stored['file_id']}", headers={"Range": "bytes=-10"})
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "10"
    assert ranged.content == b""
