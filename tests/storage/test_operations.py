import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis

from tests.support.files import attr_json, files_on_disk, put, shard


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_expose_requests_latency_bytes_capacity_and_recoveries(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    file_id = put(client, b"m" * 5000).json()["file_id"]
    client.get(f"/files/{file_id}")
    client.get("/info")
    text = httpx.get(se.url + "/metrics").text
    assert (
        _metric(
            text, "artstore_http_requests_total", route="/api/v1/files/{file_id}", method="PUT", status="201"
        )
        == 1
    )
    assert _metric(text, "artstore_http_request_duration_seconds_count", route="/api/v1/files/{file_id}") == 2
    assert _metric(text, "artstore_http_request_bytes_total") >= 5000
    assert _metric(text, "artstore_http_response_bytes_total") >= 5000
    assert _metric(text, "artstore_storage_upload_bytes_total") == 5000
    assert _metric(text, "artstore_storage_download_bytes_total") == 5000
    assert _metric(text, "artstore_storage_capacity_bytes", kind="used") == 5000
    assert _metric(text, "artstore_storage_wal_recoveries_total") == 1
    assert _metric(text, "artstore_storage_wal_rolled_back_total") == 0
    # Where the upload's time went, step by step of the write protocol: each step timed once.
    steps = ("wal_begin", "receive", "place", "index", "wal_commit")
    for step in steps:
        assert _metric(text, "artstore_storage_write_step_seconds_count", step=step) == 1, step
    spent = sum(_metric(text, "artstore_storage_write_step_seconds_sum", step=step) for step in steps)
    took = _metric(text, "artstore_http_request_duration_seconds_sum", method="PUT")
    assert 0 < spent <= took


def test_request_id_is_echoed_or_generated(shared_se, client_for):
    client = client_for(shared_se)
    assert (
        client.get("/info", headers={"X-Request-ID": "trace-me-42"}).headers["x-request-id"] == "trace-me-42"
    )
    generated = client.get("/info").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_health_live_and_ready(shared_se):
    assert httpx.get(shared_se.url + "/health/live").json() == {"status": "alive"}
    ready = httpx.get(shared_se.url + "/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["postgresql"]["ok"] is True
    assert ready.json()["checks"]["redis"]["ok"] is True


def test_patch_changes_attr_json_and_index_and_delete_removes_everything(make_se, client_for):
    se = make_se("edit")
    client = client_for(se)
    file_id = put(client, b"editable", attributes={"tags": ["draft"], "description": "v1"}).json()["file_id"]
    patched = client.patch(f"/files/{file_id}/attributes", json={"tags": ["final"], "metadata": {"rev": 2}})
    assert patched.status_code == 200
    on_disk = attr_json(se.data_dir, file_id)
    assert on_disk["tags"] == ["final"]
    assert on_disk["metadata"] == {"rev": 2}
    assert on_disk["description"] == "v1"
    assert on_disk["updated_at"] > on_disk["created_at"]
    listed = client.get("/files").json()["items"]
    assert listed == [on_disk]

    assert client.delete(f"/files/{file_id}").status_code == 200
    assert files_on_disk(se.data_dir) == []
    assert client.get(f"/files/{file_id}").status_code == 404
    assert client.delete(f"/files/{file_id}").status_code == 404
    assert client.get("/files").json()["items"] == []
    assert client.get("/info").json()["capacity"]["used"] == 0


def test_listing_pages_with_an_opaque_cursor(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    ids = {put(client, f"{i}".encode()).json()["file_id"] for i in range(7)}
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/files", params=params).json()
        seen += [item["file_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7
    assert client.get("/files", params={"cursor": "!!!"}).status_code == 400
    assert client.get("/files", params={"limit": 0}).status_code == 422


def test_compensate_removes_what_a_saga_stored_and_is_idempotent(make_se, client_for):
    se = make_se("rw")  # compensation undoes an unfinished upload even where users cannot delete
    client = client_for(se)
    saga = f"saga-{uuid.uuid4().hex}"
    mine = put(client, b"saga bytes", headers={"X-Saga-Id": saga}).json()
    other = put(client, b"someone else's", headers={"X-Saga-Id": "other-saga"}).json()
    assert mine["saga_id"] == saga

    first = client.post(f"/transactions/{saga}/compensate")
    assert first.status_code == 200
    assert first.json()["removed_files"] == [mine["file_id"]]
    assert client.get(f"/files/{mine['file_id']}").status_code == 404
    assert not (shard(se.data_dir, mine["file_id"]) / f"{mine['file_id']}.bin").exists()
    assert client.get(f"/files/{other['file_id']}").status_code == 200

    again = client.post(f"/transactions/{saga}/compensate")
    assert again.status_code == 200
    assert again.json()["removed_files"] == []
    late = put(client, b"late retry of the same saga", headers={"X-Saga-Id": saga})
    assert late.status_code == 409  # a compensated saga cannot store anything afterwards


def test_wal_is_compacted_and_does_not_grow_without_bound(make_se, client_for):
    se = make_se("edit", wal_segment_bytes=4096)
    client = client_for(se)
    for i in range(150):
        file_id = put(client, f"{i}".encode()).json()["file_id"]
        if i % 3 == 0:
            client.patch(f"/files/{file_id}/attributes", json={"description": "x"})
        if i % 5 == 0:
            client.delete(f"/files/{file_id}")
    segments = list((se.data_dir / "wal").iterdir())
    assert 1 <= len(segments) <= 2, [s.name for s in segments]
    assert sum(s.stat().st_size for s in segments) < 2 * 4096 + 1024


def test_logs_are_json_lines_carrying_the_request_id(make_se, client_for):
    import json

    se = make_se("rw")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    client_for(se).get("/info", headers={"X-Request-ID": "log-me-7", "traceparent": traceparent})
    se.stop()
    lines = [json.loads(line) for line in se.log_path.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "log-me-7"]
    assert access, "no log line carries the request id"
    assert access[0]["service"] == "storage-element"
    assert access[0]["status"] == 200
    assert access[0]["trace_id"] == trace_id  # W3C trace context is picked up from the request
    assert all("level" in line and "message" in line for line in lines)


def test_a_kill_mid_upload_is_rolled_back_and_counted_by_recovery(make_se, client_for, admin_token):
    import socket
    import time

    se = make_se("rw")
    file_id = str(uuid.uuid4())
    with socket.create_connection(("127.0.0.1", se.port)) as sock:
        sock.sendall(
            f"PUT /api/v1/files/{file_id} HTTP/1.1\r\nHost: se\r\nAuthorization: Bearer {admin_token}\r\n"
            "X-Artstore-Filename: half.bin\r\nContent-Length: 1000000\r\n\r\n".encode()
            + b"x" * 300_000
        )
        deadline = time.monotonic() + 30
        while not any(file_id.encode() in seg.read_bytes() for seg in (se.data_dir / "wal").iterdir()):
            assert time.monotonic() < deadline, "the upload's intent never reached the WAL"
            time.sleep(0.05)
        se.kill()
    se.start()
    text = httpx.get(se.url + "/metrics").text
    assert _metric(text, "artstore_storage_wal_recoveries_total") == 1
    assert _metric(text, "artstore_storage_wal_rolled_back_total") == 1
    assert client_for(se).get(f"/files/{file_id}").status_code == 404
    assert files_on_disk(se.data_dir) == []
    assert list((se.data_dir / "tmp").iterdir()) == []


def test_every_change_is_announced_on_the_file_events_channel_in_order(make_se, client_for, infra):
    se = make_se("edit")
    client = client_for(se)
    listener = redis.Redis.from_url(infra.redis_url, socket_timeout=5)
    subscription = listener.pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(f"{infra.redis_namespace}:file-events")
    try:
        # Uploads in flight together, so that events of one moment share a pipelined publish.
        bodies = [f"announced {i}".encode() * (i + 1) for i in range(24)]
        with ThreadPoolExecutor(8) as pool:
            created = list(pool.map(lambda body: put(client, body).json(), bodies))
        changed = created[0]["file_id"]
        assert client.patch(f"/files/{changed}/attributes", json={"tags": ["x"]}).status_code == 200
        assert client.delete(f"/files/{changed}").status_code == 200

        events: list[dict[str, object]] = []
        deadline = time.monotonic() + 10
        while len(events) < len(bodies) + 2 and time.monotonic() < deadline:
            message = subscription.get_message(timeout=1)
            if message is not None:
                events.append(json.loads(message["data"]))
    finally:
        subscription.close()
        listener.close()

    assert all(event["storage_element_id"] == se.element_id for event in events)
    sizes = {event["file_id"]: event["size_bytes"] for event in events if event["event"] == "created"}
    assert sizes == {attrs["file_id"]: attrs["size_bytes"] for attrs in created}
    about_changed = [event["event"] for event in events if event["file_id"] == changed]
    assert about_changed == ["created", "updated", "deleted"]
    assert len(events) == len(bodies) + 2
