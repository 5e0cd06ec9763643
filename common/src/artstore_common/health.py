"""`/health/live` and `/health/ready` with one named check per dependency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

HealthCheck = Callable[[], Awaitable[None]]


def postgres_probe(engine: AsyncEngine) -> HealthCheck:
    async def probe() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return probe


def redis_probe(redis: Redis | None) -> HealthCheck:
    async def probe() -> None:
        if redis is None:
            raise RuntimeError("no Redis configured")
        await redis.ping()

    return probe


@dataclass
class _Check:
    probe: HealthCheck
    critical: bool


@dataclass
class HealthChecks:
    """Checks raise to report a problem. A failing critical check makes the service not ready."""

    timeout_seconds: float = 2.0
    _checks: dict[str, _Check] = field(default_factory=dict)

    def add(self, name: str, probe: HealthCheck, *, critical: bool = True) -> None:
        self._checks[name] = _Check(probe, critical)

    async def run(self) -> tuple[bool, dict[str, dict[str, object]]]:
        async def one(check: _Check) -> str | None:
            try:
                await asyncio.wait_for(check.probe(), self.timeout_seconds)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return None

        names = list(self._checks)
        outcomes = await asyncio.gather(*(one(self._checks[n]) for n in names))
        report: dict[str, dict[str, object]] = {}
        ready = True
        for name, problem in zip(names, outcomes, strict=True):
            critical = self._checks[name].critical
            report[name] = {"ok": problem is None, "critical": critical}
            if problem is not None:
                report[name]["detail"] = problem
                ready = ready and not critical
        return ready, report


router = APIRouter(tags=["operations"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    checks: HealthChecks = request.app.state.health
    is_ready, report = await checks.run()
    return JSONResponse(
        {"status": "ready" if is_ready else "not_ready", "checks": report},
        status_code=200 if is_ready else 503,
    )
