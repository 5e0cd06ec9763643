"""OpenTelemetry set-up: FastAPI instrumentation always, an OTLP exporter only when configured."""

from __future__ import annotations

import logging

from fastapi import FastAPI

_log = logging.getLogger("artstore.tracing")


def setup_tracing(app: FastAPI, service: str, otlp_endpoint: str | None) -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            _log.warning("tracing endpoint set but opentelemetry-exporter-otlp is not installed; tracing off")
        else:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
            trace.set_tracer_provider(provider)
    # Without an exporter the API's no-op tracer still propagates incoming W3C traceparent headers.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="health/live,health/ready,metrics", exclude_spans=["receive", "send"]
    )
