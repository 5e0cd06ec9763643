"""Downloads through the query module: streamed from the owning element with Range, ETag and conditional
requests behaving exactly as on the element; an element that is down answers 503 with Retry-After, and
its circuit opens after 5 failures."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.query._support import metric, upload
from tests.support.cluster import Cluster, ClusterFactory, wait_for

# What must be the same whether a file is read from its element or through the query module.
_COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "accept-ranges",
    "content-disposition",
)


def _element_client(cluster: Cluster, element_id: str) -> httpx.Client:
    se = next(se for se in cluster.elements.values() if se.element_id == element_id)
    return httpx.Client(
        base_url=f"{se.url}/api/v1", headers={"Authorization": f"Bearer {cluster.token('USER')}"}, timeout=60
    )


def _same(direct: httpx.Response, proxied: httpx.Response) -> None:
    assert proxied.status_code == direct.status_code, proxied.text
    if direct.headers.get("content-type", "").startswith("application/problem+json"):
        # The same problem, but each request has its own id.
        assert {**proxied.json(), "request_id": None} == {**direct.json(), "request_id": None}
    else:
        assert proxied.content == direct.content
    for name in _COMPARED_HEADERS:
        assert proxied.headers.get(name) == direct.headers.get(name), name


def test_ranges_and_conditional_requests_behave_as_on_the_element(cluster: Cluster):
    body = os.urandom(300_000)
    stored = upload(cluster, body, filename="report 2024.pdf")
    file_id = stored["file_id"]
    through = cluster.query_client("READONLY")
    with _element_client(cluster, stored["storage_element_id"]) as direct:
        etag = direct.head(f"/files/{file_id}").headers["etag"]
        cases: list[tuple[str, dict[str, str]]] = [
            ("GET", {}),
            ("HEAD", {}),
            ("GET", {"Range": "bytes=0-0"}),
            ("GET", {"Range": "bytes=0-9"}),
            ("GET", {"Range": "bytes=-10"}),
            ("GET", {"Range": "bytes=1000-"}),
            ("HEAD", {"Range": "bytes=10-19"}),
            ("GET", {"Range": f"bytes={len(body)}-"}),  # 416
            ("GET", {"If-None-Match": etag}),  # 304
            ("GET", {"If-None-Match": '"something-else"'}),
            ("GET", {"If-Range": etag, "Range": "bytes=5-14"}),  # 206
            ("GET", {"If-Range": '"an-old-etag"', "Range": "bytes=5-14"}),  # the whole file
        ]
        statuses = []
        for method, headers in cases:
            expected = direct.request(method, f"/files/{file_id}", headers=headers)
            got = through.request(method, f"/files/{file_id}/content", headers=headers)
            _same(expected, got)
            statuses.append(got.status_code)
    assert statuses == [200, 200, 206, 206, 206, 206, 206, 416, 304, 200, 206, 200]
    whole = through.get(f"/files/{file_id}/content")
    assert hashlib.sha256(whole.content).hexdigest() == stored["sha256"]
    assert through.get(f"/files/{file_id}/content", headers={"Range": "bytes=-10"}).content == body[-10:]


def test_who_may_download(cluster: Cluster):
    stored = upload(cluster, b"content for some")
    path = f"/files/{stored['file_id']}/content"
    for role in ("READONLY", "USER"):
        assert cluster.query_client(role).get(path).content == b"content for some", role
    refused = cluster.query_client("AUDITOR").get(path)
    assert refused.status_code == 403
    assert "metadata only" in refused.json()["detail"]
    assert cluster.query_client().get(path, headers={"Authorization": ""}).status_code == 401
    # The element itself refuses an auditor the bytes too (DESIGN section 2), but not the attributes.
    with _element_client(cluster, stored["storage_element_id"]) as direct:
        auditor = {"Authorization": f"Bearer {cluster.token('AUDITOR')}"}
        assert direct.get(f"/files/{stored['file_id']}", headers=auditor).status_code == 403
        assert direct.get(f"/files/{stored['file_id']}/attributes", headers=auditor).status_code == 200
    missing = cluster.query_client().get("/files/00000000-0000-4000-8000-000000000000/content")
    assert missing.status_code == 404


def test_the_storage_elements_as_the_query_module_sees_them(cluster: Cluster):
    listed = cluster.query_client("READONLY").get("/storage-elements")
    assert listed.status_code == 200, listed.text
    by_id = {element["id"]: element for element in listed.json()["storage_elements"]}
    assert set(by_id) == {se.element_id for se in cluster.elements.values()}
    for name, se in cluster.elements.items():
        assert by_id[se.element_id]["mode"] == name
        assert by_id[se.element_id]["circuit"] == "closed"


def test_an_archived_element_is_still_readable_and_a_stopped_one_opens_its_circuit(
    make_cluster: ClusterFactory,
):
    cluster = make_cluster(queries=1, query_settings={"circuit_recovery_seconds": 600})
    body = os.urandom(100_000)
    stored = upload(cluster, body)
    element = next(se for se in cluster.elements.values() if se.element_id == stored["storage_element_id"])
    admin = httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1",
        headers={"Authorization": f"Bearer {cluster.admin.token()}"},
        timeout=60,
    )
    for mode in ("ro", "ar"):
        changed = admin.post(f"/storage-elements/{element.element_id}/mode", json={"target_mode": mode})
        assert changed.status_code == 200, changed.text
    reader = cluster.query_client("READONLY")
    assert reader.get(f"/files/{stored['file_id']}/content").content == body

    element.stop()
    failures = []
    for _ in range(5):
        answer = reader.get(f"/files/{stored['file_id']}/content")
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        failures.append(answer.json()["code"])
    assert failures == ["STORAGE_ELEMENT_UNAVAILABLE"] * 5
    tried = metric(
        cluster.query, "artstore_circuit_failures_total", service="query", target=element.element_id
    )
    assert tried == 5

    fast = reader.get(f"/files/{stored['file_id']}/content")
    assert fast.status_code == 503
    assert fast.json()["code"] == "CIRCUIT_OPEN"
    assert int(fast.headers["Retry-After"]) > 60
    assert metric(cluster.query, "artstore_circuit_state", service="query", target=element.element_id) == 2
    # The failures stopped at 5: the open circuit did not try the element again.
    assert (
        metric(cluster.query, "artstore_circuit_failures_total", service="query", target=element.element_id)
        == 5
    )
    # Metadata does not need the element while the catalog row is fresh.
    assert reader.get(f"/files/{stored['file_id']}").status_code == 200
    listed = reader.get("/storage-elements").json()["storage_elements"]
    assert {e["id"]: e["circuit"] for e in listed}[element.element_id] == "open"
    admin.close()

    # Back up: the query module sees it ready and closes the circuit, well before the 600 s recovery time.
    element.start()
    wait_for(
        lambda: reader.get(f"/files/{stored['file_id']}/content").content == body,
        within=10,
        what="the download served again once the element is back",
    )
    assert metric(cluster.query, "artstore_circuit_state", service="query", target=element.element_id) == 0


@pytest.mark.slow
def test_the_query_module_memory_stays_flat_while_serving_2_gib(make_cluster: ClusterFactory):
    cluster = make_cluster(queries=1)
    size = 2 << 30
    block = os.urandom(1 << 20)

    def stream():
        for _ in range(size // len(block)):
            yield block

    created = cluster.client().post("/files", content=stream(), headers={"X-Artstore-Filename": "big.bin"})
    assert created.status_code == 201, created.text
    query = cluster.query
    baseline = query.rss_bytes()
    peak = baseline
    digest = hashlib.sha256()
    received = 0
    with cluster.query_client("READONLY").stream(
        "GET", f"/files/{created.json()['file_id']}/content"
    ) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
            if received % (64 << 20) < len(chunk):
                peak = max(peak, query.rss_bytes())
    assert received == size
    assert digest.hexdigest() == created.json()["sha256"]
    assert peak < 150 << 20, f"query module RSS peaked at {peak >> 20} MiB (baseline {baseline >> 20} MiB)"
