"""What a stateless service of the cluster (ingester, query module) holds open while it runs: one HTTP client,
Redis, its own service token, the discovery snapshot, the verifier of callers' tokens and a circuit breaker
per storage element."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from artstore_common.auth import JwksVerifier
from artstore_common.breakers import CircuitBreakers
from artstore_common.discovery import DiscoveryClient
from artstore_common.errors import ServiceUnavailable
from artstore_common.health import HealthChecks, redis_probe
from artstore_common.redis import create_redis
from artstore_common.service_token import ServiceToken
from artstore_common.settings import ClusterServiceSettings


@dataclass
class ClusterLinks:
    admin_url: str
    http: httpx.AsyncClient
    redis: Redis | None
    token: ServiceToken
    discovery: DiscoveryClient
    verifier: JwksVerifier
    breakers: CircuitBreakers

    @classmethod
    async def open(cls, settings: ClusterServiceSettings, *, service: str, audience: str) -> ClusterLinks:
        admin_url, client_id, client_secret = settings.cluster_account()
        # Uploads and downloads hold a connection each for as long as they stream: room for many at once.
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=512, max_keepalive_connections=64))
        redis = create_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
        token = ServiceToken(
            http, admin_url, client_id, client_secret, timeout_seconds=settings.admin_timeout_seconds
        )
        discovery = DiscoveryClient(
            redis=redis,
            namespace=settings.redis_namespace,
            fallback_path=settings.discovery_fallback_path,
            admin_url=admin_url,
            token_provider=token,
            http=http,
        )
        verifier = await JwksVerifier.started(
            settings, audience, http, jwks_url=settings.jwks_url or f"{admin_url}/.well-known/jwks.json"
        )
        await discovery.start()
        breakers = CircuitBreakers(
            service,
            failure_threshold=settings.circuit_failure_threshold,
            recovery_seconds=settings.circuit_recovery_seconds,
            probe_seconds=settings.circuit_probe_seconds,
            http=http,
        )
        return cls(admin_url, http, redis, token, discovery, verifier, breakers)

    def add_health_checks(self, health: HealthChecks) -> None:
        async def discovery_ready() -> None:
            if self.discovery.snapshot is None:
                raise ServiceUnavailable("no discovery snapshot yet: no storage element is known")

        health.add("auth", self.verifier.ready)
        health.add("discovery", discovery_ready)
        health.add("redis", redis_probe(self.redis), critical=False)

    async def close(self) -> None:
        await self.breakers.close()
        await self.discovery.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.http.aclose()
