"""`artstore dev up` as a real process: started, read once it is ready, stopped, and checked for leftovers."""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import psutil

from artstore_common.embedded import EmbeddedPostgres
from tests.support.cli import ARTSTORE

# What dev up names the system accounts it makes for its ingester and its query module (the README says so).
INGESTER_ACCOUNT_PREFIX = "dev-ingester-"
QUERY_ACCOUNT_PREFIX = "dev-query-"


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A base port N with N..N+30 free: the admin, the elements, the ingester and the query module's.

    Below the kernel's ephemeral range, which the client side of every outgoing connection draws from:
    a port free when probed there may be taken by one before dev up binds it (seen: se-edit's, while
    `make run` was starting the embedded servers)."""
    for _ in range(200):
        base = random.randrange(10000, _ephemeral_low() - 31, 40)
        if all(_port_is_free(base + offset) for offset in range(31)):
            return base
    raise RuntimeError("no free range of 31 ports found")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class DevUp:
    data_dir: Path
    base_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    name: str = "dev-up"
    trailing_stdout: bytes = b""  # what it printed after the ready line, read once it has exited
    ready: dict[str, Any] = field(default_factory=dict)
    _stderr: IO[bytes] | None = None

    @property
    def stderr_path(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.{self.name}.stderr.log")

    def start(self, timeout: float = 120) -> dict[str, Any]:
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in wait()
        command = [ARTSTORE, "dev", "up", "--json", "--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(
            [*command, "--base-port", str(self.base_port)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        line = self._read_line(timeout)
        self.ready = json.loads(line)
        return self.ready

    def _read_line(self, timeout: float) -> bytes:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"dev up printed nothing within {timeout:.0f} s:\n{self.stderr_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"dev up exited with {self.proc.wait()} before it was ready:\n{self.stderr_tail()}"
            )
        return line

    def stderr_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.pid).children(recursive=True)

    def element_process(self, element_id: str) -> psutil.Process:
        return self._child(lambda environ: environ.get("ARTSTORE_SE_ELEMENT_ID") == element_id, element_id)

    def query_process(self) -> psutil.Process:
        return self._child(lambda environ: "ARTSTORE_QUERY_PORT" in environ, "the query module")

    def service_process(self, service: str) -> psutil.Process:
        """The process of `admin`, `ingester`, `query` or a storage element (by its id)."""
        if service.startswith("se-"):
            return self.element_process(service)
        variable = f"ARTSTORE_{service.upper()}_PORT"
        return self._child(lambda environ: variable in environ, service)

    def service_url(self, service: str) -> str:
        if service.startswith("se-"):
            return self.element_url(service)
        return str(self.ready[f"{service}_url"])

    def _child(self, matches: Callable[[dict[str, str]], bool], what: str) -> psutil.Process:
        # Direct children only: an element's disk agent inherits the element's environment.
        for child in psutil.Process(self.pid).children():
            try:
                if matches(child.environ()):
                    return child
            except psutil.NoSuchProcess:
                continue
        raise LookupError(f"no process of {what} under dev up")

    def postgres_pid(self) -> int | None:
        pid_file = self.data_dir / "postgres" / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def terminate(self, timeout: float = 90) -> int:
        """SIGTERM, as a service manager sends it; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        status = self.proc.wait(timeout)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            # Without blocking: after a kill -9 its orphans may still hold the pipe open.
            os.set_blocking(self.proc.stdout.fileno(), False)
            self.trailing_stdout = self.proc.stdout.read() or b""
            self.proc.stdout.close()
        return status

    def token(self) -> str:
        result = subprocess.run(
            [ARTSTORE, "token", "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=True,
        )
        return result.stdout.decode().strip()

    def client(self, url: str, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return httpx.Client(base_url=url + "/api/v1", headers=headers, timeout=30)

    def element_url(self, element_id: str) -> str:
        return next(se["url"] for se in self.ready["storage_elements"] if se["id"] == element_id)

    @property
    def ingester_account_file(self) -> Path:
        return self.data_dir / "ingester" / "account.json"

    @property
    def query_account_file(self) -> Path:
        return self.data_dir / "query" / "account.json"

    def upload(self, content: bytes, filename: str, token: str | None = None) -> httpx.Response:
        """A raw-body upload through the cluster's ingester."""
        with self.client(self.ready["ingester_url"], token) as client:
            return client.post(
                "/files",
                content=content,
                headers={"X-Artstore-Filename": filename, "Content-Type": "text/plain"},
            )

    def search(self, filters: dict[str, Any], token: str | None = None) -> httpx.Response:
        """A search through the cluster's query module."""
        with self.client(self.ready["query_url"], token) as client:
            return client.post("/search", json=filters)

    def ingester_accounts(self) -> list[str]:
        """Names of the live accounts dev up made for an ingester."""
        return [account["name"] for account in self.system_accounts(INGESTER_ACCOUNT_PREFIX)]

    def query_accounts(self) -> list[str]:
        """Names of the live accounts dev up made for a query module."""
        return [account["name"] for account in self.system_accounts(QUERY_ACCOUNT_PREFIX)]

    def system_accounts(self, prefix: str) -> list[dict[str, Any]]:
        """The live accounts whose names start with `prefix`, as the admin lists them."""
        with self.client(self.ready["admin_url"]) as client:
            listed = client.get("/service-accounts")
        listed.raise_for_status()
        return [account for account in listed.json()["items"] if account["name"].startswith(prefix)]

    def ports(self) -> list[int]:
        """Every port the cluster listened on, the embedded servers' included."""
        services = (self.ready["admin_url"], self.ready["ingester_url"], self.ready["query_url"])
        ports = [int(urlsplit(url).port or 0) for url in services]
        ports += [int(urlsplit(se["url"]).port or 0) for se in self.ready["storage_elements"]]
        for server in ("database", "redis"):
            if self.ready[server]["embedded"]:
                ports.append(int(urlsplit(self.ready[server]["url"]).port or 0))
        return ports

    def cleanup(self) -> None:
        """After a failed test: leave nothing running, whatever state dev up is in."""
        if self.proc is not None and self.proc.poll() is None:
            leftovers = self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait(60)
            except subprocess.TimeoutExpired:
                for process in [*leftovers, psutil.Process(self.pid)]:
                    if process.is_running():
                        process.kill()
                self.wait(10)
                # Killed, dev up could not stop its embedded PostgreSQL (a daemon, not its child).
                if self.postgres_pid() is not None:
                    EmbeddedPostgres(self.data_dir / "postgres").stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still running (a zombie counts as gone)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            continue
    return running


def wait_until(probe: Any, *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {within:.0f} s (last: {last!r})")
