"""JSON log lines carrying the request id and trace id of the request being served."""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

_request_id: ContextVar[str | None] = ContextVar("artstore_request_id", default=None)
_trace_id: ContextVar[str | None] = ContextVar("artstore_trace_id", default=None)
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str | None) -> object:
    return _request_id.set(request_id)


@contextlib.contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Work done inside on behalf of `request_id` (a batch item's own request), its log lines and audit
    records naming it; the id before is back afterwards. None leaves the current id."""
    if request_id is None:
        yield
        return
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def bind_trace_id(trace_id: str | None) -> None:
    _trace_id.set(trace_id)


def _current_trace_id() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return format(context.trace_id, "032x")
    return _trace_id.get()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id.get(),
            "trace_id": _current_trace_id(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _BatchedLines(logging.Handler):
    """Formats each record where it is logged, and a thread of its own writes what gathered, every
    `interval` seconds or sooner when many lines wait, in one write.

    A line per record handed to a writer thread cost each request a lock, a wake-up of that thread and a
    flush of its own; now the logging call only formats and appends (a deque append is thread-safe).
    """

    def __init__(self, stream: TextIO, *, interval: float = 0.05, wake_at: int = 1000) -> None:
        super().__init__()
        self._stream = stream
        self._interval = interval
        self._wake_at = wake_at
        self._lines: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if len(self._lines) >= self._wake_at:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write_pending()

    def _write_pending(self) -> None:
        lines = []
        with contextlib.suppress(IndexError):  # close() may drain beside a writer that outlived its join
            while True:
                lines.append(self._lines.popleft())
        if lines:
            with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: nothing else to tell
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self._write_pending()
        super().close()


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr, written by a thread of their own.

    A line is formatted where it is logged (the request id and trace id live in that task's context), then
    queued; the write to stderr, a blocking call, happens off the event loop, for all lines of a moment at
    once. The queue is drained at exit.
    """
    global _handler
    if _handler is not None:
        _handler.close()
    # No record needs its caller's file and line, thread or process names (logging's HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    _handler = _BatchedLines(sys.stderr)
    _handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Request lines are logged by our middleware with the request id; uvicorn's would be duplicates.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


_handler: _BatchedLines | None = None


@atexit.register
def _drain_log_queue() -> None:
    global _handler
    if _handler is not None:
        _handler.close()
        _handler = None
