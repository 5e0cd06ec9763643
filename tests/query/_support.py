"""Small helpers of the query module's tests."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import redis

from artstore_common.cache import invalidation_channel, metadata_key
from tests.support.cluster import Cluster
from tests.support.processes import ServiceProcess


def upload(
    cluster: Cluster, body: bytes, *, filename: str = "doc.txt", temporary: bool = False, **attributes: Any
) -> dict[str, Any]:
    if temporary:
        attributes["retention"] = {"policy": "temporary"}
    response = cluster.client().post(
        "/files",
        content=body,
        headers={"X-Artstore-Filename": filename, "X-Artstore-Attributes": json.dumps(attributes)},
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def l2_entry(cluster: Cluster, file_id: str) -> dict[str, Any] | None:
    with redis.Redis.from_url(cluster.redis_url, socket_timeout=5) as client:
        raw = client.get(metadata_key(cluster.namespace, file_id))
    return json.loads(raw) if raw else None


def drop_l2(cluster: Cluster, file_id: str) -> None:
    with redis.Redis.from_url(cluster.redis_url, socket_timeout=5) as client:
        client.delete(metadata_key(cluster.namespace, file_id))


def drop_l1(cluster: Cluster, file_id: str) -> int:
    """Publish an invalidation as the admin does, without deleting L2: every query module drops its L1 entry.
    Returns how many subscribers received it."""
    with redis.Redis.from_url(cluster.redis_url, socket_timeout=5) as client:
        return int(client.publish(invalidation_channel(cluster.namespace), json.dumps({"file_id": file_id})))


def cache_reads(process: ServiceProcess) -> dict[str, float]:
    """artstore_query_cache_reads_total by level, from the process's /metrics."""
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    found = re.findall(r'^artstore_query_cache_reads_total\{level="([^"]+)"\} (\S+)$', text, re.MULTILINE)
    return {level: float(value) for level, value in found}


def metric(process: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
