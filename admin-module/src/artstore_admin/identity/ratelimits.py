"""Per-account rate limits published to Redis, where the shared limiter in common reads them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from artstore_common.redis import key

_log = logging.getLogger("artstore.admin.identity")


class RateLimitPublisher:
    """Hash `<ns>:ratelimit:accounts`: field = account id (a token's sub), value {"per_minute", "burst"}.

    Best effort: when Redis is down the limiter keeps the last values it saw, and the next start (or the next
    change of that account) republishes.
    """

    def __init__(self, redis: Redis | None, namespace: str, *, per_minute: int, burst: int) -> None:
        self._redis = redis
        self._key = key(namespace, "ratelimit", "accounts")
        self._default_per_minute = per_minute
        self._default_burst = burst

    def _value(self, per_minute: int | None, burst: int | None) -> str | None:
        if per_minute is None and burst is None:
            return None
        return json.dumps(
            {"per_minute": per_minute or self._default_per_minute, "burst": burst or self._default_burst}
        )

    async def publish(self, account_id: str, per_minute: int | None, burst: int | None) -> None:
        if self._redis is None:
            return
        value = self._value(per_minute, burst)
        try:
            if value is None:
                await self._redis.hdel(self._key, account_id)
            else:
                await self._redis.hset(self._key, account_id, value)
        except (RedisError, OSError) as exc:
            _log.warning("could not publish the rate limit of account %s: %s", account_id, exc)

    async def publish_all(self, limits: Iterable[tuple[str, int | None, int | None]]) -> None:
        if self._redis is None:
            return
        values: dict[Any, Any] = {
            account: v for account, m, b in limits if (v := self._value(m, b)) is not None
        }
        try:
            # One MULTI: the limiter never sees the hash empty between the delete and the refill.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                if values:
                    pipe.hset(self._key, mapping=values)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            _log.warning("could not publish the accounts' rate limits: %s", exc)
