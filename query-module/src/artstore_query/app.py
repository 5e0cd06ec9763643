"""create_app(settings) and the lifespan that connects the query module to the catalog, Redis and the elements."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from artstore_common.cluster_links import ClusterLinks
from artstore_common.database import create_engine
from artstore_common.health import postgres_probe
from artstore_common.ratelimit import RateLimiter
from artstore_common.service import build_app
from artstore_query.api import elements as elements_api
from artstore_query.api import files as files_api
from artstore_query.api import search as search_api
from artstore_query.cache.invalidation import InvalidationListener
from artstore_query.cache.levels import LocalCache, MetadataReader
from artstore_query.clients.elements import ElementClient
from artstore_query.search.service import SearchService
from artstore_query.settings import QuerySettings

SERVICE = "query"
_log = logging.getLogger("artstore.query")


def create_app(settings: QuerySettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = settings.missing("database_url")
        if missing:
            raise RuntimeError(f"{missing[0]} not set (artstore dev up sets it for you)")
        assert settings.database_url is not None
        links = await ClusterLinks.open(settings, service=SERVICE, audience=settings.jwt_audience)
        engine = create_engine(
            settings.database_url.get_secret_value(),
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
        )
        redis = links.redis
        breakers = links.breakers
        elements = ElementClient(
            links.http,
            links.token,
            breakers,
            links.discovery,
            connect_timeout=settings.se_connect_timeout_seconds,
            timeout=settings.se_timeout_seconds,
        )
        local = LocalCache(settings.l1_max_entries, settings.l1_ttl_seconds)
        invalidations = InvalidationListener(redis, settings.redis_namespace, local)
        app.state.metadata = MetadataReader(
            engine=engine,
            redis=redis,
            namespace=settings.redis_namespace,
            local=local,
            invalidations=invalidations,
            elements=elements,
            l2_ttl_seconds=settings.l2_ttl_seconds,
            l3_ttl_seconds=settings.l3_ttl_seconds,
        )
        app.state.search = SearchService(engine, settings)
        app.state.elements = elements
        app.state.discovery = links.discovery
        app.state.breakers = breakers
        app.state.verifier = links.verifier
        app.state.rate_limiter = RateLimiter(
            redis, settings.redis_namespace, settings.rate_limit_per_minute, settings.rate_limit_burst
        )
        await invalidations.start()

        app.state.health.add("postgresql", postgres_probe(engine))
        links.add_health_checks(app.state.health)
        app.state.health.add("cache_invalidation", invalidations.ready, critical=False)
        _log.info("query module ready", extra={"admin_url": links.admin_url})
        try:
            yield
        finally:
            await invalidations.close()
            await links.close()
            await engine.dispose()

    app = build_app(SERVICE, settings, lifespan)
    app.state.settings = settings
    app.include_router(search_api.router)
    app.include_router(files_api.router)
    app.include_router(elements_api.router)
    return app
