"""Start and stop the registry part of the admin: its services and the loop that polls every element."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from artstore_admin.context import AdminContext
from artstore_admin.elements.client import ElementClient
from artstore_admin.registry.mode_change import ModeChange
from artstore_admin.registry.publisher import DiscoveryPublisher
from artstore_admin.registry.service import RegistryService
from artstore_common.background import running

_log = logging.getLogger("artstore.admin.registry")
_CHANGE_PAUSE_SECONDS = 0.5


async def _poll_forever(registry: RegistryService, interval: float, offline_interval: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        wait = interval
        try:
            if await registry.poll_all():
                # An element that is down is usually restarting: notice its return within a second or so,
                # not a whole interval later, since writers skip it until the snapshot says online.
                wait = min(interval, offline_interval)
        except Exception:
            # A database outage or a bug in one round must not end polling; the next round retries.
            _log.exception("polling the storage elements failed")
        await _refresh_changed_until(registry, started + wait)


async def _refresh_changed_until(registry: RegistryService, deadline: float) -> None:
    """Between rounds, re-read the elements whose files changed, so `se list` shows them soon after."""
    loop = asyncio.get_running_loop()
    while (remaining := deadline - loop.time()) > 0:
        changed = await registry.changed_elements(within=remaining)
        if not changed:
            continue
        try:
            await registry.refresh(changed)
        except Exception:
            _log.exception("refreshing the storage elements %s failed", sorted(changed))
        # Uploads come in bursts: one re-read per element and pause, however many files landed.
        await asyncio.sleep(min(_CHANGE_PAUSE_SECONDS, max(0.0, deadline - loop.time())))


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    settings = ctx.settings
    # Identity is entered first, so the admin's own token issuer exists.
    client = ElementClient(ctx.http, app.state.tokens.internal_token, settings.se_timeout_seconds)
    publisher = DiscoveryPublisher(ctx.engine, ctx.redis, settings.redis_namespace)
    registry = RegistryService(ctx.engine, client, publisher, ctx.audit)
    app.state.registry = registry
    app.state.mode_change = ModeChange(ctx.engine, client, publisher, ctx.audit)
    app.state.discovery_publisher = publisher
    # The first round publishes (the publisher starts pending), so a fresh admin announces at once.
    async with running(
        _poll_forever(registry, settings.se_poll_seconds, settings.se_offline_poll_seconds), "se-poller"
    ):
        yield
