"""One ArtStore service over HTTP: bearer token from the shared cache, one retry after a refused token, waits
and retries when a service says it is busy (429, 503), error replies as ApiError, transport failures as
ServiceUnreachable; and the streamed request bodies of uploads."""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, cast

import httpx

from artstore_client.errors import ApiError, ServiceUnreachable, unreachable
from artstore_client.token import TokenCache

CHUNK_SIZE = 256 * 1024
API_PREFIX = "/api/v1"
Progress = Callable[[int], None]
Total = Callable[[int | None], None]
Source = str | os.PathLike[str] | IO[bytes] | bytes | bytearray | memoryview | Iterable[bytes]


def transfer_timeout(timeout: float) -> httpx.Timeout:
    """Uploads and downloads: bounded connect, pool and per-write waits, but no limit on reading, so that a
    big file (or the fsync after its last byte) never runs into a deadline."""
    return httpx.Timeout(connect=timeout, read=None, write=timeout, pool=timeout)


# A 503 with this code says no storage element can take the file (all full, offline or read-only): a state of
# the cluster that someone has to change, so the caller hears of it at once instead of after the waits.
_NOT_RETRIED_503 = "NO_STORAGE_ELEMENT"


@dataclass(frozen=True)
class RetryPolicy:
    """When a refused request is sent again: after 429 Too Many Requests or 503 Service Unavailable, at most
    `attempts` more times, each after the wait the service's Retry-After asks for (else `backoff` seconds,
    doubled each time, with jitter). A wait longer than `max_wait` is not taken: the error is raised at once.
    `on_wait(wait)` hears of each wait before it starts (the CLI prints a line)."""

    attempts: int = 3
    max_wait: float = 30.0
    backoff: float = 0.5
    on_wait: Callable[[RetryWait], None] | None = None

    def wait_for(self, refusal: ApiError, retry: int) -> float | None:
        """Seconds to wait before retry number `retry` (1-based) of this refusal; None: do not retry."""
        if retry > self.attempts or refusal.status not in (429, 503):
            return None
        if refusal.status == 503 and refusal.code == _NOT_RETRIED_503:
            return None
        if refusal.retry_after is not None:
            wait = float(refusal.retry_after)
        else:
            wait = self.backoff * 2 ** (retry - 1) * random.uniform(1.0, 1.5)
        return wait if wait <= self.max_wait else None


@dataclass(frozen=True)
class RetryWait:
    """One wait before a refused request is sent again: which service refused it and how, how long the
    wait is, and which retry (of at most `attempts`) follows it."""

    service: str
    status: int
    code: str
    seconds: float
    retry: int
    attempts: int


class Service:
    def __init__(
        self,
        name: str,
        url: str,
        tokens: TokenCache | None,
        timeout: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self.http.close()

    def json(self, method: str, path: str, **options: Any) -> Any:
        """A request answered with a JSON document (None for 204)."""
        response = self.send(method, path, **options)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code, "BAD_RESPONSE", f"the {self.name} answered {path} with non-JSON"
            ) from None

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: UploadBody | None = None,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send with the cached token; after a 401 refresh it once and send again, and after 429 or 503 wait
        and send again as the retry policy says, each only when the body can be sent again. An error status
        raises ApiError (its body read even when streaming)."""
        refreshed = False
        retries = 0
        while True:
            token = self.tokens.get() if self.tokens else None
            request_headers = dict(headers or {})
            if token:
                request_headers["Authorization"] = f"Bearer {token}"
            request = self.http.build_request(
                method,
                API_PREFIX + path,
                json=json,
                params=params,
                headers=request_headers,
                content=body.open() if body is not None else None,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise unreachable(exc, service=self.name, url=self.url) from None
            finally:
                if body is not None:
                    body.close()
            replayable = body is None or body.replayable
            if (
                response.status_code == 401
                and not refreshed
                and token
                and self.tokens is not None
                and replayable
            ):
                refreshed = True
                response.close()
                self.tokens.refresh(token)
                if body is not None:
                    body.rewind()
                continue
            if response.is_error:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise unreachable(exc, service=self.name, url=self.url) from None
                finally:
                    response.close()
                refusal = ApiError.from_response(response)
                wait = self.retry.wait_for(refusal, retries + 1) if replayable else None
                if wait is None:
                    raise refusal
                retries += 1
                self._wait(refusal, wait, retries)
                if body is not None:
                    body.rewind()
                continue
            return response

    def _wait(self, refusal: ApiError, seconds: float, retry: int) -> None:
        if self.retry.on_wait is not None:
            self.retry.on_wait(
                RetryWait(self.name, refusal.status, refusal.code, seconds, retry, self.retry.attempts)
            )
        time.sleep(seconds)

    @contextmanager
    def streamed(self, method: str, path: str, **options: Any) -> Iterator[httpx.Response]:
        response = self.send(method, path, stream=True, **options)
        try:
            yield response
        finally:
            response.close()

    def broken(self, exc: httpx.TransportError) -> ServiceUnreachable:
        return unreachable(exc, service=self.name, url=self.url)


def receive(
    service: Service, path: str, sink: IO[bytes], *, progress: Progress | None, total: Total | None, size: int
) -> tuple[str, str | None]:
    """Stream a GET into `sink`: the SHA-256 of what arrived and the ETag's (a quoted sha256) if any. The
    client's read timeout bounds each wait for the next bytes, never the whole transfer."""
    digest = hashlib.sha256()
    with service.streamed("GET", path) as reply:
        length = reply.headers.get("content-length")
        if total is not None:
            total(int(length) if length and length.isdigit() else size)
        try:
            for chunk in reply.iter_bytes(CHUNK_SIZE):
                digest.update(chunk)
                sink.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        except httpx.TransportError as exc:
            raise service.broken(exc) from None
        etag = reply.headers.get("etag", "").removeprefix("W/").strip('"') or None
    return digest.hexdigest(), etag


@contextmanager
def replace_atomically(target: Path) -> Iterator[IO[bytes]]:
    """A file written beside `target`, fsynced and renamed over it when the block ends without an error;
    removed otherwise: `target` holds the old content or the whole new one, never a part."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(partial, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with suppress(OSError):  # the rename itself made durable, where the platform allows
        descriptor = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def jsonable(value: Any) -> Any:
    """Dates as ISO 8601 and any sequence or mapping as JSON lists and objects (search filters)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


def source_size(source: Any) -> int | None:
    """The number of bytes an upload of `source` sends, when it can be known before: paths, bytes and
    seekable file objects (from their current position); None for iterators and pipes."""
    if isinstance(source, str | os.PathLike):
        return os.stat(source).st_size
    if isinstance(source, bytes | bytearray | memoryview):
        return memoryview(source).nbytes
    if _is_file(source) and _seekable(source):
        position = int(source.tell())
        end = int(source.seek(0, io.SEEK_END))
        source.seek(position)
        return max(0, end - position)
    return None


def source_name(source: Any) -> str | None:
    """The file name an upload of `source` gets by default: a path's or an open file's base name."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    name = getattr(source, "name", None) if _is_file(source) else None
    if isinstance(name, str) and name and not name.startswith("<"):
        return Path(name).name
    return None


def _is_file(source: Any) -> bool:
    return callable(getattr(source, "read", None))


def _seekable(source: Any) -> bool:
    try:
        return bool(source.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class UploadBody:
    """A request body streamed from a path, a file object, bytes or an iterator of bytes, in chunks of at most
    CHUNK_SIZE (never the whole source in memory). It hashes what it sends and reports each chunk; a path,
    bytes or a seekable file can be sent again (after a refused token), an iterator or a pipe cannot."""

    def __init__(self, source: Source, progress: Progress | None = None) -> None:
        self._source: Any = cast(Any, source)  # checked below: a path, bytes, a file object or an iterable
        self._progress = progress
        self._iterator: Iterator[bytes] | None = None
        self._start: int | None = None
        self.size = source_size(source)
        self.sent = 0
        self.sha256 = hashlib.sha256()
        if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
            self.replayable = True
        elif _is_file(source):
            self.replayable = _seekable(source)
            self._start = int(self._source.tell()) if self.replayable else None
        elif isinstance(source, Iterable):
            self.replayable = False
        else:
            raise TypeError(
                f"cannot upload a {type(source).__name__}: pass a path, a binary file object, bytes "
                "or an iterable of bytes"
            )

    def open(self) -> Iterator[bytes]:
        self._iterator = self._chunks()
        return self._iterator

    def close(self) -> None:
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()  # closes a path opened by _chunks() even when the send failed midway

    def rewind(self) -> None:
        """Before sending again: the bytes already reported are taken back with one negative progress call."""
        if self.sent and self._progress is not None:
            self._progress(-self.sent)
        self.sent = 0
        self.sha256 = hashlib.sha256()
        if self._start is not None:
            self._source.seek(self._start)

    def _chunks(self) -> Iterator[bytes]:
        source = self._source
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as handle:
                yield from self._counted(_read_chunks(handle))
        elif isinstance(source, bytes | bytearray | memoryview):
            view = memoryview(source).cast("B")
            yield from self._counted(bytes(view[i : i + CHUNK_SIZE]) for i in range(0, len(view), CHUNK_SIZE))
        elif _is_file(source):
            yield from self._counted(_read_chunks(source))
        else:
            yield from self._counted(_checked(source))

    def _counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if not chunk:
                continue
            self.sha256.update(chunk)
            self.sent += len(chunk)
            if self._progress is not None:
                self._progress(len(chunk))
            yield chunk


def _read_chunks(handle: Any) -> Iterator[bytes]:
    while True:
        chunk = handle.read(CHUNK_SIZE)
        if isinstance(chunk, str):
            raise TypeError("the file object is open in text mode; open it in binary mode ('rb')")
        if not chunk:
            return
        yield bytes(chunk)


def _checked(chunks: Iterable[Any]) -> Iterator[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"an upload iterator must yield bytes, not {type(chunk).__name__}")
        # A big chunk from the caller is passed on in pieces, so that progress stays fine-grained.
        view = memoryview(chunk).cast("B")
        for i in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[i : i + CHUNK_SIZE])
