"""create_app(settings) and the lifespan that connects the ingester to the admin, Redis and discovery."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from artstore_common.cluster_links import ClusterLinks
from artstore_common.ratelimit import RateLimiter
from artstore_common.service import build_app
from artstore_ingester.api import files as files_api
from artstore_ingester.clients.admin import AdminClient
from artstore_ingester.clients.elements import ElementClient
from artstore_ingester.clients.upstream import upstream_session
from artstore_ingester.services.changes import FileChanges
from artstore_ingester.services.reservations import SagaReservations
from artstore_ingester.services.uploads import UploadService
from artstore_ingester.settings import IngesterSettings

SERVICE = "ingester"
_log = logging.getLogger("artstore.ingester")


def create_app(settings: IngesterSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        links = await ClusterLinks.open(settings, service=SERVICE, audience=settings.jwt_audience)
        http, redis, token, discovery = links.http, links.redis, links.token, links.discovery
        admin_url = links.admin_url
        breakers = links.breakers
        upstream = upstream_session(connect_timeout=settings.se_connect_timeout_seconds)
        admin = AdminClient(
            upstream,
            admin_url,
            token,
            timeout=settings.admin_timeout_seconds,
            complete_attempts=settings.complete_attempts,
            batch_size=settings.saga_batch_size,
        )
        elements = ElementClient(
            http,
            upstream,
            token,
            breakers,
            connect_timeout=settings.se_connect_timeout_seconds,
            timeout=settings.se_timeout_seconds,
        )
        app.state.verifier = links.verifier
        app.state.rate_limiter = RateLimiter(
            redis, settings.redis_namespace, settings.rate_limit_per_minute, settings.rate_limit_burst
        )
        reservations = SagaReservations(
            admin, limit=settings.saga_reservations, max_age=settings.saga_reservation_seconds
        )
        uploads = UploadService(
            discovery=discovery,
            admin=admin,
            elements=elements,
            reservations=reservations,
            max_bytes=settings.max_upload_bytes,
            heartbeat_seconds=settings.saga_heartbeat_seconds,
        )
        app.state.uploads = uploads
        app.state.changes = FileChanges(discovery=discovery, admin=admin, elements=elements)
        app.state.discovery = discovery
        app.state.breakers = breakers

        links.add_health_checks(app.state.health)
        _log.info("ingester ready", extra={"admin_url": admin_url})
        try:
            yield
        finally:
            # Sagas started ahead are released, then the admin is given a while to take the reports;
            # the admin's recovery loop would undo both, only later.
            await reservations.close()
            await admin.close()
            await upstream.close()
            await links.close()

    app = build_app(SERVICE, settings, lifespan)
    app.state.settings = settings
    app.include_router(files_api.router)
    return app
