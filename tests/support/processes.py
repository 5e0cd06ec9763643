"""Services as real processes: start, wait until ready, kill -9, restart."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from artstore_common.embedded import free_port


@dataclass
class ServiceProcess:
    module: str
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, wait_ready: bool = True, timeout: float = 60) -> ServiceProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.module} not ready within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut for the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()

    def restart(self) -> ServiceProcess:
        self.stop()
        return self.start()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)


@dataclass
class StorageElement(ServiceProcess):
    data_dir: Path = field(default_factory=Path)
    element_id: str = ""
    database_url: str = ""


def storage_element(
    *,
    element_id: str,
    data_dir: Path,
    database_url: str,
    redis_url: str,
    redis_namespace: str,
    jwks_url: str,
    log_dir: Path,
    port: int | None = None,
    **settings: Any,
) -> StorageElement:
    port = port or free_port()
    env = {
        "ARTSTORE_SE_ELEMENT_ID": element_id,
        "ARTSTORE_SE_DATA_DIR": str(data_dir),
        "ARTSTORE_SE_PORT": str(port),
        "ARTSTORE_SE_DATABASE_URL": database_url,
        "ARTSTORE_SE_REDIS_URL": redis_url,
        "ARTSTORE_SE_REDIS_NAMESPACE": redis_namespace,
        "ARTSTORE_SE_JWKS_URL": jwks_url,
        "ARTSTORE_SE_HEARTBEAT_SECONDS": "1",
        "ARTSTORE_SE_JWKS_REFETCH_SECONDS": "1",
    }
    env.update({f"ARTSTORE_SE_{k.upper()}": str(v) for k, v in settings.items()})
    return StorageElement(
        module="artstore_storage",
        env=env,
        log_path=log_dir / f"{element_id}.log",
        port=port,
        data_dir=data_dir,
        element_id=element_id,
        database_url=database_url,
    )


@dataclass
class AdminModule(ServiceProcess):
    client_id: str = "artstore-admin"
    client_secret: str = ""
    database_url: str = ""
    schema: str = "admin"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/v1/auth/token"

    def token(self, client_id: str | None = None, client_secret: str | None = None) -> str:
        """A token by the client-credentials grant (HTTP Basic), for the bootstrap account by default."""
        response = httpx.post(
            self.token_url,
            data={"grant_type": "client_credentials"},
            auth=(client_id or self.client_id, client_secret or self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def admin_module(
    *,
    database_url: str,
    redis_url: str,
    redis_namespace: str,
    log_dir: Path,
    name: str = "admin",
    port: int | None = None,
    schema: str = "admin",
    key_encryption_key: str | None = None,
    client_secret: str | None = None,
    **settings: Any,
) -> AdminModule:
    """An admin process. Two built with the same database, schema and key share one identity store."""
    port = port or free_port()
    secret = client_secret or base64.urlsafe_b64encode(os.urandom(24)).decode()
    env = {
        "ARTSTORE_ADMIN_PORT": str(port),
        "ARTSTORE_ADMIN_DATABASE_URL": database_url,
        "ARTSTORE_ADMIN_DATABASE_SCHEMA": schema,
        "ARTSTORE_ADMIN_REDIS_URL": redis_url,
        "ARTSTORE_ADMIN_REDIS_NAMESPACE": redis_namespace,
        "ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY": key_encryption_key or TEST_KEY_ENCRYPTION_KEY,
        "ARTSTORE_ADMIN_BOOTSTRAP_CLIENT_SECRET": secret,
        "ARTSTORE_ADMIN_SE_POLL_SECONDS": "1",
    }
    env.update({f"ARTSTORE_ADMIN_{k.upper()}": str(v) for k, v in settings.items()})
    return AdminModule(
        module="artstore_admin",
        env=env,
        log_path=log_dir / f"{name}.log",
        port=port,
        client_secret=secret,
        database_url=database_url,
        schema=schema,
    )


# One fixed key for the tests, so admins started one after another can read each other's keys.
TEST_KEY_ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


def _cluster_service(
    module: str,
    prefix: str,
    *,
    admin: AdminModule,
    client_id: str,
    client_secret: str,
    redis_url: str,
    redis_namespace: str,
    log_dir: Path,
    name: str,
    port: int | None,
    settings: dict[str, Any],
) -> ServiceProcess:
    """A stateless service (ingester or query module) that trusts `admin` and acts as the system account given;
    `settings` are more of its variables, by field name."""
    port = port or free_port()
    env = {
        "PORT": str(port),
        "ADMIN_URL": admin.url,
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": redis_namespace,
        "JWKS_REFETCH_SECONDS": "1",
        **{name.upper(): str(value) for name, value in settings.items()},
    }
    return ServiceProcess(
        module=module,
        env={prefix + key: value for key, value in env.items()},
        log_path=log_dir / f"{name}.log",
        port=port,
    )


def ingester_module(
    *,
    admin: AdminModule,
    client_id: str,
    client_secret: str,
    redis_url: str,
    redis_namespace: str,
    log_dir: Path,
    name: str = "ingester",
    port: int | None = None,
    **settings: Any,
) -> ServiceProcess:
    """An ingester that trusts `admin` and acts as the system account given."""
    return _cluster_service(
        "artstore_ingester",
        "ARTSTORE_INGESTER_",
        admin=admin,
        client_id=client_id,
        client_secret=client_secret,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        log_dir=log_dir,
        name=name,
        port=port,
        settings=settings,
    )


def query_module(
    *,
    admin: AdminModule,
    client_id: str,
    client_secret: str,
    redis_url: str,
    redis_namespace: str,
    log_dir: Path,
    name: str = "query",
    port: int | None = None,
    **settings: Any,
) -> ServiceProcess:
    """A query module reading `admin`'s catalog (its database and schema), acting as the system account given."""
    return _cluster_service(
        "artstore_query",
        "ARTSTORE_QUERY_",
        admin=admin,
        client_id=client_id,
        client_secret=client_secret,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        log_dir=log_dir,
        name=name,
        port=port,
        settings={"database_url": admin.database_url, "database_schema": admin.schema, **settings},
    )
