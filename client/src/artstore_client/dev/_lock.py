"""One `dev up` per data directory: a second one would start a second PostgreSQL on the same files."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirInUse(Exception):
    pass


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def acquire(self) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise DataDirInUse(
                f"another `artstore dev up` (pid {holder}) is using {self.path.parent}; stop it first, "
                "or pass a different --data-dir (and --base-port) to run a second cluster"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the descriptor drops the flock
            self._descriptor = None
