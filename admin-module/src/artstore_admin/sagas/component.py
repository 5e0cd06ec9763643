"""Start and stop the sagas part of the admin: the saga service and its recovery loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from artstore_admin.context import AdminContext
from artstore_admin.sagas.elements import ElementClient
from artstore_admin.sagas.recovery import SagaRecovery
from artstore_admin.sagas.service import SagaService


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    settings = ctx.settings
    elements = ElementClient(app, ctx.http, settings.se_timeout_seconds)
    sagas = SagaService(ctx, elements)
    app.state.sagas = sagas
    recovery = SagaRecovery(
        ctx.engine,
        sagas,
        timeout_seconds=settings.saga_timeout_seconds,
        interval_seconds=settings.saga_recovery_seconds,
        element_timeout_seconds=settings.se_timeout_seconds,
    )
    task = asyncio.create_task(recovery.run(), name="saga-recovery")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
