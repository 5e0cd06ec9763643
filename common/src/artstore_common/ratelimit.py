"""Per-account rate limits (DESIGN section 8): one token bucket per service account, shared through Redis.

A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens a second; each request takes one.
Every instance of every service runs the same Lua script on the same key, so an account has one budget
however many processes it talks to. Concurrent requests of one account in one process share a call: the
requests that arrive while a call is on its way take their tokens together in the next one, first come
first served, so a busy account costs Redis a round trip per batch instead of one per request.
Per-account overrides come from the Redis hash that the admin's identity part publishes. Redis is an
optimisation, never a dependency: when it does not answer, each process keeps limiting with a bucket of its
own and tries Redis again after a short back-off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from artstore_common.auth import Principal
from artstore_common.batching import Coalescer
from artstore_common.errors import RateLimited
from artstore_common.redis import key

_log = logging.getLogger("artstore.ratelimit")

# The server's clock, not the callers': instances on different hosts must agree on how much has refilled.
# Takes up to ARGV[4] tokens, one per waiting request; answers how many it took and what is left.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local wanted = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
end
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {granted, tostring(tokens)}
"""

_MAX_LOCAL_ENTRIES = 10_000
_MAX_TAKEN_TOGETHER = 64


@dataclass(frozen=True)
class Limits:
    """A budget: `per_minute` = 0 means unlimited."""

    per_minute: int
    burst: int

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def refill_seconds(self) -> int:
        """How long an empty bucket takes to fill: after that an idle account's key can expire."""
        return math.ceil(self.burst / self.rate) + 1


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limits: Limits
    tokens: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil((1 - self.tokens) / self.limits.rate))

    def headers(self) -> dict[str, str]:
        """IETF RateLimit header fields; Reset is the time until the bucket is full again."""
        reset = max(0, math.ceil((self.limits.burst - self.tokens) / self.limits.rate))
        headers = {
            "RateLimit-Limit": str(self.limits.burst),
            "RateLimit-Remaining": str(max(0, math.floor(self.tokens))),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{self.limits.per_minute};w=60;burst={self.limits.burst}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class _LocalBuckets:
    """The same bucket arithmetic in process memory, for when Redis is out of reach."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, sub: str, limits: Limits) -> Decision:
        now = time.monotonic()
        tokens, at = self._buckets.pop(sub, (float(limits.burst), now))
        tokens = min(float(limits.burst), tokens + max(0.0, now - at) * limits.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[sub] = (tokens, now)
        if len(self._buckets) > _MAX_LOCAL_ENTRIES:
            self._buckets.popitem(last=False)
        return Decision(allowed, limits, tokens)


class RateLimiter:
    """Called by `artstore_common.auth.authenticate` once a token has verified.

    `per_minute` = 0 turns limiting off for the service. Principals holding `exempt_permission` (the
    ingester's and query module's system accounts) are not limited: their calls carry work that was
    already counted against the user who asked for it.
    """

    def __init__(
        self,
        redis: Redis | None,
        namespace: str,
        per_minute: int = 100,
        burst: int = 150,
        *,
        exempt_permission: str | None = "internal",
        redis_timeout_seconds: float = 0.5,
        redis_retry_seconds: float = 5.0,
        overrides_ttl_seconds: float = 5.0,
    ) -> None:
        if per_minute < 0 or burst < 1:
            raise ValueError("rate limits need per_minute >= 0 and burst >= 1")
        self.defaults = Limits(per_minute, burst)
        self.exempt_permission = exempt_permission
        self._redis = redis
        self._namespace = namespace
        self._script = redis.register_script(_TAKE) if redis is not None else None
        self._timeout = redis_timeout_seconds
        self._retry_seconds = redis_retry_seconds
        self._overrides_ttl = overrides_ttl_seconds
        self._overrides: OrderedDict[str, tuple[Limits, float]] = OrderedDict()
        self._local = _LocalBuckets()
        self._takes: OrderedDict[str, Coalescer[Limits, Decision]] = OrderedDict()
        self._redis_down_until = 0.0
        self._degraded = False

    @property
    def enabled(self) -> bool:
        return self.defaults.per_minute > 0

    async def check(self, request: Request, principal: Principal) -> None:
        decision = await self.take(principal)
        if decision is None:
            return
        if not decision.allowed:
            raise RateLimited(
                f"account '{principal.client_id}' sent more than {decision.limits.per_minute} requests a "
                f"minute (bursts up to {decision.limits.burst}); retry in {decision.retry_after} s",
                headers=decision.headers(),
            )
        # The request-context middleware copies these onto the successful response.
        request.state.rate_limit_headers = decision.headers()

    async def take(self, principal: Principal) -> Decision | None:
        """Spend one request of the principal's budget; None when the principal is not limited."""
        if not self.enabled:
            return None
        if self.exempt_permission is not None and principal.has(self.exempt_permission):
            return None
        limits = await self._limits_for(principal.sub)
        if limits.per_minute == 0:
            return None
        if not self._redis_usable():
            return self._local.take(principal.sub, limits)
        return await self._shared_takes(principal.sub).submit(limits)

    def _redis_usable(self) -> bool:
        return self._script is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        self._redis_down_until = time.monotonic() + self._retry_seconds
        if not self._degraded:
            self._degraded = True
            _log.warning(
                "Redis unreachable (%s); rate limits are per process until it answers again",
                exc or type(exc).__name__,
            )

    def _redis_answered(self) -> None:
        if self._degraded:
            self._degraded = False
            _log.info("Redis answers again; rate limits are shared across instances")

    def _shared_takes(self, sub: str) -> Coalescer[Limits, Decision]:
        takes = self._takes.pop(sub, None)
        if takes is None:
            takes = Coalescer(partial(self._take_shared, sub), max_items=_MAX_TAKEN_TOGETHER)
        self._takes[sub] = takes
        if len(self._takes) > _MAX_LOCAL_ENTRIES:
            # A batch still on its way finishes for its callers; only the next calls get a new coalescer.
            self._takes.popitem(last=False)
        return takes

    async def _take_shared(self, sub: str, wanted: list[Limits]) -> list[Decision | Exception]:
        """One token for each of `wanted` (the waiting requests, oldest first) from the shared bucket."""
        limits = wanted[-1]  # the newest view of the account's limits
        if self._script is None or not self._redis_usable():  # Redis failed while these waited
            return [self._local.take(sub, limits) for _ in wanted]
        bucket = key(self._namespace, "ratelimit", "bucket", sub)
        try:
            async with asyncio.timeout(self._timeout):
                granted, tokens = await self._script(
                    keys=[bucket], args=[limits.burst, repr(limits.rate), limits.refill_seconds, len(wanted)]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(exc)
            return [self._local.take(sub, limits) for _ in wanted]
        self._redis_answered()
        taken, left = int(granted), float(tokens)
        # The first `taken` requests got a token each; each sees what was left after its own.
        return [
            Decision(True, limits, left + taken - 1 - i) if i < taken else Decision(False, limits, left)
            for i in range(len(wanted))
        ]

    async def _limits_for(self, sub: str) -> Limits:
        cached = self._overrides.get(sub)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._redis is None or not self._redis_usable():
            return cached[0] if cached is not None else self.defaults
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._redis.hget(key(self._namespace, "ratelimit", "accounts"), sub)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(exc)
            return cached[0] if cached is not None else self.defaults
        limits = self._parse_override(sub, raw)
        self._overrides.pop(sub, None)
        self._overrides[sub] = (limits, now + self._overrides_ttl)
        if len(self._overrides) > _MAX_LOCAL_ENTRIES:
            self._overrides.popitem(last=False)
        return limits

    def _parse_override(self, sub: str, raw: Any) -> Limits:
        if raw is None:
            return self.defaults
        try:
            document = json.loads(raw)
            per_minute = _count(document.get("per_minute"), self.defaults.per_minute, minimum=0)
            # Without a burst of its own, an account keeps the default proportion of burst to rate.
            scaled = math.ceil(per_minute * self.defaults.burst / max(1, self.defaults.per_minute))
            burst = _count(document.get("burst"), max(1, scaled), minimum=1)
        except (ValueError, TypeError, AttributeError) as exc:
            _log.warning("ignoring unusable rate limit override for %s: %s", sub, exc)
            return self.defaults
        return Limits(per_minute, burst)


def _count(value: Any, default: int, *, minimum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"expected a whole number >= {minimum}, got {value!r}")
    return value
