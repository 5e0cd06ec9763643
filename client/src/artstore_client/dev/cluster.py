"""The dev cluster: infrastructure, the admin stand-in, the storage elements, and their shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from artstore_client.credentials import write_credentials
from artstore_client.dev._http_server import InProcessServer, bind
from artstore_client.dev._leftovers import stop_leftovers
from artstore_client.dev._lock import DataDirLock
from artstore_client.dev.admin_standin.app import TOKEN_PATH, create_standin_app
from artstore_client.dev.admin_standin.identity import Identity
from artstore_client.dev.infra import Infrastructure, start_infrastructure
from artstore_client.dev.layout import DevLayout, StorageElementSpec
from artstore_client.dev.supervisor import ChildFailed, ManagedProcess
from artstore_client.settings import DevSettings

_log = logging.getLogger("artstore.dev")
STORAGE_ELEMENT_PACKAGE = "artstore_storage"


class StartupFailed(Exception):
    """The cluster could not start; the message says what failed and where to look."""


@dataclass(frozen=True)
class DevOptions:
    data_dir: Path
    base_port: int = 8000


def _port_is_free(port: int) -> bool:
    try:
        bind(port).close()
    except OSError:
        return False
    return True


class DevCluster:
    def __init__(self, options: DevOptions, settings: DevSettings) -> None:
        self.layout = DevLayout(options.data_dir.resolve(), options.base_port)
        self.settings = settings
        self.identity: Identity | None = None
        self.infra: Infrastructure | None = None
        self.elements: list[tuple[StorageElementSpec, ManagedProcess]] = []
        self._lock = DataDirLock(self.layout.lock_file)
        self._standin: InProcessServer | None = None

    async def start(self, stop: asyncio.Event) -> dict[str, Any] | None:
        """Start everything and return the ready document; None when `stop` was set meanwhile."""
        if importlib.util.find_spec(STORAGE_ELEMENT_PACKAGE) is None:
            raise StartupFailed(
                f"the storage element package ({STORAGE_ELEMENT_PACKAGE}) is not installed: run `make install`"
                " or `pip install -e storage-element` in the ArtStore checkout"
            )
        self.layout.create()
        self._lock.acquire()
        await asyncio.to_thread(stop_leftovers, self.layout.root, self.layout.redis)
        busy = [port for port in self.layout.ports() if not _port_is_free(port)]
        if busy:
            raise StartupFailed(
                f"port(s) {', '.join(map(str, busy))} are in use; stop what listens there or choose "
                "another --base-port"
            )
        self.identity = await asyncio.to_thread(Identity.load_or_create, self.layout.admin_standin)
        self.infra = await start_infrastructure(self.settings, self.layout)
        if stop.is_set():
            return None
        self._standin = InProcessServer(
            create_standin_app(self.identity, self.layout.admin_url), bind(self.layout.admin_port)
        )
        await self._standin.start()
        self.elements = [
            (spec, self._storage_element(spec, self.infra)) for spec in self.layout.storage_elements
        ]
        for _, process in self.elements:
            await process.start()
        if not await _unless_stopped(_all_ready([process for _, process in self.elements]), stop):
            return None
        for _, process in self.elements:
            process.supervise()
        document = await self._ready_document()
        await asyncio.to_thread(write_credentials, self.layout.root, document)
        return document

    def _storage_element(self, spec: StorageElementSpec, infra: Infrastructure) -> ManagedProcess:
        # dev up alone configures its elements: ARTSTORE_SE_* from the shell (say, a schema name) would
        # otherwise apply to both of them at once.
        env = {name: value for name, value in os.environ.items() if not name.startswith("ARTSTORE_SE_")}
        env.update(
            {
                "ARTSTORE_SE_ELEMENT_ID": spec.element_id,
                "ARTSTORE_SE_DATA_DIR": str(self.layout.element_dir(spec.element_id)),
                "ARTSTORE_SE_PORT": str(spec.port),
                "ARTSTORE_SE_MODE": spec.mode,
                "ARTSTORE_SE_PUBLIC_URL": spec.url,
                "ARTSTORE_SE_DATABASE_URL": infra.database_url,
                "ARTSTORE_SE_REDIS_URL": infra.redis_url,
                "ARTSTORE_SE_REDIS_NAMESPACE": infra.redis_namespace,
                "ARTSTORE_SE_JWKS_URL": self.layout.admin_url + "/.well-known/jwks.json",
            }
        )
        return ManagedProcess(
            spec.element_id,
            [sys.executable, "-m", STORAGE_ELEMENT_PACKAGE],
            env,
            self.layout.logs / f"{spec.element_id}.log",
            spec.url + "/health/ready",
        )

    async def _ready_document(self) -> dict[str, Any]:
        assert self.identity is not None
        assert self.infra is not None
        token = self.identity.issue(("storage:read",), lifetime=60)
        elements = []
        async with httpx.AsyncClient(timeout=5.0, headers={"Authorization": f"Bearer {token}"}) as http:
            for spec, _ in self.elements:
                # The persisted mode wins over the configured one (the API may have moved it on).
                response = await http.get(spec.url + "/api/v1/info")
                response.raise_for_status()
                elements.append({"id": spec.element_id, "url": spec.url, "mode": response.json()["mode"]})
        account = self.identity.account
        return {
            "admin_url": self.layout.admin_url,
            "admin_is_dev_standin": True,
            "token_url": self.layout.admin_url + TOKEN_PATH,
            "jwks_url": self.layout.admin_url + "/.well-known/jwks.json",
            "ingester_url": None,
            "query_url": None,
            "storage_elements": elements,
            "client_id": account.client_id,
            "client_secret": account.client_secret,
            "data_dir": str(self.layout.root),
            "logs_dir": str(self.layout.logs),
            **self.infra.describe(),
        }

    async def stop(self) -> None:
        """Children first (they use everything else), then the stand-in, then the servers below."""
        await asyncio.gather(*(process.stop() for _, process in self.elements))
        if self._standin is not None:
            await self._standin.stop()
            self._standin = None
        if self.infra is not None:
            await asyncio.to_thread(self.infra.stop)
        self._lock.release()


async def _all_ready(processes: list[ManagedProcess]) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for process in processes:
                group.create_task(process.wait_ready())
    except* ChildFailed as failed:
        raise StartupFailed("\n".join(str(failure) for failure in failed.exceptions)) from None


async def _unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first; then cancel it and say so."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
