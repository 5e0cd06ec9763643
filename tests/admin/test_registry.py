"""The storage-element registry: registration, polling (offline and back), PATCH/DELETE, mode-change saga."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.admin._registry_support import QUOTA, api, entry, eventually, own_namespace, register, snapshot
from tests.support.infra import query


@pytest.fixture
def registry_admin(make_admin: Any) -> Any:
    admin = make_admin(redis_namespace=own_namespace(), se_poll_seconds=1)
    admin.namespace = admin.env["ARTSTORE_ADMIN_REDIS_NAMESPACE"]
    return admin


def _row(client: httpx.Client, element_id: str) -> dict[str, Any]:
    response = client.get(f"/storage-elements/{element_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _se_mode(se: Any, token: str) -> str:
    response = httpx.get(f"{se.url}/api/v1/info", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["mode"])


def test_registered_element_shows_mode_and_capacity_then_offline_and_online(registry_admin, make_se):
    se = make_se("rw", jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    with api(registry_admin) as client:
        created = register(client, se, priority=7)
        assert created["id"] == se.element_id
        assert created["mode"] == "rw"
        assert created["status"] == "online"
        assert created["priority"] == 7
        assert created["capacity_bytes"] == QUOTA
        assert created["free_bytes"] == QUOTA
        assert created["file_count"] == 0
        listed = client.get("/storage-elements").json()["items"]
        assert [item["id"] for item in listed] == [se.element_id]

        se.stop()
        offline = eventually(
            lambda: (row := _row(client, se.element_id))["status"] == "offline" and row,
            within=5,
            what="the stopped element marked offline",
        )
        assert offline["last_error"], offline

        se.start()
        online = eventually(
            lambda: (row := _row(client, se.element_id))["status"] == "online" and row,
            within=5,
            what="the restarted element online again",
        )
        assert online["last_error"] is None
        assert online["mode"] == "rw"


def test_registration_refuses_what_is_not_a_usable_element(registry_admin, make_se):
    se = make_se("edit", jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    with api(registry_admin) as client:
        register(client, se)
        duplicate = client.post("/storage-elements", json={"url": se.url + "/"})
        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.json()["code"] == "ALREADY_EXISTS"

        se.stop()
        unreachable = client.post("/storage-elements", json={"url": se.url})
        assert unreachable.status_code == 502, unreachable.text
        assert unreachable.json()["code"] == "SE_UNREACHABLE"

        not_an_element = client.post("/storage-elements", json={"url": registry_admin.url})
        assert not_an_element.status_code == 502, not_an_element.text
        assert not_an_element.json()["code"] == "NOT_A_STORAGE_ELEMENT"

        bad_input = client.post("/storage-elements", json={"url": "not a url"})
        assert bad_input.status_code == 422, bad_input.text

        assert [item["id"] for item in client.get("/storage-elements").json()["items"]] == [se.element_id]
    anonymous = httpx.post(f"{registry_admin.url}/api/v1/storage-elements", json={"url": se.url}, timeout=10)
    assert anonymous.status_code == 401


def test_patch_and_delete_reach_the_registry_and_the_snapshot(registry_admin, make_se, infra):
    se = make_se("rw", jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    ns = registry_admin.namespace
    with api(registry_admin) as client:
        register(client, se)
        changed = client.patch(f"/storage-elements/{se.element_id}", json={"priority": 3, "name": "north"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["priority"], changed.json()["name"]) == (3, "north")
        published = entry(snapshot(infra.redis_url, ns), se.element_id)
        assert published is not None
        assert (published["priority"], published["name"]) == (3, "north")

        gone = client.delete(f"/storage-elements/{se.element_id}")
        assert gone.status_code == 204, gone.text
        assert client.get(f"/storage-elements/{se.element_id}").status_code == 404
        assert entry(snapshot(infra.redis_url, ns), se.element_id) is None
        assert client.post(f"/storage-elements/{se.element_id}/sync").status_code == 404


def test_mode_change_reaches_element_registry_and_snapshot(registry_admin, make_se, infra):
    se = make_se("rw", jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    token = registry_admin.token()
    with api(registry_admin) as client:
        register(client, se)
        before = snapshot(infra.redis_url, registry_admin.namespace)
        assert before is not None

        changed = client.post(f"/storage-elements/{se.element_id}/mode", json={"target_mode": "ro"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["previous_mode"], changed.json()["mode"]) == ("rw", "ro")

        assert _se_mode(se, token) == "ro"
        assert _row(client, se.element_id)["mode"] == "ro"
        after = snapshot(infra.redis_url, registry_admin.namespace)
        assert after is not None
        assert after["version"] > before["version"]
        assert entry(after, se.element_id)["mode"] == "ro"  # type: ignore[index]

    sagas = query(
        infra.database_url,
        f'SELECT status, payload FROM "{registry_admin.schema}".sagas WHERE type = $1',
        "mode_change",
    )
    assert [(s["status"], json.loads(s["payload"])) for s in sagas] == [
        ("completed", {"from": "rw", "to": "ro"})
    ]
    steps = query(
        infra.database_url,
        f'SELECT step, status FROM "{registry_admin.schema}".saga_steps ORDER BY id',
    )
    assert ("registry_update", "completed") in [(s["step"], s["status"]) for s in steps]
    audited = query(
        infra.database_url,
        f'SELECT outcome, details FROM "{registry_admin.schema}".audit_log WHERE action = $1',
        "storage_element.mode_change",
    )
    assert [(a["outcome"], json.loads(a["details"])["to"]) for a in audited] == [("success", "ro")]


@pytest.mark.parametrize(("start_mode", "prepare", "target"), [("rw", "ro", "rw"), ("rw", None, "ar")])
def test_invalid_transition_answers_409_and_changes_nothing(
    registry_admin, make_se, infra, start_mode, prepare, target
):
    se = make_se(start_mode, jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    token = registry_admin.token()
    with api(registry_admin) as client:
        register(client, se)
        if prepare:
            response = client.post(f"/storage-elements/{se.element_id}/mode", json={"target_mode": prepare})
            assert response.status_code == 200, response.text
        mode_before = _se_mode(se, token)
        row_before = _row(client, se.element_id)
        published_before = snapshot(infra.redis_url, registry_admin.namespace)
        assert published_before is not None

        refused = client.post(f"/storage-elements/{se.element_id}/mode", json={"target_mode": target})
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "INVALID_TRANSITION"

        assert _se_mode(se, token) == mode_before
        row_after = _row(client, se.element_id)
        assert (row_after["mode"], row_after["status"]) == (row_before["mode"], row_before["status"])
        published_after = snapshot(infra.redis_url, registry_admin.namespace)
        assert published_after is not None
        assert published_after["version"] == published_before["version"]
        assert entry(published_after, se.element_id)["mode"] == mode_before  # type: ignore[index]

    failed = query(
        infra.database_url,
        f"SELECT count(*) AS n FROM \"{registry_admin.schema}\".sagas WHERE status = 'failed'",
    )
    assert failed[0]["n"] == 1
    audit = query(
        infra.database_url,
        f'SELECT outcome FROM "{registry_admin.schema}".audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1',
        "storage_element.mode_change",
    )
    assert audit[0]["outcome"] == "failure"


def test_mode_change_of_an_unreachable_element_answers_503(registry_admin, make_se):
    se = make_se("rw", jwks_url=registry_admin.jwks_url, quota_bytes=QUOTA)
    with api(registry_admin) as client:
        register(client, se)
        se.stop()
        refused = client.post(f"/storage-elements/{se.element_id}/mode", json={"target_mode": "ro"})
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("Retry-After")
        se.start()
        assert _se_mode(se, registry_admin.token()) == "rw"


def test_an_element_that_comes_back_is_seen_online_without_waiting_a_poll_interval(make_admin, make_se):
    admin = make_admin(redis_namespace=own_namespace(), se_poll_seconds=3600, se_offline_poll_seconds=0.5)
    se = make_se("rw", jwks_url=admin.jwks_url, quota_bytes=QUOTA)
    with api(admin) as client:
        register(client, se)
    admin.stop()
    se.stop()
    admin.start()  # its first round finds the element down
    with api(admin) as client:
        eventually(
            lambda: _row(client, se.element_id)["status"] == "offline", within=10, what="marked offline"
        )
        se.start()
        # An hour-long poll interval: only the quick re-polling of an offline element can see it back.
        online = eventually(
            lambda: (row := _row(client, se.element_id))["status"] == "online" and row,
            within=5,
            what="the restarted element online again",
        )
    assert online["last_error"] is None
