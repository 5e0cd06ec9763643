"""Start and stop the registry part of the admin: its services and the loop that polls every element."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from artstore_admin.context import AdminContext
from artstore_admin.registry.element_client import ElementClient, TokenSource
from artstore_admin.registry.mode_change import ModeChange
from artstore_admin.registry.publisher import DiscoveryPublisher
from artstore_admin.registry.service import RegistryService
from artstore_common.errors import ServiceUnavailable

_log = logging.getLogger("artstore.admin.registry")


def _internal_token(app: FastAPI) -> TokenSource:
    async def token() -> str:
        tokens = getattr(app.state, "tokens", None)
        if tokens is None:
            raise ServiceUnavailable(
                "the admin cannot issue its own token yet; storage elements are unreachable"
            )
        value = tokens.internal_token()
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    return token


async def _poll_forever(registry: RegistryService, interval: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await registry.poll_all()
        except Exception:
            # A database outage or a bug in one round must not end polling; the next round retries.
            _log.exception("polling the storage elements failed")
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    settings = ctx.settings
    client = ElementClient(ctx.http, _internal_token(app), settings.se_timeout_seconds)
    publisher = DiscoveryPublisher(ctx.engine, ctx.redis, settings.redis_namespace)
    registry = RegistryService(ctx.engine, client, publisher, ctx.audit)
    app.state.registry = registry
    app.state.mode_change = ModeChange(ctx.engine, client, publisher, ctx.audit)
    app.state.discovery_publisher = publisher
    # The first round publishes (the publisher starts pending), so a fresh admin announces at once.
    poller = asyncio.create_task(_poll_forever(registry, settings.se_poll_seconds), name="se-poller")
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
