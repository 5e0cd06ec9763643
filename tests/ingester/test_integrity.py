"""An element whose answer does not match what the ingester sent: the client is told, nothing stays stored.

The element is real; a proxy between the ingester and it alters the sha256 in the element's answers, as a
faulty element or a corrupting network would. The ingester compares that answer with the bytes it sent.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import httpx

from tests.support.cluster import Cluster, ClusterFactory, wait_for
from tests.support.infra import Infra
from tests.support.processes import storage_element
from tests.support.proxy import answering_proxy

_SHA256_FIELD = re.compile(rb'"sha256":"([0-9a-f])')


def _flip_first_digest_digit(body: bytes) -> bytes:
    """`"sha256":"a...` becomes `"sha256":"b...` (the same length, a different digest)."""
    return _SHA256_FIELD.sub(lambda m: b'"sha256":"' + (b"1" if m.group(1) == b"0" else b"0"), body, count=1)


def _register(cluster: Cluster, url: str) -> None:
    """Register the element at `url` and wait until the ingester is ready."""
    with httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    ) as api:
        registered = api.post("/storage-elements", json={"url": url})
        assert registered.status_code == 201, registered.text
    wait_for(
        lambda: httpx.get(f"{cluster.ingester.url}/health/ready", timeout=5).status_code == 200,
        within=30,
        what="ingester ready",
    )


def test_an_element_answering_another_digest_fails_the_upload_and_leaves_nothing(
    make_cluster: ClusterFactory, infra: Infra
):
    cluster = make_cluster(modes=())
    element_id = f"se-rw-{uuid.uuid4().hex[:6]}"
    element = storage_element(
        element_id=element_id,
        data_dir=cluster.log_dir / element_id,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        redis_namespace=cluster.namespace,
        jwks_url=cluster.admin.jwks_url,
        log_dir=cluster.log_dir,
        mode="rw",
    )
    cluster._processes.append(element)  # stopped with the cluster
    element.start()
    cluster.elements["rw"] = element
    content = b"the bytes the client sent\n" * 1000

    with answering_proxy(element.url, _flip_first_digest_digit) as proxy_url:
        _register(cluster, proxy_url)
        client = cluster.client()
        answer = wait_for(
            lambda: (
                (r := client.post("/files", content=content, headers={"X-Artstore-Filename": "a.txt"}))
                and r.status_code != 503  # until discovery offers the element
                and r
            ),
            within=30,
            what="an upload that reaches the element",
        )

        assert answer.status_code == 502, answer.text
        problem = answer.json()
        assert problem["code"] == "SE_INTEGRITY"
        assert hashlib.sha256(content).hexdigest() in problem["detail"]  # what the ingester sent
        assert "send it again" in problem["detail"]

        # The saga is undone: no catalog row, and the element (which did store the bytes) holds nothing.
        wait_for(
            lambda: [s["status"] for s in cluster.sagas_in_use(type="upload")] == ["compensated"],
            within=30,
            what="the upload saga compensated",
        )
        assert cluster.catalog_count() == 0
        assert cluster.stored_files() == {"rw": []}

        # Once the registry points at the element itself (the proxy still running, so uploads that still go
        # through it fail as above rather than not connecting), the same upload is stored whole.
        with httpx.Client(
            base_url=f"{cluster.admin.url}/api/v1",
            headers={"Authorization": f"Bearer {cluster.admin.token()}"},
        ) as api:
            moved = api.patch(f"/storage-elements/{element_id}", json={"url": element.url})
            assert moved.status_code == 200, moved.text
        stored = wait_for(
            lambda: (
                (r := client.post("/files", content=content, headers={"X-Artstore-Filename": "a.txt"}))
                and r.status_code == 201
                and r
            ),
            within=30,
            what="the upload stored once the element answers for itself",
        )
        assert stored.json()["sha256"] == hashlib.sha256(content).hexdigest()
        # Any upload that still went through the proxy meanwhile was undone like the first.
        wait_for(
            lambda: (
                cluster.catalog_count() == 1
                and [path.stem for path in cluster.stored_files()["rw"]] == [stored.json()["file_id"]]
            ),
            within=30,
            what="one catalog row and one file: the stored upload's",
        )
