"""Concurrent requests of one account share calls to the rate-limit bucket in Redis, and the budget stays
exact: a real Redis of the test's own, two limiters standing for two processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from artstore_common.auth import Principal
from artstore_common.embedded import EmbeddedRedis
from artstore_common.ratelimit import Decision, RateLimiter

BURST = 25
PER_PROCESS = 20


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: its command counts are this test's alone."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def _principal(sub: str) -> Principal:
    return Principal(
        sub=sub, client_id="busy", role="USER", permissions=frozenset({"files:write"}), claims={}
    )


async def _script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_concurrent_requests_share_bucket_calls_and_each_token_goes_once(own_redis: EmbeddedRedis):
    async def scenario() -> tuple[list[list[Decision | None]], int]:
        redis = Redis.from_url(own_redis.url)
        # Two limiters on one Redis stand for two processes; the refill (1 a minute) stays below a token.
        limiters = [RateLimiter(redis, "ns", per_minute=1, burst=BURST) for _ in range(2)]
        principal = _principal("account-1")
        before = await _script_calls(redis)
        decided = await asyncio.gather(
            *(asyncio.gather(*(limiter.take(principal) for _ in range(PER_PROCESS))) for limiter in limiters)
        )
        calls = await _script_calls(redis) - before
        await redis.aclose()
        return [list(d) for d in decided], calls

    decided, calls = asyncio.run(scenario())

    decisions = [d for per_process in decided for d in per_process]
    assert all(d is not None for d in decisions)
    allowed = [d for d in decisions if d is not None and d.allowed]
    # Exactly the burst passes across both processes, and no token is handed out twice: each allowed request
    # saw a different count of tokens left after its own.
    assert len(allowed) == BURST
    assert sorted(int(d.tokens) for d in allowed) == list(range(BURST))
    refused = [d for d in decisions if d is not None and not d.allowed]
    assert len(refused) == 2 * PER_PROCESS - BURST
    assert all(d.headers()["RateLimit-Remaining"] == "0" for d in refused)
    assert all(int(d.headers()["Retry-After"]) >= 1 for d in refused)
    # The requests that waited while a call was out took their tokens together.
    assert calls < 2 * PER_PROCESS, f"{calls} calls to Redis for {2 * PER_PROCESS} requests"


def test_one_at_a_time_an_account_spends_its_own_budget_and_others_keep_theirs(
    own_redis: EmbeddedRedis,
):
    async def scenario() -> tuple[list[Decision | None], list[Decision | None]]:
        redis = Redis.from_url(own_redis.url)
        limiter = RateLimiter(redis, "ns", per_minute=1, burst=3)
        busy = [await limiter.take(_principal("busy")) for _ in range(4)]
        other = [await limiter.take(_principal("other")) for _ in range(2)]
        await redis.aclose()
        return busy, other

    busy, other = asyncio.run(scenario())

    assert [d.allowed for d in busy if d is not None] == [True, True, True, False]
    assert [int(d.tokens) for d in busy if d is not None] == [2, 1, 0, 0]
    assert [d.allowed for d in other if d is not None] == [True, True]
