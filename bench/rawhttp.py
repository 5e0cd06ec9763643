"""Bare HTTP/1.1 clients, the cheapest Python has, to find the element's own ceiling.

httpx costs about 2 ms of CPU per small request and needs a full core for about 600 MiB/s of download;
where client and server share two cores, that caps a measurement before the server does. These clients
parse nothing but the header block: a blocking GET that reads into one reused buffer, and a keep-alive
connection on asyncio streams for many small requests.
"""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit

_BUFFER = 4 << 20


class RawHttpError(RuntimeError):
    pass


def get_discard(url: str, headers: dict[str, str], timeout: float = 300.0) -> tuple[float, int]:
    """GET `url` and drop the body; returns (seconds until the last byte, body bytes)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    buffer = bytearray(_BUFFER)
    view = memoryview(buffer)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        started = time.perf_counter()
        sock.sendall(request)
        head = bytearray()
        while b"\r\n\r\n" not in head:
            received = sock.recv_into(view)
            if not received:
                raise RawHttpError("the connection closed before the response headers ended")
            head += view[:received]
        header_block, _, first_body = bytes(head).partition(b"\r\n\r\n")
        status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
        if status_line.split()[1] != "200":
            raise RawHttpError(f"GET {parts.path}: {status_line}")
        fields = {
            name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)
        }
        expected = int(fields["content-length"])
        body = len(first_body)
        while body < expected:
            received = sock.recv_into(view)
            if not received:
                break
            body += received
        seconds = time.perf_counter() - started
    if body != expected:
        raise RawHttpError(f"GET {parts.path}: {body} body bytes, Content-Length said {expected}")
    return seconds, body


class BareConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams; bodies with Content-Length only."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, url: str) -> BareConnection:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                raise RawHttpError(f"{method} {path}: chunked responses are not supported here")
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()
