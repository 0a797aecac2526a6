"""Tracing and logging set-up shared by every service.

Tracing follows the OpenTelemetry conventions: nothing is exported unless the standard
variables ask for it (`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` turns everything off). RPCs are
traced by the gRPC instrumentation's interceptors; batches, which travel inside long-lived
streams, carry their own W3C trace context (`Batch.trace_context`, `Change.trace_context`) so
that one trace follows a line from the file to the WebSocket.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)

_configured = False


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def exporter_requested(environ: Mapping[str, str] | None = None) -> str | None:
    """Which span exporter the standard OTEL_* variables ask for, or None for none."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if name == "none":
        return None
    if name:
        return name
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return None


def setup_tracing(service_name: str) -> None:
    """Install an SDK tracer provider when an exporter is requested; otherwise stay no-op."""
    global _configured
    if _configured:
        return
    _configured = True
    exporter_name = exporter_requested()
    if exporter_name is None:
        return
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def server_interceptors() -> list:
    # Health checks are polled constantly and say nothing about the work: leave them out.
    return [aio_server_interceptor(filter_=filters.negate(filters.health_check()))]


def client_interceptors() -> list:
    return list(aio_client_interceptors(filter_=filters.negate(filters.health_check())))


def tracer(service: str) -> trace.Tracer:
    return trace.get_tracer(f"threadline.{service}")


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context into a protobuf map field (or any dict)."""
    propagate.inject(carrier)


@contextmanager
def span_from(tr: trace.Tracer, name: str, carrier: Mapping[str, str] | None,
              **attributes: object) -> Iterator[trace.Span]:
    """Start a span whose parent is the trace context carried by a batch or change."""
    parent = propagate.extract(dict(carrier)) if carrier else None
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with tr.start_as_current_span(name, attributes=attributes or None) as span:
            yield span
    finally:
        if token is not None:
            otel_context.detach(token)
