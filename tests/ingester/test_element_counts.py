"""The admin's registry follows uploads and deletes without waiting for its next poll of the elements."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.cluster import Cluster, ClusterFactory, attributes_header, wait_for


def _registry_row(cluster: Cluster, element_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{cluster.admin.url}/api/v1/storage-elements/{element_id}",
        headers={"Authorization": f"Bearer {cluster.admin.token()}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    row: dict[str, Any] = answer.json()
    return row


def test_file_counts_follow_uploads_and_deletes_between_polls(make_cluster: ClusterFactory) -> None:
    # An hour between polls: only the completed sagas can make the admin re-read the element.
    cluster = make_cluster(admin_settings={"se_poll_seconds": 3600})
    edit = cluster.elements["edit"].element_id
    assert _registry_row(cluster, edit)["file_count"] == 0
    client = cluster.client()
    stored = client.post(
        "/files",
        content=b"x" * 1000,
        headers={"X-Artstore-Filename": "draft.txt", **attributes_header(retention={"policy": "temporary"})},
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["storage_element_id"] == edit

    counted = wait_for(
        lambda: (row := _registry_row(cluster, edit))["file_count"] == 1 and row,
        within=5,
        what="the admin counting the uploaded file",
    )
    assert counted["used_bytes"] >= 1000

    assert client.delete(f"/files/{stored.json()['file_id']}").status_code == 200
    wait_for(
        lambda: _registry_row(cluster, edit)["file_count"] == 0,
        within=5,
        what="the admin no longer counting the deleted file",
    )
