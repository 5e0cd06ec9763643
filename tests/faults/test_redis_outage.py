"""Redis goes away under a running element and comes back.

Redis only carries announcements (file events, the heartbeat), so its outage must not fail or block any
upload or download, and the heartbeat must reappear on its own once Redis is back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.faults._polling import eventually
from tests.support.files import put

pytestmark = pytest.mark.faults


def _heartbeat(url: str, key: str) -> dict[str, Any] | None:
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as probe:
        raw = probe.get(key)
    return json.loads(raw) if raw else None


def test_redis_outage_keeps_uploads_and_downloads_and_heartbeat_returns(
    own_redis, make_se, client_for, infra
):
    # own_redis comes first so that it is torn down after the element.
    se = make_se("rw", redis_url=own_redis.url, heartbeat_seconds=1)
    key = f"{infra.redis_namespace}:storage-element:{se.element_id}"
    state = eventually(lambda: _heartbeat(own_redis.url, key), within=20, what=f"heartbeat key {key}")
    assert state["id"] == se.element_id

    own_redis.stop()

    client = client_for(se)
    for i in range(5):
        body = f"written while Redis is down ({i})".encode() * 1000
        created = put(client, body, filename=f"no-redis-{i}.txt")
        assert created.status_code == 201, created.text
        downloaded = client.get(f"/files/{created.json()['file_id']}")
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == body

    pid = se.pid
    own_redis.start()  # same port; a fresh server, so the key is gone until the element beats again

    state = eventually(
        lambda: _heartbeat(own_redis.url, key), within=30, what="heartbeat key after Redis returned"
    )
    assert state["id"] == se.element_id
    assert state["file_count"] == 5, state
    assert se.pid == pid, "the element was restarted"
    assert se.proc is not None
    assert se.proc.poll() is None, "the element exited"
