"""IngestService over gRPC: maps protobuf to the running service's status and back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from services.ingest import wire
from services.ingest.errors import IngestError, status_code
from services.ingest.ingestor import Status
from threadline.v1 import ingest_pb2, ingest_pb2_grpc


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, status: Callable[[], Awaitable[Status]]):
        self._status = status

    async def GetStatus(self, request: ingest_pb2.GetIngestStatusRequest,
                        context: grpc.aio.ServicerContext) -> ingest_pb2.IngestStatus:
        try:
            return wire.status_to_pb(await self._status())
        except IngestError as exc:
            await context.abort(status_code(exc), str(exc))
            raise  # unreachable: abort raises


SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def registrar(servicer: IngestServicer) -> Callable[[grpc.aio.Server], None]:
    return lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
