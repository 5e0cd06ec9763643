"""Best-effort Redis announcements: file events and the element's heartbeat (capacity and mode).

Redis being down never fails or slows a request: events are fired in the background, and the periodic
heartbeat republishes the element's full state once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from artstore_common.redis import key

_log = logging.getLogger("artstore.storage.announcer")
_MAX_QUEUED_EVENTS = 10_000


class Announcer:
    def __init__(self, redis: Redis | None, namespace: str, element_id: str, interval: float) -> None:
        self.redis = redis
        self.element_id = element_id
        self.interval = interval
        self.heartbeat_key = key(namespace, "storage-element", element_id)
        self.heartbeat_channel = key(namespace, "storage-elements", "heartbeat")
        self.events_channel = key(namespace, "file-events")
        self.last_heartbeat_ok: bool | None = None
        self._events: list[str] = []
        self._sender: asyncio.Task[None] | None = None

    def file_event(self, event: str, payload: dict[str, Any]) -> None:
        """Queue an event; the events of one moment go out in one pipelined round trip, in order."""
        if self.redis is None or len(self._events) >= _MAX_QUEUED_EVENTS:
            return  # best effort: while Redis does not keep up, drop events rather than grow memory
        self._events.append(
            json.dumps({"event": event, "storage_element_id": self.element_id, **payload}, default=str)
        )
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_events())

    async def _send_events(self) -> None:
        assert self.redis is not None
        while self._events:
            batch, self._events = self._events, []
            # Best effort: a lost event is not sent again (the heartbeat restores capacity and mode).
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self.events_channel, message)
                    await pipe.execute()

    async def beat(self, state: dict[str, Any]) -> bool:
        if self.redis is None:
            return False
        message = json.dumps(state, default=str)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.heartbeat_key, message, ex=max(int(self.interval * 3), 1))
                pipe.publish(self.heartbeat_channel, message)
                await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            if self.last_heartbeat_ok is not False:
                _log.warning("heartbeat to Redis failed, will keep trying: %s", exc)
            self.last_heartbeat_ok = False
            return False
        if self.last_heartbeat_ok is False:
            _log.info("heartbeat to Redis resumed")
        self.last_heartbeat_ok = True
        return True

    async def run(self, state: Callable[[], dict[str, Any]]) -> None:
        while True:
            await self.beat(state())
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self.redis is not None:
            await self.redis.aclose()
