"""What a client does to the storage element: one large upload, many small ones, one download."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bench.cluster import Target
from bench.payload import LargeStream, SmallFiles
from bench.rawhttp import BareConnection

_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class UnexpectedResponse(RuntimeError):
    pass


def _check(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise UnexpectedResponse(
            f"{what}: HTTP {response.status_code} (wanted {status}): {response.text[:500]}"
        )


def _upload_headers(filename: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Artstore-Filename": filename, "Content-Type": "application/octet-stream", **(extra or {})}


@dataclass(frozen=True)
class Upload:
    file_id: uuid.UUID
    seconds: float


async def upload_stream(target: Target, stream: LargeStream, sha256: str) -> Upload:
    """PUT one body from a generator, with its length and checksum, as the ingester sends a file."""
    file_id = uuid.uuid4()
    headers = _upload_headers(
        "large.bin", {"Content-Length": str(stream.size), "X-Checksum-SHA256": sha256, **target.headers}
    )
    async with httpx.AsyncClient(base_url=target.api_url, timeout=_TIMEOUT) as client:
        started = time.perf_counter()
        response = await client.put(f"/files/{file_id}", content=stream.achunks(), headers=headers)
        seconds = time.perf_counter() - started
    _check(response, 201, "large upload")
    stored = response.json()
    if stored["size_bytes"] != stream.size or stored["sha256"] != sha256:
        raise UnexpectedResponse(
            f"large upload stored {stored['size_bytes']} bytes, sha256 {stored['sha256']}"
        )
    return Upload(file_id, seconds)


async def download(target: Target, file_id: uuid.UUID, expected_size: int) -> float:
    """GET the whole file and drop the bytes; returns the seconds until the last byte arrived."""
    async with httpx.AsyncClient(base_url=target.api_url, timeout=_TIMEOUT, headers=target.headers) as client:
        started = time.perf_counter()
        received = 0
        async with client.stream("GET", f"/files/{file_id}") as response:
            _check(response, 200, "download")
            async for block in response.aiter_raw():
                received += len(block)
        seconds = time.perf_counter() - started
    if received != expected_size:
        raise UnexpectedResponse(f"download returned {received} bytes, expected {expected_size}")
    return seconds


@dataclass(frozen=True)
class SmallUploads:
    seconds: float
    latencies: list[float]
    file_ids: list[uuid.UUID]


async def upload_small(target: Target, files: SmallFiles, concurrency: int) -> SmallUploads:
    """Upload every file once, `concurrency` requests in flight on as many keep-alive connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies = [0.0] * len(files.contents)
    file_ids = [uuid.uuid4() for _ in files.contents]
    headers = _upload_headers("small.bin")
    pending = iter(range(len(files.contents)))

    async with httpx.AsyncClient(
        base_url=target.api_url, timeout=_TIMEOUT, limits=limits, headers=target.headers
    ) as client:

        async def worker() -> None:
            for index in pending:
                started = time.perf_counter()
                response = await client.put(
                    f"/files/{file_ids[index]}", content=files.contents[index], headers=headers
                )
                latencies[index] = time.perf_counter() - started
                _check(response, 201, "small upload")
                if response.json()["sha256"] != files.sha256[index]:
                    raise UnexpectedResponse(f"small upload {index} stored different bytes")

        # Open the connections before the clock starts, so the count measures uploads, not handshakes.
        await asyncio.gather(*(client.get("/files", params={"limit": 1}) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return SmallUploads(seconds, latencies, file_ids)


async def upload_small_bare(target: Target, files: SmallFiles, concurrency: int) -> SmallUploads:
    """The same uploads through bare keep-alive connections, so the client's own cost stays negligible."""
    latencies = [0.0] * len(files.contents)
    file_ids = [uuid.uuid4() for _ in files.contents]
    headers = {**_upload_headers("small.bin"), **target.headers}
    pending = iter(range(len(files.contents)))
    prefix = urlsplit(target.api_url).path
    connections = [await BareConnection.open(target.api_url) for _ in range(concurrency)]

    async def worker(connection: BareConnection) -> None:
        for index in pending:
            started = time.perf_counter()
            status, body = await connection.request(
                "PUT", f"{prefix}/files/{file_ids[index]}", headers, files.contents[index]
            )
            latencies[index] = time.perf_counter() - started
            if status != 201:
                raise UnexpectedResponse(f"small upload: HTTP {status}: {body[:500]!r}")
            if json.loads(body)["sha256"] != files.sha256[index]:
                raise UnexpectedResponse(f"small upload {index} stored different bytes")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return SmallUploads(seconds, latencies, file_ids)
