"""Child processes of `dev up`: started, waited for until ready, restarted after a crash, stopped.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only `dev up`, which then stops
the children itself, in order, instead of every process racing to shut down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import httpx

_log = logging.getLogger("artstore.dev")
# A child that stayed up this long before crashing is restarted at once; quicker crashes back off.
_STABLE_SECONDS = 60.0
_MAX_BACKOFF_SECONDS = 30.0
# Longer than a service's own graceful-shutdown limit (30 s by default), so that the service, not a
# SIGKILL from here, decides how long in-flight uploads may take to finish.
_STOP_SECONDS = 35.0


class ChildFailed(Exception):
    """A child exited or never became ready; the message carries the end of its log."""


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        ready_url: str,
        *,
        ready_timeout: float = 120.0,
        stop_timeout: float = _STOP_SECONDS,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.ready_url = ready_url
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    def _open_log(self) -> BinaryIO:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by start()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"---- {stamp} dev up starts {self.name}\n".encode())
        log.flush()
        return log

    async def start(self) -> None:
        log = await asyncio.to_thread(self._open_log)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()  # the child holds its own copy of the descriptor
        self._started_at = time.monotonic()

    async def wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if self._proc.returncode is not None:
                    raise ChildFailed(
                        f"{self.name} exited with status {self._proc.returncode} while starting; "
                        f"the end of {self.log_path}:\n{await asyncio.to_thread(self.log_tail)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.ready_url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ChildFailed(
                        f"{self.name} was not ready within {self.ready_timeout:.0f} s "
                        f"({self.ready_url}); the end of {self.log_path}:\n"
                        f"{await asyncio.to_thread(self.log_tail)}"
                    )
                await asyncio.sleep(0.2)

    def supervise(self) -> None:
        """From now on a crash is reported on stderr and the child is started again."""
        self._watcher = asyncio.create_task(self._watch(), name=f"supervise-{self.name}")
        self._watcher.add_done_callback(self._watch_ended)

    def _watch_ended(self, watcher: asyncio.Task[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is not None:
            _log.error("%s is no longer supervised: %s", self.name, watcher.exception())

    async def _watch(self) -> None:
        crashes_in_a_row = 0
        while not self._stopping.is_set():
            assert self._proc is not None
            status = await self._proc.wait()
            if self._stopping.is_set():
                return
            ran_for = time.monotonic() - self._started_at
            crashes_in_a_row = 0 if ran_for >= _STABLE_SECONDS else crashes_in_a_row + 1
            delay = min(2.0 ** (crashes_in_a_row - 1), _MAX_BACKOFF_SECONDS) if crashes_in_a_row else 0.0
            _log.warning(
                "%s exited with status %s; restarting in %.0f s (log: %s)\n%s",
                self.name, status, delay, self.log_path, await asyncio.to_thread(self.log_tail, 5),
            )  # fmt: skip
            await asyncio.sleep(delay)
            await self.start()
            try:
                await self.wait_ready()
            except ChildFailed as failure:
                _log.warning("%s", failure)
                continue
            _log.info("%s is ready again", self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout)
        except TimeoutError:
            _log.warning("%s did not stop within %.0f s; killing it", self.name, self.stop_timeout)
            proc.kill()
            await proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(handle.tell() - 16384, 0))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])
