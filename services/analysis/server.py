"""Start the analysis service."""

from __future__ import annotations

from services.analysis.servicer import AnalysisServicer
from services.analysis.store_access import StoreReader
from threadline import bootstrap
from threadline.config import Settings
from threadline.v1 import analysis_pb2_grpc, store_pb2_grpc

SERVICE_NAME = "threadline.v1.AnalysisService"


class Running:
    def __init__(self, service: bootstrap.Service, channel, servicer: AnalysisServicer):
        self._service = service
        self._channel = channel
        self.servicer = servicer
        self.port = service.port

    async def stop(self) -> None:
        await self._service.stop()
        await self._channel.close()
        self.servicer.close()


async def start(settings: Settings) -> Running:
    channel = bootstrap.channel(settings.store_addr)
    servicer = AnalysisServicer(store_pb2_grpc.StoreServiceStub(channel),
                                StoreReader(settings.db), analyse=settings.analyse)
    service = await bootstrap.create_server(
        [lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME], host=settings.host, port=settings.port)
    return Running(service, channel, servicer)
