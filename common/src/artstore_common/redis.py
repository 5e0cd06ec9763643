"""Redis clients (always `redis.asyncio`) with short timeouts so an outage degrades, never hangs."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
    )


def key(namespace: str, *parts: str) -> str:
    return ":".join((namespace, *parts))
