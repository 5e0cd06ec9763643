"""A TCP proxy in front of a service that can alter its answers: a network (or a broken peer) that lies.

Requests pass through byte for byte. Answers are read one at a time (head, then a `Content-Length` body) and
handed to `rewrite` before they go on, so a test can show what a service does when a peer's answer is wrong.
Answers without a `Content-Length` (chunked, or to HEAD) are not supported; the services' JSON answers all
carry one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

Rewrite = Callable[[bytes], bytes]  # an answer's body in, the body to pass on out (the same length)


async def _pump_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _pump_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rewrite: Rewrite) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await reader.readexactly(length)
        changed = rewrite(body)
        if len(changed) != len(body):
            raise ValueError(
                "the rewrite must keep the body's length (Content-Length is passed on as it was)"
            )
        writer.write(head + changed)
        await writer.drain()
    writer.close()


class _Proxy:
    def __init__(self, target: str, rewrite: Rewrite) -> None:
        parts = urlsplit(target)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._rewrite = rewrite
        self._connections: set[asyncio.Task[None]] = set()
        self.errors: list[Exception] = []
        self.url = ""

    async def _serve_one(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        writers = [client_writer]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
            writers.append(upstream_writer)
            await asyncio.gather(
                _pump_requests(client_reader, upstream_writer),
                _pump_answers(upstream_reader, client_writer, self._rewrite),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # either side hung up: the connection ends here, as a real proxy's would
        except ValueError as exc:  # the test's rewrite broke its rule: answering_proxy raises it at the end
            self.errors.append(exc)
        finally:
            self._connections.discard(task)
            for writer in writers:
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _close_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def run(
        self, started: threading.Event, stop: asyncio.Event, loop_box: list[asyncio.AbstractEventLoop]
    ) -> None:
        async def main() -> None:
            loop_box.append(asyncio.get_running_loop())
            server = await asyncio.start_server(self._serve_one, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            started.set()
            async with server:
                await stop.wait()
                await self._close_connections()

        asyncio.run(main())


@contextmanager
def answering_proxy(target: str, rewrite: Rewrite) -> Iterator[str]:
    """A proxy to `target` (a base URL) for the block; yields the proxy's base URL."""
    proxy = _Proxy(target, rewrite)
    started = threading.Event()
    stop = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    thread = threading.Thread(target=proxy.run, args=(started, stop, loops), name="proxy", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the proxy did not start")
    try:
        yield proxy.url
    finally:
        loops[0].call_soon_threadsafe(stop.set)
        thread.join(10)
    if proxy.errors:
        raise proxy.errors[0]
