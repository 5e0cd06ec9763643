"""One ASGI middleware for request ids, access logs and HTTP metrics.

Written against raw ASGI rather than BaseHTTPMiddleware so that streamed request and response bodies pass
through untouched, chunk by chunk.
"""

from __future__ import annotations

import logging
import random
import re
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artstore_common.logging import bind_request_id, bind_trace_id
from artstore_common.metrics import HTTP_BYTES_IN, HTTP_BYTES_OUT, HTTP_LATENCY, HTTP_REQUESTS

_log = logging.getLogger("artstore.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_QUIET_PATHS = {"/health/live", "/health/ready", "/metrics"}
_MAX_CACHED_OUTCOMES = 1000


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Each `labels()` call takes the metric's lock and builds its key; a request would make four.
        self._bytes_in = HTTP_BYTES_IN.labels(service)
        self._bytes_out = HTTP_BYTES_OUT.labels(service)
        self._outcomes: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else f"{random.getrandbits(128):032x}"
        bind_request_id(request_id)
        traceparent = _TRACEPARENT.match(headers.get(b"traceparent", b"").decode("latin-1"))
        bind_trace_id(traceparent.group(1) if traceparent else None)
        started = time.perf_counter()
        status = 500
        bytes_in = bytes_out = 0

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(_rate_limit_headers(scope))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            method = scope["method"]
            requests, latency = self._metrics(method, route, status)
            requests.inc()
            latency.observe(elapsed)
            self._bytes_in.inc(bytes_in)
            self._bytes_out.inc(bytes_out)
            if scope["path"] not in _QUIET_PATHS:
                _log.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "route": route},
                )

    def _metrics(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        found = self._outcomes.get(key)
        if found is None:
            found = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
            if len(self._outcomes) < _MAX_CACHED_OUTCOMES:  # routes are templates, so few keys ever appear
                self._outcomes[key] = found
        return found


def _rate_limit_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """What the rate limiter left on request.state for a request it let through."""
    state = scope.get("state")
    found = state.get("rate_limit_headers") if isinstance(state, dict) else None
    if not isinstance(found, dict):
        return []
    return [(name.lower().encode(), value.encode()) for name, value in found.items()]
