"""What every ArtStore service shares: the app skeleton and the server runner."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from artstore_common import health, metrics
from artstore_common.errors import install_error_handlers
from artstore_common.logging import configure_logging
from artstore_common.middleware import RequestContextMiddleware
from artstore_common.settings import ServiceSettings
from artstore_common.tracing import setup_tracing

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(
    service: str, settings: ServiceSettings, lifespan: Callable[[FastAPI], AsyncIterator[None]] | Lifespan
) -> FastAPI:
    app = FastAPI(
        title=f"ArtStore {service}",
        version="0.1.0",
        lifespan=lifespan,  # type: ignore[arg-type]
        # FastAPI's own OpenTelemetry middleware stays off: setup_tracing instruments the app when an OTLP
        # endpoint is configured. Left on, it asked OpenTelemetry for a provider (an os.environ lookup)
        # on every request, and would trace each request twice once a provider is set.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.health = health.HealthChecks()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    setup_tracing(app, service, settings.otel_exporter_otlp_endpoint)
    app.add_middleware(RequestContextMiddleware, service=service)
    return app


# Young objects are collected after this many allocations instead of CPython's 700: a collection costs about
# what is alive at that moment (the requests in flight), so rarer ones cost far less in all.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Freeze what exists before serving (modules, classes, schemas, tables: nearly every long-lived object)
    and collect young objects less often.

    Left as it was, each service paused 50-70 ms for a full collection every few seconds under load, every
    request in flight waiting, because a full collection walked all those objects; CPython's young
    collections ran every few uploads. Reference counting still frees almost everything at once; the
    collector is only for reference cycles, which wait a little longer now.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def serve(app: FastAPI, settings: ServiceSettings, service: str) -> None:
    configure_logging(service, settings.log_level)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        server_header=False,
    )


def run(
    settings_class: type[SettingsT], create_app: Callable[[SettingsT], FastAPI], service: str, *, label: str
) -> None:
    """`python -m <package>`: settings from the environment (a clear message and exit 2 when they are
    invalid), then serve."""
    try:
        settings = settings_class()
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        print(f"{label}: invalid settings ({prefix}*):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(create_app(settings), settings, service)
