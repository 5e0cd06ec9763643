"""create_app(settings) and the lifespan that builds the admin's engine, Redis, HTTP client and parts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI

from artstore_admin.api import accounts, audit, auth, keys, sagas, storage_elements, wellknown
from artstore_admin.audit.component import component as audit_component
from artstore_admin.audit.log import AuditLog
from artstore_admin.context import AdminContext, Component
from artstore_admin.identity.component import component as identity_component
from artstore_admin.registry.component import component as registry_component
from artstore_admin.sagas.component import component as sagas_component
from artstore_admin.settings import AdminSettings
from artstore_common.database import create_engine
from artstore_common.health import postgres_probe, redis_probe
from artstore_common.migrations import upgrade_to_head
from artstore_common.ratelimit import RateLimiter
from artstore_common.redis import create_redis
from artstore_common.service import build_app

SERVICE = "admin"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_log = logging.getLogger("artstore.admin")

# Identity first: every other part's endpoints verify tokens with the keys it loads.
COMPONENTS: tuple[Component, ...] = (identity_component, audit_component, registry_component, sagas_component)


def _audit_key(settings: AdminSettings) -> bytes:
    if settings.audit_signing_key is not None:
        return settings.audit_signing_key.get_secret_value().encode()
    if settings.key_encryption_key is None:
        raise RuntimeError("ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY is not set (artstore dev up sets it for you)")
    # A key of its own, derived so that the audit HMAC never reuses the encryption key itself.
    material = base64.b64decode(settings.key_encryption_key.get_secret_value())
    return hashlib.sha256(b"artstore-audit-signing\x00" + material).digest()


def create_app(settings: AdminSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            raise RuntimeError("ARTSTORE_ADMIN_DATABASE_URL is not set (artstore dev up sets it for you)")
        database_url = settings.database_url.get_secret_value()
        await asyncio.to_thread(upgrade_to_head, MIGRATIONS, database_url, settings.database_schema)
        engine = create_engine(
            database_url, schema=settings.database_schema, pool_size=settings.database_pool_size
        )
        redis = create_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
        http = httpx.AsyncClient(timeout=settings.se_timeout_seconds)
        ctx = AdminContext(
            settings=settings,
            engine=engine,
            redis=redis,
            http=http,
            audit=AuditLog(engine, _audit_key(settings)),
        )
        app.state.ctx = ctx

        app.state.health.add("postgresql", postgres_probe(engine))
        # Without Redis the admin still issues tokens and answers its API; discovery catches up later.
        app.state.health.add("redis", redis_probe(redis), critical=False)
        app.state.audit = ctx.audit
        app.state.rate_limiter = RateLimiter(
            redis, settings.redis_namespace, settings.rate_limit_per_minute, settings.rate_limit_burst
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                for component in COMPONENTS:
                    await stack.enter_async_context(component(app, ctx))
                _log.info("admin ready", extra={"url": settings.base_url})
                yield
        finally:
            await http.aclose()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = build_app(SERVICE, settings, lifespan)
    app.state.settings = settings
    app.include_router(wellknown.router)
    for module in (auth, accounts, keys, storage_elements, sagas, audit):
        app.include_router(module.router, prefix="/api/v1")
    return app
