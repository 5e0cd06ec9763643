"""Start and stop the sagas part of the admin: the saga service and its recovery loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from artstore_admin.context import AdminContext
from artstore_admin.elements.client import ElementClient
from artstore_admin.sagas.batches import SagaBatches
from artstore_admin.sagas.recovery import SagaRecovery
from artstore_admin.sagas.service import SagaService
from artstore_common.background import running


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    settings = ctx.settings
    # Identity is entered first, so the admin's own token issuer exists.
    elements = ElementClient(ctx.http, app.state.tokens.internal_token, settings.se_timeout_seconds)
    # The registry component is entered first: a completed upload or delete has its element re-read.
    sagas = SagaService(ctx, elements, app.state.registry.element_changed)
    app.state.sagas = sagas
    app.state.saga_batches = SagaBatches(ctx, sagas, app.state.registry.element_changed)
    recovery = SagaRecovery(
        ctx.engine,
        sagas,
        timeout_seconds=settings.saga_timeout_seconds,
        interval_seconds=settings.saga_recovery_seconds,
        element_timeout_seconds=settings.se_timeout_seconds,
    )
    async with running(recovery.run(), "saga-recovery"):
        yield
