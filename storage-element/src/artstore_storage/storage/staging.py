"""An upload in progress: bytes streamed into `tmp/`, hashed as they arrive, fsynced at the end."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path


class StagedFile:
    """Buffers up to `chunk_bytes` and writes + hashes each buffer in a worker thread.

    Memory is bounded by one buffer whatever the size of the upload; hashlib releases the GIL on large
    buffers, so hashing does not stall the event loop either.
    """

    def __init__(self, path: Path, chunk_bytes: int) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        self.size += len(chunk)
        if len(self._buffer) >= self.chunk_bytes:
            data, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _finish(self, data: bytes) -> None:
        self._write(data)
        # The data must be on disk before the rename that makes it visible, or a crash could leave a
        # named file whose blocks were never written.
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1

    async def finish(self) -> str:
        """Write what is buffered, fsync, and return the SHA-256 of everything written."""
        data, self._buffer = bytes(self._buffer), bytearray()
        await asyncio.to_thread(self._finish, data)
        return self._hash.hexdigest()

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)
