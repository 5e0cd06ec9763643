"""Start and stop the sagas part of the admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from artstore_admin.context import AdminContext


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    yield
