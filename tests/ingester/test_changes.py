"""PATCH and DELETE through the ingester: the element's attr.json and the catalog change together;
deletes happen only on `edit` elements."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.cluster import Cluster, ClusterFactory, wait_for
from tests.support.files import attr_json, shard


def _upload(client: httpx.Client, *, temporary: bool) -> dict[str, Any]:
    attributes = {"description": "before", "tags": ["a"], "metadata": {"k": "v"}}
    if temporary:
        attributes["retention"] = {"policy": "temporary"}
    response = client.post(
        "/files",
        content=b"some document",
        headers={"X-Artstore-Filename": "doc.txt", "X-Artstore-Attributes": json.dumps(attributes)},
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _element(cluster: Cluster, answer: dict[str, Any]) -> Any:
    return next(se for se in cluster.elements.values() if se.element_id == answer["storage_element_id"])


def test_patch_changes_attr_json_and_the_catalog_together(cluster: Cluster):
    client = cluster.client()
    for temporary in (True, False):  # edit and rw both allow metadata updates
        stored = _upload(client, temporary=temporary)
        change = {"description": "after", "tags": ["b", "c"], "metadata": {"k": "w", "n": 2}}

        response = client.patch(f"/files/{stored['file_id']}", json=change)

        assert response.status_code == 200, response.text
        on_disk = attr_json(_element(cluster, stored).data_dir, stored["file_id"])
        [row] = cluster.catalog(stored["file_id"])
        for name, value in change.items():
            assert response.json()[name] == value
            assert on_disk[name] == value
        assert row["description"] == "after"
        assert json.loads(row["tags"]) == ["b", "c"]
        assert json.loads(row["metadata"]) == {"k": "w", "n": 2}
        assert json.loads(row["attributes"]) == on_disk
        [saga] = [s for s in cluster.sagas(type="update") if str(s["file_id"]) == stored["file_id"]]
        assert saga["status"] == "completed"


def test_patch_with_attributes_near_their_limits_is_applied(cluster: Cluster):
    client = cluster.client()
    stored = _upload(client, temporary=True)
    change = {
        "description": "é" * 4096,  # 8 KiB of UTF-8
        "tags": [f"{i:03d}" + "t" * 125 for i in range(100)],
        "metadata": {f"key-{i}": "v" * 40 for i in range(100)},
    }

    before = datetime.now(UTC) - timedelta(seconds=5)
    response = client.patch(f"/files/{stored['file_id']}", json=change)

    assert response.status_code == 200, response.text
    on_disk = attr_json(_element(cluster, stored).data_dir, stored["file_id"])
    [row] = cluster.catalog(stored["file_id"])
    assert json.loads(row["attributes"]) == on_disk
    for name, value in change.items():
        assert on_disk[name] == value
    assert row["description"] == change["description"]
    # The audit names what changed and who changed it.
    with httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    ) as api:
        audit = api.get(
            "/audit", params={"action": "file.updated", "since": before.isoformat(), "limit": 1000}
        )
    assert audit.status_code == 200, audit.text
    [record] = [r for r in audit.json()["items"] if r["subject"] == stored["file_id"]]
    assert record["details"]["changed"] == ["description", "metadata", "tags"]
    assert record["actor"] == stored["created_by"]


def test_patch_refuses_fields_it_does_not_change_and_unknown_files(cluster: Cluster):
    client = cluster.client()
    stored = _upload(client, temporary=True)

    retention = client.patch(f"/files/{stored['file_id']}", json={"retention": {"policy": "permanent"}})
    nested = client.patch(f"/files/{stored['file_id']}", json={"metadata": {"deep": {"x": 1}}})
    unknown = client.patch(f"/files/{uuid.uuid4()}", json={"description": "x"})

    assert retention.status_code == 422, retention.text
    assert nested.status_code == 422, nested.text
    assert unknown.status_code == 404, unknown.text
    assert attr_json(_element(cluster, stored).data_dir, stored["file_id"])["description"] == "before"


def test_delete_on_an_edit_element_removes_file_sidecar_and_catalog_row(cluster: Cluster):
    client = cluster.client()
    stored = _upload(client, temporary=True)
    folder = shard(_element(cluster, stored).data_dir, stored["file_id"])

    response = client.delete(f"/files/{stored['file_id']}")

    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True
    assert not (folder / f"{stored['file_id']}.bin").exists()
    assert not (folder / f"{stored['file_id']}.attr.json").exists()
    assert cluster.catalog(stored["file_id"]) == []
    assert client.delete(f"/files/{stored['file_id']}").status_code == 404


def test_delete_on_an_rw_element_is_refused_and_changes_nothing(cluster: Cluster):
    client = cluster.client()
    stored = _upload(client, temporary=False)
    folder = shard(_element(cluster, stored).data_dir, stored["file_id"])

    response = client.delete(f"/files/{stored['file_id']}")

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "MODE_NOT_ALLOWED"
    assert (folder / f"{stored['file_id']}.bin").read_bytes() == b"some document"
    assert attr_json(_element(cluster, stored).data_dir, stored["file_id"]) == stored
    assert len(cluster.catalog(stored["file_id"])) == 1


def test_readonly_accounts_cannot_change_files(cluster: Cluster):
    stored = _upload(cluster.client(), temporary=True)
    reader = cluster.client("READONLY")

    assert reader.patch(f"/files/{stored['file_id']}", json={"description": "x"}).status_code == 403
    assert reader.delete(f"/files/{stored['file_id']}").status_code == 403
    assert len(cluster.catalog(stored["file_id"])) == 1


def test_read_only_and_archived_elements_refuse_deletes_and_updates_and_change_nothing(
    make_cluster: ClusterFactory,
):
    cluster = make_cluster(modes=("rw",))
    client = cluster.client()
    stored = _upload(client, temporary=False)
    element = _element(cluster, stored)
    folder = shard(element.data_dir, stored["file_id"])
    admin = httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    )

    for mode in ("ro", "ar"):
        moved = admin.post(f"/storage-elements/{element.element_id}/mode", json={"target_mode": mode})
        assert moved.status_code == 200, moved.text
        wait_for(
            lambda: admin.get(f"/storage-elements/{element.element_id}").json()["mode"] == mode,  # noqa: B023
            within=30,
            what=f"the element in mode {mode}",
        )

        deleted = client.delete(f"/files/{stored['file_id']}")
        patched = client.patch(f"/files/{stored['file_id']}", json={"description": "after"})

        for answer in (deleted, patched):
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "MODE_NOT_ALLOWED"
        assert (folder / f"{stored['file_id']}.bin").read_bytes() == b"some document"
        assert attr_json(element.data_dir, stored["file_id"]) == stored
        [row] = cluster.catalog(stored["file_id"])
        assert row["description"] == "before"
    admin.close()
