"""OpenTelemetry set-up: FastAPI instrumentation always, an OTLP exporter only when configured."""

from __future__ import annotations

import logging

from fastapi import FastAPI

_log = logging.getLogger("artstore.tracing")


def setup_tracing(app: FastAPI, service: str, otlp_endpoint: str | None) -> bool:
    """Instrument the app when an OTLP endpoint is configured; return whether tracing is on.

    Off by default: the request middleware still reads the W3C `traceparent` header, so logs carry
    the caller's trace id either way, without the per-request cost of the instrumentation.
    """
    if not otlp_endpoint:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _log.warning("tracing endpoint set but opentelemetry-exporter-otlp is not installed; tracing off")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="health/live,health/ready,metrics", exclude_spans=["receive", "send"]
    )
    return True
