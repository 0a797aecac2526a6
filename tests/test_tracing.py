"""One trace follows a line through ingest, analysis, store and stream."""

from __future__ import annotations

import asyncio
import uuid

import websockets
from conftest import eventually, running_pipeline
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_pipeline_live import next_frame_for, subscribed, user_line

from threadline import telemetry

SERVICES = ("ingest", "analysis", "store", "stream")


def memory_exporter() -> InMemorySpanExporter:
    """The process-wide SDK provider for tests (OpenTelemetry allows setting it once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_spans_from_all_four_services_share_one_trace(tmp_path):
    exporter = memory_exporter()
    root = tmp_path / "projects"
    transcript = root / "proj" / "s-trace.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.touch()
    warm_up, uid = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws)
                # A change committed while the stream service is still catching up with the
                # store arrives replayed from the database, without its trace context: once
                # one line has come through, the next one travels the live path.
                for line_id in (warm_up, uid):
                    with transcript.open("ab") as out:
                        out.write(user_line(line_id))
                    await next_frame_for(ws, line_id)

            def traced_by_all() -> set:
                by_trace: dict[int, set[str]] = {}
                for span in exporter.get_finished_spans():
                    service = span.name.split(".")[0]
                    by_trace.setdefault(span.context.trace_id, set()).add(service)
                return {t for t, services in by_trace.items() if set(SERVICES) <= services}

            traces = await eventually(traced_by_all)
            assert traces
            # The RPCs themselves are traced by the gRPC interceptors too.
            rpc_spans = [s for s in exporter.get_finished_spans()
                         if s.name.startswith("/threadline.v1.")]
            assert any("StoreService/GetOffsets" in s.name for s in rpc_spans)

    asyncio.run(scenario())


def test_exporter_follows_the_standard_variables():
    assert telemetry.exporter_requested({}) is None
    assert telemetry.exporter_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}) == "otlp"
    assert telemetry.exporter_requested({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert telemetry.exporter_requested({"OTEL_TRACES_EXPORTER": "otlp",
                                         "OTEL_SDK_DISABLED": "true"}) is None
    assert telemetry.exporter_requested({"OTEL_TRACES_EXPORTER": "none",
                                         "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}) is None
