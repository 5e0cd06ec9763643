"""Bad uploads get a clear 4xx and leave nothing stored: no file on any element, no catalog row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ingester._forms import multipart
from tests.support.cluster import Cluster, ClusterFactory
from tests.support.files import generated, tmp_entries

MiB = 1 << 20


def _nothing_stored(cluster: Cluster, before: tuple[int, int]) -> None:
    assert _state(cluster) == before
    for se in cluster.elements.values():
        assert tmp_entries(se.data_dir) == []


def _state(cluster: Cluster) -> tuple[int, int]:
    return sum(len(files) for files in cluster.stored_files().values()), cluster.catalog_count()


def _form(client: httpx.Client, fields: dict[str, str], **options: Any) -> httpx.Response:
    options.setdefault("filename", "f.txt")
    options.setdefault("chunks", [b"form file"])
    content_type, body = multipart(fields, **options)
    return client.post("/files", content=body, headers={"Content-Type": content_type})


def _raw(client: httpx.Client, filename: str = "f.txt", **headers: str) -> httpx.Response:
    return client.post("/files", content=b"raw file", headers={"X-Artstore-Filename": filename, **headers})


FORM_CASES = [
    pytest.param({}, {"file_field": "document"}, 400, "part named 'file'", id="no-file-part"),
    pytest.param({}, {"trailing": [("file", "second")]}, 400, "more than one file", id="two-file-parts"),
    pytest.param(
        {}, {"trailing": [("description", "late")]}, 400, "before the 'file' part", id="field-after-file"
    ),
    pytest.param({}, {"filename": None}, 400, "no filename", id="file-part-without-filename"),
    pytest.param({"retention": "forever"}, {}, 422, "retention", id="unknown-retention"),
    pytest.param({"tags": '"just-a-string"'}, {}, 422, "tags", id="tags-not-a-list"),
    pytest.param({"tags": "[1, 2]"}, {}, 422, "tags", id="tags-not-strings"),
    pytest.param({"tags": "[broken"}, {}, 400, "not valid JSON", id="tags-broken-json"),
    pytest.param({"metadata": '{"a": {"b": 1}}'}, {}, 422, "metadata", id="metadata-nested"),
    pytest.param({"metadata": "[1]"}, {}, 422, "metadata", id="metadata-not-an-object"),
    pytest.param({"ttl_days": "3"}, {}, 422, "ttl_days", id="ttl-without-temporary"),
    pytest.param({"colour": "red"}, {}, 400, "unknown form field", id="unknown-field"),
    pytest.param({}, {"filename": "../etc/passwd"}, 400, "path separators", id="filename-path"),
    pytest.param({}, {"filename": "a\\\\b.txt"}, 400, "path separators", id="filename-backslash"),
]


@pytest.mark.parametrize(("fields", "options", "status", "says"), FORM_CASES)
def test_a_bad_form_is_refused_and_stores_nothing(
    cluster: Cluster, fields: dict[str, str], options: dict[str, Any], status: int, says: str
):
    before = _state(cluster)
    response = _form(cluster.client(), fields, **options)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    _nothing_stored(cluster, before)


RAW_CASES = [
    pytest.param({"filename": "dir%2Ffile.txt"}, 400, "path separators", id="filename-slash"),
    pytest.param({"filename": "bell%07.txt"}, 400, "control characters", id="filename-control"),
    pytest.param({"filename": ".."}, 400, "relative path", id="filename-dotdot"),
    pytest.param({"X-Artstore-Attributes": "{broken"}, 400, "not valid JSON", id="attributes-broken-json"),
    pytest.param(
        {"X-Artstore-Attributes": json.dumps({"retention": {"policy": "forever"}})},
        422,
        "retention",
        id="retention",
    ),
    pytest.param({"X-Artstore-Attributes": json.dumps({"tags": "x"})}, 422, "tags", id="tags-not-a-list"),
    pytest.param(
        {"X-Artstore-Attributes": json.dumps({"metadata": {"a": [1]}})}, 422, "metadata", id="metadata"
    ),
    pytest.param(
        {"X-Artstore-Attributes": json.dumps({"owner": "me"})}, 422, "owner", id="unknown-attribute"
    ),
    pytest.param({"X-Checksum-SHA256": "xyz"}, 400, "64 hexadecimal", id="checksum-malformed"),
]


@pytest.mark.parametrize(("headers", "status", "says"), RAW_CASES)
def test_a_bad_raw_upload_is_refused_and_stores_nothing(
    cluster: Cluster, headers: dict[str, str], status: int, says: str
):
    before = _state(cluster)
    headers = dict(headers)
    response = _raw(cluster.client(), headers.pop("filename", "f.txt"), **headers)

    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    _nothing_stored(cluster, before)


def test_a_raw_upload_needs_a_filename(cluster: Cluster):
    response = cluster.client().post("/files", content=b"anonymous")
    assert response.status_code == 400
    assert "X-Artstore-Filename" in response.json()["detail"]


def test_a_malformed_multipart_body_is_refused(cluster: Cluster):
    before = _state(cluster)
    response = cluster.client().post(
        "/files",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nno closing boundary',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400, response.text
    assert "closing boundary" in response.json()["detail"]
    _nothing_stored(cluster, before)


@pytest.mark.parametrize("role", ["READONLY", "AUDITOR"])
def test_readers_cannot_upload(cluster: Cluster, role: str):
    before = _state(cluster)
    response = _raw(cluster.client(role))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "INSUFFICIENT_SCOPE"
    _nothing_stored(cluster, before)


def test_no_token_or_a_forged_one_is_401(cluster: Cluster):
    url = f"{cluster.ingester.url}/api/v1/files"
    anonymous = httpx.post(url, content=b"x", headers={"X-Artstore-Filename": "x"})
    token = cluster.token()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    tampered = httpx.post(
        url, content=b"x", headers={"X-Artstore-Filename": "x", "Authorization": f"Bearer {forged}"}
    )
    assert anonymous.status_code == 401
    assert tampered.status_code == 401


@pytest.fixture(scope="module")
def limited(make_cluster_module: ClusterFactory) -> Cluster:
    return make_cluster_module(
        # One request a second refills the budget: far slower than the test sends, however busy the machine.
        ingester_settings={"max_upload_bytes": MiB, "rate_limit_per_minute": 60, "rate_limit_burst": 40}
    )


def _chunks(size: int) -> Iterator[bytes]:
    return generated(size, chunk=64 * 1024)


@pytest.mark.parametrize("kind", ["declared", "chunked", "multipart"])
def test_a_body_over_the_maximum_is_413_and_stores_nothing(limited: Cluster, kind: str):
    before = _state(limited)
    client = limited.client()
    headers = {"X-Artstore-Filename": "big.bin"}
    if kind == "declared":
        response = client.post("/files", content=b"x" * (2 * MiB), headers=headers)
    elif kind == "chunked":
        response = client.post("/files", content=_chunks(2 * MiB), headers=headers)
    else:
        response = _form(client, {}, chunks=_chunks(2 * MiB))

    assert response.status_code == 413, response.text
    assert str(MiB) in response.json()["detail"]
    _nothing_stored(limited, before)
    assert client.post("/files", content=b"small", headers=headers).status_code == 201


def test_too_many_requests_are_429_with_retry_after(limited: Cluster):
    client = limited.client("ADMIN")
    answers: list[httpx.Response] = []
    for _ in range(200):  # until the first refusal
        answers.append(client.patch(f"/files/{'0' * 8}-0000-0000-0000-{'0' * 12}", json={}))
        if answers[-1].status_code == 429:
            break
    refused = answers[-1]
    assert refused.status_code == 429, [a.status_code for a in answers]
    assert len(answers) > 40, "the burst of 40 requests is let through before any is limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
