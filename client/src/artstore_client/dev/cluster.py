"""The dev cluster: infrastructure, the admin, the storage elements, the ingester and the query module, and
their shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from artstore_client.credentials import Credentials, write_credentials
from artstore_client.dev._environment import service_environment
from artstore_client.dev._leftovers import stop_leftovers
from artstore_client.dev._lock import DataDirLock
from artstore_client.dev.admin import (
    ADMIN_PACKAGE,
    AdminSecrets,
    AdminSecretsUnreadable,
    admin_command,
    admin_environment,
)
from artstore_client.dev.infra import Infrastructure, start_infrastructure
from artstore_client.dev.ingester import (
    INGESTER_ACCOUNT,
    INGESTER_PACKAGE,
    ingester_command,
    ingester_environment,
)
from artstore_client.dev.layout import DevLayout, StorageElementSpec
from artstore_client.dev.query import QUERY_ACCOUNT, QUERY_PACKAGE, query_command, query_environment
from artstore_client.dev.registration import RegistrationFailed, register_elements
from artstore_client.dev.supervisor import ChildFailed, ManagedProcess
from artstore_client.dev.system_accounts import SystemAccount, SystemAccountFailed, ensure_system_account
from artstore_client.settings import DevSettings
from artstore_client.token import TOKEN_PATH, TokenRequestFailed, fetch_token

_log = logging.getLogger("artstore.dev")
STORAGE_ELEMENT_PACKAGE = "artstore_storage"


class StartupFailed(Exception):
    """The cluster could not start; the message says what failed and where to look."""


@dataclass(frozen=True)
class DevOptions:
    data_dir: Path
    base_port: int = 8000


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As a server binds: a port in TIME_WAIT from our own previous run is free to use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DevCluster:
    def __init__(self, options: DevOptions, settings: DevSettings) -> None:
        self.layout = DevLayout(options.data_dir.resolve(), options.base_port)
        self.settings = settings
        self.admin_secrets: AdminSecrets | None = None
        self.infra: Infrastructure | None = None
        self.admin: ManagedProcess | None = None
        self.elements: list[tuple[StorageElementSpec, ManagedProcess]] = []
        self.ingester: ManagedProcess | None = None
        self.query: ManagedProcess | None = None
        self._lock = DataDirLock(self.layout.lock_file)

    async def start(self, stop: asyncio.Event) -> dict[str, Any] | None:
        """Start everything and return the ready document; None when `stop` was set meanwhile."""
        for package in (ADMIN_PACKAGE, STORAGE_ELEMENT_PACKAGE, INGESTER_PACKAGE, QUERY_PACKAGE):
            if importlib.util.find_spec(package) is None:
                raise StartupFailed(
                    f"the {package} package is not installed: run `make install` in the ArtStore checkout"
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
        try:
            self.admin_secrets = await asyncio.to_thread(
                AdminSecrets.load_or_create, self.layout.admin_secrets
            )
        except AdminSecretsUnreadable as exc:
            raise StartupFailed(str(exc)) from None
        self.infra = await start_infrastructure(self.settings, self.layout)
        if stop.is_set():
            return None
        # The admin first: the elements load its signing keys when they start.
        self.admin = self._admin(self.infra, self.admin_secrets)
        if not await _start_supervised([self.admin], stop):
            return None
        self.elements = [
            (spec, self._storage_element(spec, self.infra)) for spec in self.layout.storage_elements
        ]
        if not await _start_supervised([process for _, process in self.elements], stop):
            return None
        try:
            token = await asyncio.to_thread(fetch_token, self._bootstrap_credentials())
            async with httpx.AsyncClient(timeout=10.0) as http:
                # The ingester and the query module last: they serve once the admin's discovery names at
                # least one element.
                elements = await self._register_elements(http, token)
                admin_url = self.layout.admin_url
                ingester_account = await ensure_system_account(
                    http, admin_url, token, INGESTER_ACCOUNT, self.layout.ingester_account
                )
                query_account = await ensure_system_account(
                    http, admin_url, token, QUERY_ACCOUNT, self.layout.query_account
                )
        except (TokenRequestFailed, RegistrationFailed, SystemAccountFailed, httpx.HTTPError) as exc:
            raise StartupFailed(f"{exc} (logs: {self.layout.logs})") from None
        self.ingester = self._ingester(self.infra, ingester_account)
        self.query = self._query(self.infra, query_account)
        if not await _start_supervised([self.ingester, self.query], stop):
            return None
        document = self._describe(elements)
        await asyncio.to_thread(write_credentials, self.layout.root, document)
        return document

    def _admin(self, infra: Infrastructure, admin_secrets: AdminSecrets) -> ManagedProcess:
        env = admin_environment(
            root=self.layout.root,
            port=self.layout.admin_port,
            url=self.layout.admin_url,
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            admin_secrets=admin_secrets,
        )
        return ManagedProcess(
            "admin",
            admin_command(),
            env,
            self.layout.logs / "admin.log",
            self.layout.admin_url + "/health/ready",
        )

    def _storage_element(self, spec: StorageElementSpec, infra: Infrastructure) -> ManagedProcess:
        env = service_environment(
            "ARTSTORE_SE_",
            self.layout.root,
            {
                "ELEMENT_ID": spec.element_id,
                "DATA_DIR": str(self.layout.element_dir(spec.element_id)),
                "PORT": str(spec.port),
                "MODE": spec.mode,
                "PUBLIC_URL": spec.url,
                "DATABASE_URL": infra.database_url,
                "REDIS_URL": infra.redis_url,
                "REDIS_NAMESPACE": infra.redis_namespace,
                "JWKS_URL": self.layout.admin_url + "/.well-known/jwks.json",
            },
        )
        return ManagedProcess(
            spec.element_id,
            [sys.executable, "-m", STORAGE_ELEMENT_PACKAGE],
            env,
            self.layout.logs / f"{spec.element_id}.log",
            spec.url + "/health/ready",
        )

    def _ingester(self, infra: Infrastructure, account: SystemAccount) -> ManagedProcess:
        env = ingester_environment(
            root=self.layout.root,
            port=self.layout.ingester_port,
            admin_url=self.layout.admin_url,
            account=account,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            discovery_fallback_path=self.layout.ingester_discovery,
        )
        return ManagedProcess(
            "ingester",
            ingester_command(),
            env,
            self.layout.logs / "ingester.log",
            self.layout.ingester_url + "/health/ready",
        )

    def _query(self, infra: Infrastructure, account: SystemAccount) -> ManagedProcess:
        env = query_environment(
            root=self.layout.root,
            port=self.layout.query_port,
            admin_url=self.layout.admin_url,
            account=account,
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            discovery_fallback_path=self.layout.query_discovery,
        )
        return ManagedProcess(
            "query",
            query_command(),
            env,
            self.layout.logs / "query.log",
            self.layout.query_url + "/health/ready",
        )

    def _bootstrap_credentials(self) -> Credentials:
        assert self.admin_secrets is not None
        return Credentials(
            self.layout.admin_url,
            self.admin_secrets.bootstrap_client_id,
            self.admin_secrets.bootstrap_client_secret,
        )

    async def _register_elements(self, http: httpx.AsyncClient, token: str) -> list[dict[str, str]]:
        """Registers the elements and returns them as the ready document lists them."""
        await register_elements(http, self.layout.admin_url, token, [spec for spec, _ in self.elements])
        elements = []
        for spec, _ in self.elements:
            # The persisted mode wins over the configured one (the API may have moved it on).
            response = await http.get(spec.url + "/api/v1/info", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            elements.append({"id": spec.element_id, "url": spec.url, "mode": response.json()["mode"]})
        return elements

    def _describe(self, elements: list[dict[str, str]]) -> dict[str, Any]:
        assert self.infra is not None
        credentials = self._bootstrap_credentials()
        return {
            "admin_url": self.layout.admin_url,
            "token_url": self.layout.admin_url + TOKEN_PATH,
            "jwks_url": self.layout.admin_url + "/.well-known/jwks.json",
            "ingester_url": self.layout.ingester_url,
            "query_url": self.layout.query_url,
            "storage_elements": elements,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "data_dir": str(self.layout.root),
            "logs_dir": str(self.layout.logs),
            **self.infra.describe(),
        }

    async def stop(self) -> None:
        """The ingester and the query module first (they call the elements), then the elements, then the
        admin (they all verify its tokens), then the servers below."""
        await asyncio.gather(
            *(process.stop() for process in (self.ingester, self.query) if process is not None)
        )
        await asyncio.gather(*(process.stop() for _, process in self.elements))
        if self.admin is not None:
            await self.admin.stop()
        if self.infra is not None:
            await asyncio.to_thread(self.infra.stop)
        self._lock.release()


async def _start_supervised(processes: list[ManagedProcess], stop: asyncio.Event) -> bool:
    """Start the processes and supervise them once all are ready; False when `stop` came first."""
    for process in processes:
        await process.start()
    if not await _unless_stopped(_all_ready(processes), stop):
        return False
    for process in processes:
        process.supervise()
    return True


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
