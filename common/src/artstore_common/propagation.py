"""Headers every call to another ArtStore service carries: the request id and the W3C trace context."""

from __future__ import annotations

from opentelemetry import propagate

from artstore_common.logging import current_request_id


def outgoing_headers() -> dict[str, str]:
    headers: dict[str, str] = {}
    request_id = current_request_id()
    if request_id:
        headers["X-Request-ID"] = request_id
    propagate.inject(headers)  # `traceparent` when tracing is on and a span is active
    return headers
