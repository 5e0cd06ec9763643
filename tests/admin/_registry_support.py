"""Helpers shared by the registry and discovery tests: an admin with its own Redis namespace, API calls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import redis

from artstore_common.discovery import discovery_key
from tests.support.infra import own_namespace as infra_namespace

T = TypeVar("T")
QUOTA = 10**9  # a fixed quota keeps free space steady, so only real changes move the snapshot


def own_namespace() -> str:
    # Every admin publishes at the discovery key of its namespace; one per test keeps versions comparable.
    return infra_namespace("disc")


def api(admin: Any) -> httpx.Client:
    return httpx.Client(
        base_url=f"{admin.url}/api/v1", headers={"Authorization": f"Bearer {admin.token()}"}, timeout=30
    )


def register(client: httpx.Client, se: Any, **fields: Any) -> dict[str, Any]:
    response = client.post("/storage-elements", json={"url": se.url, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def snapshot(redis_url: str, namespace: str) -> dict[str, Any] | None:
    with redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) as probe:
        raw = probe.get(discovery_key(namespace))
    return json.loads(raw) if raw else None


def entry(document: dict[str, Any] | None, element_id: str) -> dict[str, Any] | None:
    for item in (document or {}).get("storage_elements", []):
        if item["id"] == element_id:
            return dict(item)
    return None


def eventually(probe: Callable[[], T | None], *, within: float, what: str, every: float = 0.1) -> T:
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s; last outcome: {result!r}")
        time.sleep(every)
