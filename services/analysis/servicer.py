"""AnalysisService: batches in from ingest, normalised batches out to the store, acks back.

The servicer only maps protobuf to the plain values `normalize` works on. Each Process stream
opens its own Write stream to the store and relays the store's acknowledgements: analysis
holds nothing that is not yet durable, so when either side breaks, the stream ends with
UNAVAILABLE and ingest resends every unacknowledged batch.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from services.analysis import normalize
from threadline import convert, telemetry
from threadline.v1 import analysis_pb2_grpc, common_pb2, store_pb2_grpc

log = logging.getLogger(__name__)
_tracer = telemetry.tracer("analysis")
TOOL_USE = common_pb2.BLOCK_KIND_TOOL_USE
TOOL_RESULT = common_pb2.BLOCK_KIND_TOOL_RESULT


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    def __init__(self, store: store_pb2_grpc.StoreServiceStub):
        self._store = store

    def normalise(self, batch: common_pb2.Batch) -> common_pb2.Batch:
        """Fill in keys and session ids and collect tool calls, in place."""
        calls = []
        for chunk in batch.chunks:
            for m in chunk.messages:
                source = m.source
                m.key = normalize.message_key(m.uuid, m.project_key, source.path,
                                              source.byte_offset, m.raw)
                m.session_id = normalize.session_of(source.path, m.session_id)
                for b in m.content:
                    if b.kind == TOOL_USE and b.tool_use_id:
                        calls.append(normalize.tool_use(b.tool_use_id, m.session_id, b.tool_name,
                                                        b.tool_input_json, m.key, m.timestamp))
                    elif b.kind == TOOL_RESULT and b.tool_use_id:
                        calls.append(normalize.tool_result(b.tool_use_id, m.session_id,
                                                           b.is_error, m.key, m.timestamp,
                                                           b.agent_id))
        batch.tool_calls.extend(convert.tool_call_to_pb(c) for c in calls)
        return batch

    async def Process(self, request_iterator, context: grpc.aio.ServicerContext):
        call = self._store.Write()

        async def forward() -> None:
            async for batch in request_iterator:
                with telemetry.span_from(_tracer, "analysis.batch", batch.trace_context,
                                         batch_id=batch.batch_id):
                    self.normalise(batch)
                    batch.trace_context.clear()
                    telemetry.inject(batch.trace_context)
                await call.write(batch)
            await call.done_writing()

        forwarding = asyncio.create_task(forward())

        def stop_relay_if_failed(task: asyncio.Task) -> None:
            # Ingest went away mid-stream: end the store stream too; ingest will resend.
            if not task.cancelled() and task.exception() is not None:
                call.cancel()

        forwarding.add_done_callback(stop_relay_if_failed)
        try:
            async for ack in call:
                yield ack
            await forwarding
        except grpc.aio.AioRpcError as exc:
            log.warning("store stream ended: %s", exc.code())
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc.details()}")
        finally:
            forwarding.cancel()
            call.cancel()
