"""create_app(settings) and the lifespan that prepares the element before it serves a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_common.auth import JwksVerifier
from artstore_common.background import running
from artstore_common.database import create_engine
from artstore_common.health import postgres_probe, redis_probe
from artstore_common.migrations import upgrade_to_head
from artstore_common.ratelimit import RateLimiter
from artstore_common.redis import create_redis
from artstore_common.service import build_app
from artstore_storage.api import element as element_api
from artstore_storage.api import files as files_api
from artstore_storage.metrics import WAL_RECOVERIES, WAL_ROLLED_BACK
from artstore_storage.repositories import index
from artstore_storage.services._db import IndexWriter, index_transaction
from artstore_storage.services.announcer import Announcer
from artstore_storage.services.element import ElementService
from artstore_storage.services.files import FileService
from artstore_storage.services.reconcile import Reconciler
from artstore_storage.settings import StorageSettings
from artstore_storage.storage.agent import AgentGone, DiskAgent
from artstore_storage.storage.capacity import Capacity
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.modes import ModeStore, resolve_start_mode
from artstore_storage.storage.recovery import IndexFixes, recover
from artstore_storage.storage.scan import scan
from artstore_storage.storage.wal import WriteAheadLog

SERVICE = "storage-element"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_log = logging.getLogger("artstore.storage")


async def _migrate(settings: StorageSettings, url: str) -> None:
    delay = 0.5
    while True:
        try:
            await asyncio.to_thread(upgrade_to_head, MIGRATIONS, url, settings.schema_name)
            return
        except Exception as exc:  # the database may still be starting; the element cannot serve without it
            _log.warning("index migration failed, retrying in %.1f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def _apply_index_fixes(engine: AsyncEngine, fixes: IndexFixes) -> None:
    async with index_transaction(engine) as connection:
        for file_id, attrs in fixes.items():
            await index.restore(connection, file_id, attrs)


def create_app(settings: StorageSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Streamed writes and hashing of large uploads, reads and rollbacks run in these worker threads (the
        # WAL and the placing of finished uploads in the disk agent below); the default pool (cores + 4)
        # would make large concurrent uploads queue behind each other's writes.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(settings.io_threads, "se-io"))
        if settings.database_url is None:
            raise RuntimeError("ARTSTORE_SE_DATABASE_URL is not set (artstore dev up sets it for you)")
        layout = Layout(settings.data_dir.resolve())
        layout.create()
        lock = await asyncio.to_thread(layout.lock, 30.0)
        mode_store = ModeStore(layout.mode_file)
        persisted = mode_store.load()
        mode = resolve_start_mode(persisted, settings.mode, settings.allow_leave_archive)
        if mode != persisted:
            mode_store.save(mode, "configuration" if persisted else "first start")

        database_url = settings.database_url.get_secret_value()
        await _migrate(settings, database_url)
        engine = create_engine(database_url, schema=settings.schema_name)
        index_writer = IndexWriter(database_url, schema=settings.schema_name)
        await index_writer.start()

        # Recovery runs to the end before the server accepts its first connection.
        report = await asyncio.to_thread(recover, layout)
        await _apply_index_fixes(engine, report.index_fixes)
        agent = DiskAgent(settings.agent_threads, lock)
        agent.start()
        wal = WriteAheadLog(layout.wal, settings.wal_segment_bytes, agent.call_in_log_lane)
        await asyncio.to_thread(wal.start_fresh)
        WAL_RECOVERIES.labels(settings.element_id).inc()
        WAL_ROLLED_BACK.labels(settings.element_id).inc(len(report.rolled_back))
        if report.rolled_back:
            _log.warning("recovery rolled back %d unfinished transaction(s)", len(report.rolled_back))

        servable = (await asyncio.to_thread(scan, layout)).servable
        capacity = Capacity(layout.root, settings.quota_bytes)

        redis = create_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
        announcer = Announcer(
            redis, settings.redis_namespace, settings.element_id, settings.heartbeat_seconds
        )
        files = FileService(
            element_id=settings.element_id,
            layout=layout,
            wal=wal,
            capacity=capacity,
            engine=engine,
            index_writer=index_writer,
            announcer=announcer,
            max_file_size=settings.max_file_size,
            chunk_bytes=settings.write_chunk_bytes,
            agent=agent,
        )
        files.recount(servable)
        files.mode = mode
        element = ElementService(settings, layout, files, announcer)
        http = httpx.AsyncClient(timeout=5.0)
        verifier = await JwksVerifier.started(settings, settings.jwt_audience, http)

        app.state.files = files
        app.state.element = element
        app.state.reconciler = Reconciler(layout, files)
        app.state.verifier = verifier
        app.state.rate_limiter = RateLimiter(
            redis, settings.redis_namespace, settings.rate_limit_per_minute, settings.rate_limit_burst
        )

        app.state.health.add("postgresql", postgres_probe(engine))
        app.state.health.add("redis", redis_probe(redis), critical=False)
        app.state.health.add("auth", verifier.ready)
        app.state.health.add("disk-agent", agent.ready)
        _log.info("storage element ready", extra={"element": settings.element_id, "mode": mode})
        try:
            async with running(announcer.run(element.info), "heartbeat"):
                yield
        finally:
            await announcer.close()
            await http.aclose()
            with contextlib.suppress(AgentGone):  # a dead agent took the log's descriptor with it
                await wal.close()
            await index_writer.close()
            await engine.dispose()
            await agent.stop()

    app = build_app(SERVICE, settings, lifespan)
    app.state.settings = settings
    app.include_router(files_api.router)
    app.include_router(element_api.router)
    return app
