"""Follows the cache invalidation channel: every message drops one file from L1 (the publisher has already
deleted its L2 key). A gap in the subscription may have lost messages, so a resubscription clears L1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from artstore_common.cache import invalidation_channel
from artstore_common.errors import ServiceUnavailable
from artstore_query.cache.local import LocalCache
from artstore_query.metrics import CACHE_INVALIDATIONS

_log = logging.getLogger("artstore.query.cache")
_RETRY_INITIAL_SECONDS = 0.5
_RETRY_MAX_SECONDS = 5.0


class InvalidationListener:
    def __init__(self, redis: Redis | None, namespace: str, local: LocalCache) -> None:
        self._redis = redis
        self.channel = invalidation_channel(namespace)
        self._local = local
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._redis is not None:
            self._task = asyncio.create_task(self._follow(), name="cache-invalidations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def ready(self) -> None:
        """Health check: without the channel, L1 may serve a changed file for up to its TTL."""
        if self._redis is not None and not self.subscribed.is_set():
            raise ServiceUnavailable("not subscribed to the cache invalidation channel; L1 may be stale")

    def _on_message(self, data: str | bytes) -> None:
        try:
            file_id = str(json.loads(data)["file_id"])
        except (ValueError, KeyError, TypeError):
            _log.warning("ignoring an invalidation message without a file_id: %r", data[:200])
            return
        CACHE_INVALIDATIONS.inc()
        self._local.drop(file_id)

    async def _follow(self) -> None:
        assert self._redis is not None
        delay = _RETRY_INITIAL_SECONDS
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    # Whatever was published while unsubscribed is lost: start over with an empty L1.
                    self._local.clear()
                    self.subscribed.set()
                    delay = _RETRY_INITIAL_SECONDS
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._on_message(message["data"])
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    _log.warning("lost the cache invalidation channel, resubscribing: %s", exc)
                self.subscribed.clear()
            except Exception:
                _log.exception("the invalidation follower failed, resubscribing")
                self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)
