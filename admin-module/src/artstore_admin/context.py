"""What the admin's parts share, built once by the lifespan in app.py."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.audit.log import AuditLog
from artstore_admin.settings import AdminSettings


@dataclass
class AdminContext:
    settings: AdminSettings
    engine: AsyncEngine
    redis: Redis | None
    http: httpx.AsyncClient
    audit: AuditLog


# A part of the admin (identity, registry, sagas, ...): entered at start in order, left at shutdown in
# reverse. It puts its services on app.state and runs its background loops while entered.
Component = Callable[[FastAPI, AdminContext], AbstractAsyncContextManager[None]]
