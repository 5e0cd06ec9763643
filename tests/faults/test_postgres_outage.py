"""PostgreSQL goes away under a running element and comes back.

Reads by id need no database (the path derives from the id), so they keep working. A write cannot finish
its index step, so it must answer 503 naming PostgreSQL and roll back everything it wrote. Once the
database is back, the same process takes writes again and reports ready.
"""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest

from tests.faults._polling import eventually
from tests.faults.conftest import DATABASE
from tests.support.files import files_on_disk, put, tmp_entries

pytestmark = pytest.mark.faults


def _readiness(se_url: str) -> tuple[int, dict[str, object]]:
    response = httpx.get(se_url + "/health/ready", timeout=15)
    return response.status_code, response.json()


def test_postgres_outage_keeps_reads_refuses_writes_cleanly_and_heals(own_postgres, make_se, client_for):
    # own_postgres comes first so that it is torn down after the element.
    se = make_se("rw", database_url=f"postgresql://postgres@127.0.0.1:{own_postgres.port}/{DATABASE}")
    client = client_for(se)
    stored: dict[str, tuple[bytes, dict[str, object]]] = {}
    for i in range(3):
        body = hashlib.sha256(str(i).encode()).digest() * (1000 * (i + 1))
        response = put(client, body, filename=f"before-outage-{i}.bin", attributes={"tags": ["outage"]})
        assert response.status_code == 201, response.text
        stored[response.json()["file_id"]] = (body, response.json())

    own_postgres.stop()

    for file_id, (body, attributes) in stored.items():
        content = client.get(f"/files/{file_id}")
        assert content.status_code == 200, content.text
        assert content.content == body
        described = client.get(f"/files/{file_id}/attributes")
        assert described.status_code == 200, described.text
        assert described.json() == attributes

    refused_id = uuid.uuid4()
    before = files_on_disk(se.data_dir)
    refused = put(client, b"x" * 300_000, file_id=refused_id, filename="during-outage.bin")
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 503
    assert "postgresql" in problem["detail"].lower(), problem
    assert "retry-after" in refused.headers
    assert files_on_disk(se.data_dir) == before, "the refused upload left files behind"
    assert tmp_entries(se.data_dir) == []
    assert client.get(f"/files/{refused_id}").status_code == 404

    status, readiness = _readiness(se.url)
    assert status == 503, readiness
    assert readiness["checks"]["postgresql"]["ok"] is False, readiness  # type: ignore[index]

    pid = se.pid
    own_postgres.start()

    def write_succeeds() -> str:
        response = put(client, b"after the outage", filename="after-outage.txt")
        assert response.status_code == 201, f"{response.status_code} {response.text}"
        return str(response.json()["file_id"])

    written = eventually(write_succeeds, within=60, what="a write after PostgreSQL came back")
    assert client.get(f"/files/{written}").content == b"after the outage"
    eventually(
        lambda: _readiness(se.url)[0] == 200, within=30, what="/health/ready after PostgreSQL came back"
    )
    assert se.pid == pid, "the element was restarted"
    assert se.proc is not None
    assert se.proc.poll() is None, "the element exited"
    # Writes that failed while the database came back must not have left anything either.
    on_disk = {path.name.split(".")[0] for path in files_on_disk(se.data_dir)}
    assert on_disk == set(stored) | {written}
    assert tmp_entries(se.data_dir) == []
