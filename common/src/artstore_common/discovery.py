"""The storage-element discovery snapshot (DESIGN section 5): where it is published and how to follow it.

The admin SETs the newest snapshot at one key and PUBLISHes it on one channel. A `DiscoveryClient` reads
the key at start, follows the channel, and keeps the newest snapshot in memory and in a local file, so an
ingester or query instance keeps working on the last known set of elements while Redis is down, and can
even start then (from the file, else from the admin's HTTP API).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from artstore_common.redis import key

_log = logging.getLogger("artstore.discovery")

DEFAULT_NAMESPACE = "artstore"
SNAPSHOT_FIELDS = (
    "id",
    "name",
    "url",
    "mode",
    "status",
    "priority",
    "capacity_bytes",
    "used_bytes",
    "free_bytes",
    "file_count",
    "last_seen_at",
)

Snapshot = dict[str, Any]
TokenProvider = Callable[[], Awaitable[str]]
ChangeCallback = Callable[[Snapshot], Awaitable[None] | None]


def discovery_key(namespace: str) -> str:
    return key(namespace, "discovery", "storage-elements")


def discovery_channel(namespace: str) -> str:
    # Pub/sub channels ignore the database index, so only a prefix keeps namespaces (test runs) apart;
    # the default namespace keeps DESIGN's bare channel name.
    if namespace == DEFAULT_NAMESPACE:
        return "storage-elements:config"
    return f"{namespace}:storage-elements:config"


def is_snapshot(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("version"), int)
        and isinstance(value.get("storage_elements"), list)
    )


class DiscoveryClient:
    """The newest discovery snapshot, kept current from Redis, with a file and the admin as fallbacks."""

    def __init__(
        self,
        *,
        redis: Redis | None,
        namespace: str = DEFAULT_NAMESPACE,
        fallback_path: Path | None = None,
        admin_url: str | None = None,
        token_provider: TokenProvider | None = None,
        http: httpx.AsyncClient | None = None,
        on_change: ChangeCallback | None = None,
        timeout_seconds: float = 3.0,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 5.0,
    ) -> None:
        self._redis = redis
        self.key = discovery_key(namespace)
        self.channel = discovery_channel(namespace)
        self._fallback_path = fallback_path
        self._admin_url = admin_url.rstrip("/") if admin_url else None
        self._token_provider = token_provider
        self._http = http
        self._own_http = http is None
        self._on_change = on_change
        self._timeout = timeout_seconds
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._snapshot: Snapshot | None = None
        self._write_lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def storage_elements(self) -> list[dict[str, Any]]:
        return list(self._snapshot["storage_elements"]) if self._snapshot else []

    async def start(self) -> None:
        """Load a first snapshot (Redis key, else the file, else the admin) and follow the channel."""
        if not await self._read_key():
            loaded = await self._read_file() or await self.refresh_from_admin()
            if not loaded:
                _log.warning("no discovery snapshot yet: Redis, the fallback file and the admin all failed")
        if self._redis is not None:
            self._follower = asyncio.create_task(self._follow(), name="discovery-follower")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def refresh_from_admin(self) -> bool:
        """Ask the admin's registry directly; its answer carries version 0, so any published one wins."""
        if self._admin_url is None:
            return False
        headers = {}
        if self._token_provider is not None:
            headers["Authorization"] = f"Bearer {await self._token_provider()}"
        if self._http is None:
            self._http = httpx.AsyncClient()
        try:
            response = await self._http.get(
                f"{self._admin_url}/api/v1/storage-elements", headers=headers, timeout=self._timeout
            )
            response.raise_for_status()
            items = response.json()["items"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            _log.warning("cannot read the storage elements from the admin: %s", exc)
            return False
        snapshot = {
            "version": 0,
            "generated_at": datetime.now(UTC).isoformat(),
            "storage_elements": [{f: item.get(f) for f in SNAPSHOT_FIELDS} for item in items],
        }
        return await self.accept(snapshot)

    async def accept(self, snapshot: object) -> bool:
        """Take `snapshot` if it is newer than the one held; persist it and tell the callback."""
        if not is_snapshot(snapshot):
            _log.warning("ignoring a malformed discovery snapshot")
            return False
        assert isinstance(snapshot, dict)
        current = self._snapshot
        if current is not None and snapshot["version"] <= current["version"]:
            return False
        self._snapshot = snapshot
        await self._write_file()
        if self._on_change is not None:
            try:
                outcome = self._on_change(snapshot)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                # The caller's bug must not stop the snapshot from being followed.
                _log.exception("the discovery on_change callback failed")
        return True

    async def _read_key(self) -> bool:
        try:
            return await self._read_key_or_raise()
        except (RedisError, OSError) as exc:
            _log.warning("cannot read the discovery snapshot from Redis: %s", exc)
            return False

    async def _read_key_or_raise(self) -> bool:
        if self._redis is None:
            return False
        raw = await self._redis.get(self.key)
        return raw is not None and await self._accept_raw(raw)

    async def _accept_raw(self, raw: str | bytes) -> bool:
        try:
            return await self.accept(json.loads(raw))
        except ValueError:
            _log.warning("ignoring a discovery snapshot that is not JSON")
            return False

    async def _follow(self) -> None:
        assert self._redis is not None
        delay = self._retry_initial
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    # Whatever was published while we were not subscribed is in the key; a failed read
                    # (a pooled connection that died with the old server) retries the whole reconnect.
                    await self._read_key_or_raise()
                    self.subscribed.set()
                    delay = self._retry_initial
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            await self._accept_raw(message["data"])
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    _log.warning("lost the discovery channel, resubscribing: %s", exc)
                self.subscribed.clear()
            except Exception:
                # Anything else is a bug, but following must not end with it: retry like an outage.
                _log.exception("the discovery follower failed, resubscribing")
                self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _read_file(self) -> bool:
        if self._fallback_path is None:
            return False
        try:
            raw = await asyncio.to_thread(self._fallback_path.read_bytes)
        except FileNotFoundError:
            return False
        except OSError as exc:
            _log.warning("cannot read the discovery fallback file %s: %s", self._fallback_path, exc)
            return False
        return await self._accept_raw(raw)

    async def _write_file(self) -> None:
        if self._fallback_path is None:
            return
        async with self._write_lock:
            # The newest snapshot at the time of writing, so racing writers never leave an older one.
            snapshot = self._snapshot
            try:
                await asyncio.to_thread(_replace_atomically, self._fallback_path, snapshot)
            except OSError as exc:
                _log.warning("cannot write the discovery fallback file %s: %s", self._fallback_path, exc)


def _replace_atomically(path: Path, snapshot: Snapshot | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(json.dumps(snapshot, separators=(",", ":")).encode())
        handle.flush()
        # Durable before the rename, so a crash leaves the old file or the new one, never a torn one.
        os.fsync(handle.fileno())
    tmp.replace(path)
