"""Sagas against a real admin and a real storage element that trusts it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from artstore_admin.audit.log import CHAIN_LOCK_SQL
from tests.support.files import put
from tests.support.infra import Infra, query
from tests.support.processes import AdminModule, StorageElement


def _api(admin: AdminModule, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=admin.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _system_token(admin: AdminModule) -> str:
    """A token of a system account: what an ingester holds (`internal` among its permissions)."""
    with _api(admin, admin.token()) as api:
        created = api.post(
            "/service-accounts",
            json={"name": f"ingester-{uuid.uuid4().hex[:6]}", "role": "USER", "is_system": True},
        )
    assert created.status_code == 201, created.text
    return admin.token(created.json()["client_id"], created.json()["client_secret"])


def _register(admin: AdminModule, se: StorageElement) -> None:
    with _api(admin, admin.token()) as api:
        response = api.post("/storage-elements", json={"url": se.url})
    assert response.status_code == 201, response.text
    assert response.json()["id"] == se.element_id


def _catalog(admin: AdminModule, file_id: str) -> list[Any]:
    return query(
        admin.database_url, f'SELECT * FROM "{admin.schema}".files WHERE file_id = $1', uuid.UUID(file_id)
    )


def _audit_records(admin: AdminModule, action: str, subject: str) -> list[dict[str, Any]]:
    with _api(admin, admin.token()) as api:
        response = api.get("/audit", params={"action": action, "limit": 1000})
    assert response.status_code == 200, response.text
    return [r for r in response.json()["items"] if r["subject"] == subject]


def _poll(probe: Callable[[], Any], *, deadline_seconds: float = 30) -> Any:
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


class Cluster:
    def __init__(self, admin: AdminModule, se: StorageElement) -> None:
        self.admin = admin
        self.se = se
        self.token = _system_token(admin)
        self.api = _api(admin, self.token)
        self.se_client = httpx.Client(
            base_url=se.url + "/api/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def start(self, file_id: str, *, kind: str = "upload", key: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"type": kind, "file_id": file_id, "storage_element_id": self.se.element_id}
        if key is not None:
            body["idempotency_key"] = key
        return self.api.post("/sagas", json=body)

    def upload(self, saga_id: str, file_id: str, content: bytes = b"saga bytes") -> dict[str, Any]:
        response = put(
            self.se_client,
            content,
            file_id=uuid.UUID(file_id),
            filename="contract.pdf",
            attributes={"description": "signed", "tags": ["legal"], "metadata": {"party": "acme"}},
            headers={"X-Saga-Id": saga_id, "Content-Type": "application/pdf"},
        )
        assert response.status_code == 201, response.text
        attributes: dict[str, Any] = response.json()
        return attributes

    def started_and_stored(self, count: int) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """`count` upload sagas started in one batch, each file then stored on the element: the file ids,
        the saga ids and the element's attributes of each."""
        file_ids = [str(uuid.uuid4()) for _ in range(count)]
        started = self.api.post(
            "/sagas/batch",
            json={
                "start": [
                    {"type": "upload", "file_id": f, "storage_element_id": self.se.element_id}
                    for f in file_ids
                ]
            },
        )
        assert started.status_code == 200, started.text
        sagas = [r["saga"]["id"] for r in started.json()["start"]]
        documents = [self.upload(s, f, f.encode()) for s, f in zip(sagas, file_ids, strict=True)]
        return file_ids, sagas, documents

    def close(self) -> None:
        self.api.close()
        self.se_client.close()

    def saga(self, saga_id: str) -> dict[str, Any]:
        response = self.api.get(f"/sagas/{saga_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(
    make_admin: Callable[..., AdminModule], make_se: Callable[..., StorageElement]
) -> Iterator[ClusterFactory]:
    """An admin (with the given settings) and an `edit` element registered with it and trusting it."""
    made: list[Cluster] = []

    def make(**admin_settings: Any) -> Cluster:
        admin = make_admin(**admin_settings)
        se = make_se("edit", jwks_url=admin.jwks_url)
        _register(admin, se)
        made.append(Cluster(admin, se))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    return make_cluster()


def test_a_saga_left_started_is_compensated_by_the_recovery_loop(make_cluster: ClusterFactory):
    cluster = make_cluster(saga_timeout_seconds=2, saga_recovery_seconds=0.5)
    admin = cluster.admin
    file_id = str(uuid.uuid4())
    started = cluster.start(file_id)
    assert started.status_code == 201, started.text
    saga_id = started.json()["id"]
    assert started.json()["status"] == "started"
    # The executor is told how long it may leave the saga idle (an ingester keeps sagas started ahead by it).
    assert started.json()["abandoned_after_seconds"] == 2
    cluster.upload(saga_id, file_id)
    assert cluster.se_client.get(f"/files/{file_id}").status_code == 200

    # The ingester "crashed": nobody completes the saga.
    final = _poll(lambda: (s := cluster.saga(saga_id))["status"] in ("compensated", "failed") and s)
    assert final, f"saga still {cluster.saga(saga_id)['status']} after the deadline"
    assert final["status"] == "compensated"
    assert "abandoned_after_seconds" not in final  # only a started saga can be abandoned
    assert "not completed within" in final["error"]
    steps = {step["step"]: step for step in final["steps"]}
    assert steps["element_compensated"]["details"]["removed_files"] == [file_id]
    assert cluster.se_client.get(f"/files/{file_id}").status_code == 404
    assert _catalog(admin, file_id) == []
    assert len(_audit_records(admin, "saga.compensated", file_id)) == 1
    metrics = httpx.get(admin.url + "/metrics", timeout=10).text
    assert 'artstore_saga_outcomes_total{outcome="compensated",type="upload"} 1.0' in metrics
    assert 'artstore_saga_outcomes_total{outcome="timed_out",type="upload"} 1.0' in metrics


def test_complete_catalogs_the_file_once_and_publishes_an_event(cluster: Cluster, infra: Infra):
    file_id = str(uuid.uuid4())
    saga_id = cluster.start(file_id).json()["id"]
    attributes = cluster.upload(saga_id, file_id)
    events = redis.Redis.from_url(infra.redis_url).pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"{infra.redis_namespace}:catalog:events")
    try:
        first = cluster.api.post(f"/sagas/{saga_id}/complete", json={"attributes": attributes})
        again = cluster.api.post(f"/sagas/{saga_id}/complete", json={"attributes": attributes})
        message = _poll(lambda: events.get_message(timeout=0.5), deadline_seconds=10)
    finally:
        events.close()

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert first.json()["status"] == again.json()["status"] == "completed"
    rows = _catalog(cluster.admin, file_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["storage_element_id"] == cluster.se.element_id
    assert row["original_filename"] == "contract.pdf"
    assert row["content_type"] == "application/pdf"
    assert row["size_bytes"] == len(b"saga bytes")
    assert row["sha256"] == attributes["sha256"]
    assert json.loads(row["tags"]) == ["legal"]
    assert json.loads(row["metadata"]) == {"party": "acme"}
    assert str(row["saga_id"]) == saga_id
    assert json.loads(row["attributes"]) == attributes
    assert len(_audit_records(cluster.admin, "file.uploaded", file_id)) == 1
    assert message, "no catalog event was published"
    event = json.loads(message["data"])
    assert (event["event"], event["file_id"], event["saga_id"]) == ("created", file_id, saga_id)

    refused = cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "too late"})
    assert refused.status_code == 409
    assert "already completed" in refused.json()["detail"]
    assert cluster.se_client.get(f"/files/{file_id}").status_code == 200


def test_fail_compensates_once_and_complete_afterwards_is_refused(cluster: Cluster):
    file_id = str(uuid.uuid4())
    saga_id = cluster.start(file_id).json()["id"]
    attributes = cluster.upload(saga_id, file_id)

    first = cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "client went away"})
    again = cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "client went away"})

    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "compensated"
    assert first.json()["error"] == "client went away"
    assert cluster.se_client.get(f"/files/{file_id}").status_code == 404
    assert len(_audit_records(cluster.admin, "saga.compensated", file_id)) == 1
    late = cluster.api.post(f"/sagas/{saga_id}/complete", json={"attributes": attributes})
    assert late.status_code == 409
    assert "start a new saga" in late.json()["detail"]
    assert _catalog(cluster.admin, file_id) == []


def test_an_idempotency_key_returns_the_same_saga(cluster: Cluster):
    file_id = str(uuid.uuid4())
    key = f"upload-{uuid.uuid4().hex}"
    first = cluster.start(file_id, key=key)
    again = cluster.start(file_id, key=key)
    # A retry names the request, not the file: the ingester picks a new file id for each attempt.
    retried = cluster.start(str(uuid.uuid4()), key=key)
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == first.json()["id"]
    other_request = cluster.api.post(
        "/sagas",
        json={
            "type": "upload",
            "file_id": file_id,
            "storage_element_id": cluster.se.element_id,
            "idempotency_key": key,
            "payload": {"request": {"filename": "other.pdf"}},
        },
    )
    assert other_request.status_code == 409
    assert "use a new key" in other_request.json()["detail"]
    count = query(
        cluster.admin.database_url,
        f'SELECT count(*) AS n FROM "{cluster.admin.schema}".sagas WHERE idempotency_key = $1',
        key,
    )
    assert count[0]["n"] == 1


def test_a_key_whose_saga_was_undone_is_free_for_a_retry(cluster: Cluster):
    key = f"upload-{uuid.uuid4().hex}"
    first = cluster.start(str(uuid.uuid4()), key=key).json()
    failed = cluster.api.post(f"/sagas/{first['id']}/fail", json={"error": "client went away"})
    assert failed.json()["status"] == "compensated", failed.text

    retry = cluster.start(str(uuid.uuid4()), key=key)

    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] != first["id"]
    assert retry.json()["idempotency_key"] == key
    assert cluster.saga(first["id"])["idempotency_key"] is None


def test_a_delete_saga_removes_the_catalog_row(cluster: Cluster):
    file_id = str(uuid.uuid4())
    upload_id = cluster.start(file_id).json()["id"]
    attributes = cluster.upload(upload_id, file_id)
    assert (
        cluster.api.post(f"/sagas/{upload_id}/complete", json={"attributes": attributes}).status_code == 200
    )

    deletion = cluster.start(file_id, kind="delete")
    assert deletion.status_code == 201, deletion.text
    assert cluster.se_client.delete(f"/files/{file_id}").status_code == 200
    done = cluster.api.post(f"/sagas/{deletion.json()['id']}/complete")

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert _catalog(cluster.admin, file_id) == []
    assert len(_audit_records(cluster.admin, "file.deleted", file_id)) == 1


def test_saga_endpoints_need_internal_and_refuse_junk(cluster: Cluster):
    with _api(cluster.admin, cluster.admin.token()) as human:
        _check_saga_permissions_and_input(cluster, human)


def _check_saga_permissions_and_input(cluster: Cluster, human: httpx.Client) -> None:
    body = {"type": "upload", "file_id": str(uuid.uuid4()), "storage_element_id": cluster.se.element_id}
    assert human.post("/sagas", json=body).status_code == 403
    saga_id = cluster.api.post("/sagas", json=body).json()["id"]
    # An ADMIN reads sagas through audit:read, but cannot drive them.
    assert human.get(f"/sagas/{saga_id}").status_code == 200
    assert human.post(f"/sagas/{saga_id}/fail", json={"error": "x"}).status_code == 403

    for junk in (
        {**body, "type": "rename"},
        {**body, "file_id": "not-a-uuid"},
        {**body, "surprise": 1},
        {"type": "upload"},
    ):
        response = cluster.api.post("/sagas", json=junk)
        assert response.status_code == 422, (junk, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unknown_element = cluster.api.post("/sagas", json={**body, "storage_element_id": "se-nowhere"})
    assert unknown_element.status_code == 422
    assert "not registered" in unknown_element.json()["detail"]
    assert cluster.api.get(f"/sagas/{uuid.uuid4()}").status_code == 404
    assert cluster.api.get("/sagas/not-a-uuid").status_code == 422
    assert (
        cluster.api.post(f"/sagas/{saga_id}/complete", json={"attributes": {"file_id": 5}}).status_code == 422
    )
    assert cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": ""}).status_code == 422


def test_a_compensation_the_element_missed_is_finished_by_the_loop(make_cluster: ClusterFactory):
    cluster = make_cluster(saga_recovery_seconds=0.5, se_timeout_seconds=1)
    file_id = str(uuid.uuid4())
    saga_id = cluster.start(file_id).json()["id"]
    cluster.upload(saga_id, file_id)
    cluster.se.stop()

    pending = cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "ingester lost the element"})
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "compensating"
    assert pending.json()["steps"][-1]["step"] == "element_unreachable"

    cluster.se.start()
    final = _poll(lambda: (s := cluster.saga(saga_id))["status"] != "compensating" and s)
    assert final, "the loop never finished the compensation"
    assert final["status"] == "compensated"
    assert final["error"] == "ingester lost the element"
    assert cluster.se_client.get(f"/files/{file_id}").status_code == 404


def test_two_admins_recover_each_stale_saga_exactly_once(make_cluster: ClusterFactory, make_admin):
    cluster = make_cluster(saga_timeout_seconds=2, saga_recovery_seconds=0.3)
    make_admin(schema=cluster.admin.schema, saga_timeout_seconds=2, saga_recovery_seconds=0.3)
    uploads = []
    for _ in range(4):
        file_id = str(uuid.uuid4())
        saga_id = cluster.start(file_id).json()["id"]
        cluster.upload(saga_id, file_id)
        uploads.append((saga_id, file_id))

    def all_settled() -> bool:
        return all(cluster.saga(saga_id)["status"] == "compensated" for saga_id, _ in uploads)

    assert _poll(all_settled), [cluster.saga(saga_id)["status"] for saga_id, _ in uploads]
    for saga_id, file_id in uploads:
        assert cluster.se_client.get(f"/files/{file_id}").status_code == 404
        assert len(_audit_records(cluster.admin, "saga.compensated", file_id)) == 1
        assert [s["step"] for s in cluster.saga(saga_id)["steps"]].count("timed_out") == 1
    assert _verify_chain(cluster.admin)


def _verify_chain(admin: AdminModule) -> bool:
    with _api(admin, admin.token()) as api:
        return bool(api.get("/audit/verify").json()["valid"])


def test_an_element_that_refuses_the_undo_leaves_the_saga_failed_and_the_file_in_place(
    make_admin: Callable[..., AdminModule], make_se: Callable[..., StorageElement]
):
    admin = make_admin()
    se = make_se("rw", jwks_url=admin.jwks_url)
    _register(admin, se)
    cluster = Cluster(admin, se)
    try:
        file_id = str(uuid.uuid4())
        saga_id = cluster.start(file_id).json()["id"]
        cluster.upload(saga_id, file_id)
        with _api(admin, admin.token()) as api:
            for mode in ("ro", "ar"):  # an archived element never gives back what it sealed
                moved = api.post(f"/storage-elements/{se.element_id}/mode", json={"target_mode": mode})
                assert moved.status_code == 200, moved.text

        failed = cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "client went away"})

        assert failed.status_code == 200, failed.text
        assert failed.json()["status"] == "failed"
        assert "archived" in json.dumps(failed.json()["steps"])
        assert cluster.se_client.get(f"/files/{file_id}").status_code == 200
        assert _catalog(admin, file_id) == []
    finally:
        cluster.close()


def test_a_batch_answers_each_saga_as_the_single_calls_would(cluster: Cluster, infra: Infra):
    first, second, mismatched = (str(uuid.uuid4()) for _ in range(3))
    element = cluster.se.element_id
    keyed = {
        "type": "upload",
        "file_id": str(uuid.uuid4()),
        "storage_element_id": element,
        "idempotency_key": "k1",
    }
    started = cluster.api.post(
        "/sagas/batch",
        json={
            "start": [
                {"type": "upload", "file_id": first, "storage_element_id": element},
                {"type": "upload", "file_id": second, "storage_element_id": element},
                {"type": "upload", "file_id": mismatched, "storage_element_id": element},
                {"type": "upload", "file_id": str(uuid.uuid4()), "storage_element_id": "se-nowhere"},
                keyed,
                keyed,
            ]
        },
    )
    assert started.status_code == 200, started.text
    results = started.json()["start"]
    assert started.json()["complete"] == []
    assert [r["status"] for r in results] == [201, 201, 201, 422, 201, 200]
    assert "'se-nowhere' is not registered" in results[3]["problem"]["detail"]
    assert results[3]["problem"]["code"] == "VALIDATION_ERROR"
    assert results[4]["saga"]["id"] == results[5]["saga"]["id"]
    sagas = [r["saga"] for r in results[:3]]
    assert [s["file_id"] for s in sagas] == [first, second, mismatched]
    assert all(s["status"] == "started" and s["storage_element_id"] == element for s in sagas)
    assert [s["abandoned_after_seconds"] for s in sagas] == [600] * 3  # the admin's saga timeout
    assert [cluster.saga(s["id"])["steps"][0]["step"] for s in sagas] == ["started"] * 3

    documents = [cluster.upload(s["id"], s["file_id"], f"bytes {i}".encode()) for i, s in enumerate(sagas)]
    events = redis.Redis.from_url(infra.redis_url).pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"{infra.redis_namespace}:catalog:events")
    try:
        # Completions travel with the start of another upload, as the ingester sends them.
        completed = cluster.api.post(
            "/sagas/batch",
            json={
                "start": [{"type": "upload", "file_id": str(uuid.uuid4()), "storage_element_id": element}],
                "complete": [
                    {"saga_id": sagas[0]["id"], "attributes": documents[0], "request_id": "upload-request-1"},
                    {"saga_id": sagas[1]["id"], "attributes": documents[1]},
                ],
            },
        )
        published = [_poll(lambda: events.get_message(timeout=0.5), deadline_seconds=10) for _ in range(2)]
    finally:
        events.close()
    assert completed.status_code == 200, completed.text
    assert [r["status"] for r in completed.json()["start"]] == [201]
    assert [(r["status"], r["saga"]["status"]) for r in completed.json()["complete"]] == [
        (200, "completed")
    ] * 2
    assert all("abandoned_after_seconds" not in r["saga"] for r in completed.json()["complete"])
    steps = [step["step"] for step in cluster.saga(sagas[1]["id"])["steps"]]
    assert steps == ["started", "completed"]

    # A batch holding completions the single path must answer is answered item by item all the same.
    again = cluster.api.post(
        "/sagas/batch",
        json={
            "complete": [
                # The third saga's completion names another file: refused, and that saga stays started.
                {"saga_id": sagas[2]["id"], "attributes": documents[0]},
                {"saga_id": str(uuid.uuid4()), "attributes": documents[0]},
                {"saga_id": sagas[0]["id"], "attributes": documents[0]},
            ],
        },
    )
    assert again.status_code == 200, again.text
    results = again.json()["complete"]
    assert [r["status"] for r in results] == [422, 404, 200]
    assert results[2]["saga"]["status"] == "completed"

    # A second saga naming a file already in the catalog cannot complete, in a batch as alone.
    twin = cluster.start(first).json()["id"]
    unsigned = {k: v for k, v in documents[0].items() if k != "saga_id"}
    refused = cluster.api.post("/sagas/batch", json={"complete": [{"saga_id": twin, "attributes": unsigned}]})
    assert refused.status_code == 200, refused.text
    [result] = refused.json()["complete"]
    assert (result["status"], result["problem"]["code"]) == (409, "CONFLICT")
    assert "already in the catalog" in result["problem"]["detail"]
    assert cluster.saga(twin)["status"] == "started"
    assert f"describe file {first}" in results[0]["problem"]["detail"]
    assert [cluster.saga(s["id"])["status"] for s in sagas] == ["completed", "completed", "started"]
    assert [len(_catalog(cluster.admin, s["file_id"])) for s in sagas] == [1, 1, 0]
    assert json.loads(_catalog(cluster.admin, second)[0]["attributes"]) == documents[1]
    assert sorted(json.loads(m["data"])["file_id"] for m in published if m) == sorted([first, second])
    audited = _audit_records(cluster.admin, "file.uploaded", first)
    assert [record["request_id"] for record in audited] == ["upload-request-1"]
    assert len(_audit_records(cluster.admin, "file.uploaded", second)) == 1
    assert _verify_chain(cluster.admin)


def test_a_batch_refuses_to_complete_an_undone_saga_and_needs_internal(cluster: Cluster):
    file_id = str(uuid.uuid4())
    saga_id = cluster.start(file_id).json()["id"]
    attributes = cluster.upload(saga_id, file_id)
    assert cluster.api.post(f"/sagas/{saga_id}/fail", json={"error": "client went away"}).status_code == 200

    completed = cluster.api.post(
        "/sagas/batch", json={"complete": [{"saga_id": saga_id, "attributes": attributes}]}
    )
    assert completed.status_code == 200, completed.text
    [result] = completed.json()["complete"]
    assert (result["status"], result["problem"]["code"]) == (409, "SAGA_COMPENSATED")
    assert _catalog(cluster.admin, file_id) == []

    with _api(cluster.admin, cluster.admin.token()) as admin_api:  # ADMIN, but not a system account
        body = {
            "start": [{"type": "upload", "file_id": file_id, "storage_element_id": cluster.se.element_id}]
        }
        assert admin_api.post("/sagas/batch", json=body).status_code == 403
    assert cluster.api.post("/sagas/batch", json={"start": [], "complete": []}).status_code == 422
    too_many = {"complete": [{"saga_id": str(uuid.uuid4())}] * 101}
    assert cluster.api.post("/sagas/batch", json=too_many).status_code == 422


def test_batches_keep_the_audit_chain_whole_when_others_append_between_them(cluster: Cluster):
    file_ids, sagas, documents = cluster.started_and_stored(4)

    def complete(pairs: list[int]) -> None:
        body = {"complete": [{"saga_id": sagas[i], "attributes": documents[i]} for i in pairs]}
        response = cluster.api.post("/sagas/batch", json=body)
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["complete"]] == [200] * len(pairs)

    complete([0])
    complete([1])  # right after this admin's own append
    cluster.admin.token()  # a token issued: the chain grew under the admin's feet
    with _api(cluster.admin, cluster.admin.token()) as api:
        created = api.post(
            "/service-accounts", json={"name": f"between-{uuid.uuid4().hex[:6]}", "role": "USER"}
        )
    assert created.status_code == 201, created.text
    complete([2, 3])

    for file_id in file_ids:
        assert len(_catalog(cluster.admin, file_id)) == 1
        assert len(_audit_records(cluster.admin, "file.uploaded", file_id)) == 1
    assert _verify_chain(cluster.admin)


def test_a_batch_undone_by_a_deadlock_answers_each_item_through_the_single_path(cluster: Cluster):
    """The batch takes the audit chain's lock before its sagas' rows, the single path its saga's row first.
    Here another transaction holds a saga's row and then asks for the chain's lock while the batch waits for
    that row: PostgreSQL undoes the batch (it waited first), and its item is completed on the single path."""
    file_id = str(uuid.uuid4())
    saga_id = cluster.start(file_id).json()["id"]
    attributes = cluster.upload(saga_id, file_id)
    admin = cluster.admin

    async def scenario() -> httpx.Response:
        holder = await asyncpg.connect(admin.database_url, server_settings={"search_path": admin.schema})
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM sagas WHERE id = $1 FOR UPDATE", uuid.UUID(saga_id))
                batch = asyncio.ensure_future(
                    asyncio.to_thread(
                        cluster.api.post,
                        "/sagas/batch",
                        json={"complete": [{"saga_id": saga_id, "attributes": attributes}]},
                    )
                )
                # The batch holds the chain's lock and waits for the saga's row (the only lock wait here).
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
                for _ in range(200):
                    if await holder.fetchval(waiting):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the batch never waited for the saga's row")
                await holder.execute(CHAIN_LOCK_SQL)  # granted once PostgreSQL has undone the batch
            return await batch
        finally:
            await holder.close()

    answered = asyncio.run(scenario())
    assert answered.status_code == 200, answered.text
    [result] = answered.json()["complete"]
    assert (result["status"], result["saga"]["status"]) == (200, "completed")
    assert len(_catalog(admin, file_id)) == 1
    assert len(_audit_records(admin, "file.uploaded", file_id)) == 1
    assert _verify_chain(admin)


def test_a_batch_after_another_admin_appended_to_the_audit_chain_keeps_it_whole(
    cluster: Cluster, make_admin: Callable[..., AdminModule]
):
    """A batch chains its audit records on the head its admin's last batch left, without reading it again,
    in one statement. Another admin process appending in between makes that head stale: the statement fails
    on audit_log's primary key, changing nothing, and the batch runs again as a transaction that reads the
    head under the chain's lock, rather than forking the chain."""
    element = cluster.se.element_id
    file_ids = [str(uuid.uuid4()) for _ in range(3)]

    def start_and_complete(start: str, complete: list[tuple[str, str]]) -> dict[str, Any]:
        body = {
            "start": [{"type": "upload", "file_id": start, "storage_element_id": element}],
            "complete": [
                {"saga_id": saga, "attributes": cluster.upload(saga, file_id, file_id.encode())}
                for saga, file_id in complete
            ],
        }
        response = cluster.api.post("/sagas/batch", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert [r["status"] for r in answer["start"]] == [201]
        assert [r["status"] for r in answer["complete"]] == [200] * len(complete)
        return answer

    first = cluster.start(file_ids[0]).json()["id"]
    second = start_and_complete(file_ids[1], [(first, file_ids[0])])["start"][0]["saga"]["id"]
    other = make_admin(schema=cluster.admin.schema, client_secret=cluster.admin.client_secret)
    other.token()  # a token issued there: an audit record this admin does not know of
    third = start_and_complete(file_ids[2], [(second, file_ids[1])])["start"][0]["saga"]["id"]
    start_and_complete(str(uuid.uuid4()), [(third, file_ids[2])])

    def noticed() -> list[str]:  # log lines reach the file within 50 ms (they are written in batches)
        lines = cluster.admin.log_tail(400).splitlines()
        return [line for line in lines if "instead of one statement" in line]

    [line] = _poll(noticed, deadline_seconds=5)  # once: the next batch had the head from this one
    assert "audit_log_pkey" in line  # the stale head
    for file_id in file_ids:
        assert len(_catalog(cluster.admin, file_id)) == 1
        assert len(_audit_records(cluster.admin, "file.uploaded", file_id)) == 1
    assert _verify_chain(cluster.admin)


def test_a_batch_of_starts_and_completions_writes_what_each_item_names(cluster: Cluster):
    """Batches of both kinds after the first run as one statement; each saga started there must name its own
    file and element, and each completion must catalog its own file."""
    element = cluster.se.element_id
    earlier, sagas, documents = cluster.started_and_stored(3)

    for round_ in range(2):  # the first batch may read the chain's head; the next has it from the first
        news = [str(uuid.uuid4()) for _ in range(2 + round_)]
        pick = [0] if round_ == 0 else [1, 2]
        response = cluster.api.post(
            "/sagas/batch",
            json={
                "start": [{"type": "upload", "file_id": f, "storage_element_id": element} for f in news],
                "complete": [{"saga_id": sagas[i], "attributes": documents[i]} for i in pick],
            },
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert [r["status"] for r in answer["start"]] == [201] * len(news)
        assert [r["status"] for r in answer["complete"]] == [200] * len(pick)
        for result, file_id in zip(answer["start"], news, strict=True):
            stored = cluster.saga(result["saga"]["id"])  # as PostgreSQL has it
            assert (stored["file_id"], stored["storage_element_id"], stored["status"]) == (
                file_id,
                element,
                "started",
            )
        for i in pick:
            assert cluster.saga(sagas[i])["status"] == "completed"
            [row] = _catalog(cluster.admin, earlier[i])
            assert str(row["saga_id"]) == sagas[i]
            assert row["sha256"] == documents[i]["sha256"]
    assert _verify_chain(cluster.admin)
