"""Start the analysis service."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from services.analysis.servicer import AnalysisServicer
from services.analysis.store_access import StoreReader
from threadline import bootstrap
from threadline.config import Settings
from threadline.v1 import analysis_pb2_grpc, store_pb2_grpc

SERVICE_NAME = "threadline.v1.AnalysisService"


FOLLOWER_STOP_SECONDS = 10.0


def start_follower(settings: Settings) -> subprocess.Popen:
    """The analysis follower (follower.py) as a child process of this service."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.analysis.follower", "--store-addr",
         settings.store_addr, "--db", str(settings.db), "--log-level", settings.log_level])


class Running:
    def __init__(self, service: bootstrap.Service, channel, servicer: AnalysisServicer,
                 follower: subprocess.Popen | None):
        self._service = service
        self._channel = channel
        self.servicer = servicer
        self.follower = follower
        self.port = service.port

    async def stop(self) -> None:
        if self.follower is not None:
            self.follower.terminate()
        await self._service.stop()
        await self._channel.close()
        self.servicer.close()
        if self.follower is not None:
            try:
                await asyncio.to_thread(self.follower.wait, FOLLOWER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.follower.kill()
                await asyncio.to_thread(self.follower.wait)


async def start(settings: Settings) -> Running:
    channel = bootstrap.channel(settings.store_addr)
    servicer = AnalysisServicer(store_pb2_grpc.StoreServiceStub(channel),
                                StoreReader(settings.db), analyse=settings.analyse)
    service = await bootstrap.create_server(
        [lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME], host=settings.host, port=settings.port)
    follower = start_follower(settings) if settings.analyse else None
    return Running(service, channel, servicer, follower)
