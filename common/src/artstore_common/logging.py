"""JSON log lines carrying the request id and trace id of the request being served."""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

_request_id: ContextVar[str | None] = ContextVar("artstore_request_id", default=None)
_trace_id: ContextVar[str | None] = ContextVar("artstore_trace_id", default=None)
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str | None) -> object:
    return _request_id.set(request_id)


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


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr, written by a thread of their own.

    A line is formatted where it is logged (the request id and trace id live in that task's context), then
    queued; the write to stderr, a blocking call, happens off the event loop. The queue is drained at exit.
    """
    global _listener
    if _listener is not None:
        _listener.stop()
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(lines)
    handler.setFormatter(JsonFormatter(service))
    _listener = logging.handlers.QueueListener(lines, logging.StreamHandler(sys.stderr))
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Request lines are logged by our middleware with the request id; uvicorn's would be duplicates.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


_listener: logging.handlers.QueueListener | None = None


@atexit.register
def _drain_log_queue() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
