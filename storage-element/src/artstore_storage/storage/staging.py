"""An upload in progress: bytes streamed into `tmp/` and hashed as they arrive (the disk agent fsyncs them)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

from artstore_storage.storage._durable import write_all

_HASH_ON_LOOP = 64 * 1024  # bytes; hashing them takes about 40 microseconds


class StagedFile:
    """Collects up to `chunk_bytes`, then writes and hashes them in a worker thread.

    While one buffer is written the next one fills, so receiving never waits for the disk unless the disk
    is slower than the network. At most two buffers exist at a time, whatever the size of the upload, and
    hashlib releases the GIL on large inputs, so hashing does not stall the event loop either.
    """

    def __init__(self, path: str, chunk_bytes: int) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._fd = -1  # opened by the first write, in a worker thread

    def _open(self) -> None:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self.size += len(chunk)
        if self._buffered >= self.chunk_bytes:
            await self._hand_over()

    async def _hand_over(self) -> None:
        if self._in_flight is not None:
            await self._in_flight  # keeps the order of writes and bounds memory to two buffers
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self._write, chunks)

    def _write(self, chunks: list[bytes]) -> None:
        self._open()
        for chunk in chunks:
            self._hash.update(chunk)
            write_all(self._fd, chunk)

    async def drain(self) -> None:
        """Wait for the buffer being written."""
        if self._in_flight is not None:
            await self._in_flight
            self._in_flight = None

    async def finish(self) -> tuple[bytes, str]:
        """The bytes not yet written and the SHA-256 of everything; the file is closed afterwards.

        A small upload never touched the disk: its bytes are hashed here, on the loop (microseconds), and
        returned for the disk agent to write. A larger one writes its last buffer in a worker thread.
        """
        if self._fd < 0 and self._in_flight is None and self._buffered <= _HASH_ON_LOOP:
            tail = b"".join(self._chunks)
            self._chunks, self._buffered = [], 0
            self._hash.update(tail)
            return tail, self._hash.hexdigest()
        await self.drain()
        sha256 = await asyncio.get_running_loop().run_in_executor(None, self._complete_and_close)
        return b"", sha256

    def _complete_and_close(self) -> str:
        """Blocking: write what is buffered, close the file and return the SHA-256 of everything."""
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        self._write(chunks)
        self._open()
        os.close(self._fd)
        self._fd = -1
        return self._hash.hexdigest()

    async def discard(self) -> None:
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                await self._in_flight  # never close the file under a running write
            self._in_flight = None
        await asyncio.to_thread(self._close_and_remove)

    def _close_and_remove(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
