"""The gRPC edges of ingest as a client: durable offsets from the store, batches to analysis.

`Sender` keeps one `AnalysisService.Process` stream open. It sends a batch as soon as dirty
files hold new lines (a live append is not held back to fill a batch), keeps at most
`max_in_flight` batches unacknowledged (backpressure: reading simply pauses), and applies
acknowledgements, which analysis sends only after the store committed the batch. When the
stream breaks or ends (analysis or store restarted), everything unacknowledged is forgotten,
every file goes back to its durable offset, and the stream is opened again with a backoff of
100 ms growing to 1 s: nothing is lost, and what is sent twice the store dedupes by key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from services.ingest import wire
from services.ingest.ingestor import Ingestor
from services.ingest.tailer import Durable
from threadline import bootstrap, telemetry
from threadline.auth import Security
from threadline.v1 import analysis_pb2_grpc, common_pb2, store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

_tracer = telemetry.tracer("ingest")


class StreamEnded(Exception):
    """Analysis closed the Process stream without an error status."""


async def load_durable_offsets(address: str, security: Security | None = None
                              ) -> list[Durable]:
    """Ask the store what it has committed; retry until it answers (it may start after us)."""
    backoff = bootstrap.Backoff()
    attempts = 0
    async with bootstrap.channel(address, security) as channel:
        stub = store_pb2_grpc.StoreServiceStub(channel)
        while True:
            try:
                response = await stub.GetOffsets(store_pb2.GetOffsetsRequest(), timeout=5.0)
                return [wire.durable_from_pb(o) for o in response.offsets]
            except grpc.aio.AioRpcError as exc:
                attempts += 1
                if attempts == 1 or attempts % 20 == 0:
                    log.warning("store at %s not answering GetOffsets (%s); retrying",
                                address, exc.code().name)
            await backoff.wait()


class Sender:
    def __init__(self, address: str, ingestor: Ingestor, max_in_flight: int,
                 on_progress: Callable[[], None] = lambda: None,
                 security: Security | None = None):
        self.address = address
        self.security = security
        self.ingestor = ingestor
        self.max_in_flight = max(1, max_in_flight)
        self.on_progress = on_progress
        self.connected = False
        self._acked = 0
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """There may be something new to read."""
        self._wake.set()

    async def run(self) -> None:
        backoff = bootstrap.Backoff()
        async with bootstrap.channel(self.address, self.security) as channel:
            stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
            failures = 0
            while True:
                self._acked = 0
                try:
                    await self._session(stub)
                except (grpc.aio.AioRpcError, StreamEnded, asyncio.InvalidStateError) as exc:
                    detail = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else exc
                    # While analysis is down this repeats every second: say it once.
                    level = logging.WARNING if failures == 0 else logging.DEBUG
                    log.log(level, "Process stream to %s ended (%s); reconnecting and resending "
                            "what is not acknowledged", self.address, detail)
                except Exception:  # a defect here must not stop ingest for good
                    log.exception("sending to %s failed; resending what is not acknowledged",
                                  self.address)
                finally:
                    self.connected = False
                self.ingestor.rewind()
                self.on_progress()
                failures = 0 if self._acked else failures + 1
                if self._acked:
                    backoff.reset()
                await backoff.wait()

    async def _session(self, stub: analysis_pb2_grpc.AnalysisServiceStub) -> None:
        call = stub.Process()
        reader = asyncio.create_task(self._read_acks(call))
        reader.add_done_callback(lambda _: self._wake.set())
        # Its failure is the stream's, reported by the write side: mark it retrieved.
        reader.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.connected = True
        try:
            while True:
                if reader.done():
                    reader.result()
                    raise StreamEnded("analysis closed the stream")
                ingestor = self.ingestor
                if ingestor.has_work() and ingestor.in_flight < self.max_in_flight:
                    message = await asyncio.to_thread(self._build)
                    if message is not None:
                        await self._send(call, message)
                    continue
                self._wake.clear()
                await self._wake.wait()
        finally:
            reader.cancel()
            call.cancel()

    def _build(self) -> tuple[common_pb2.Batch, int] | None:
        batch = self.ingestor.next_batch()
        if batch is None:
            return None
        return wire.batch_to_pb(batch), batch.lines

    async def _send(self, call: grpc.aio.StreamStreamCall,
                    message: tuple[common_pb2.Batch, int]) -> None:
        batch, lines = message
        with telemetry.span_from(_tracer, "ingest.batch", None, batch_id=batch.batch_id,
                                 lines=lines, chunks=len(batch.chunks)):
            telemetry.inject(batch.trace_context)
            await call.write(batch)

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                return
            if self.ingestor.acknowledge(ack.batch_id):
                self._acked += 1
            self._wake.set()
            self.on_progress()
