"""Start the analysis service."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess

from services.analysis.servicer import AnalysisServicer
from services.analysis.store_access import StoreReader
from threadline import auth, bootstrap, lifeline
from threadline.config import Settings
from threadline.v1 import analysis_pb2_grpc, store_pb2_grpc

SERVICE_NAME = "threadline.v1.AnalysisService"
log = logging.getLogger(__name__)


FOLLOWER_STOP_SECONDS = 10.0
# How often the service checks that its follower still runs (and restarts it if not).
FOLLOWER_CHECK_SECONDS = 1.0


class FollowerProcess:
    """The analysis follower (follower.py) as a child process of this service, restarted when
    it dies (it resumes from its checkpoint) and stopped with the service. It is bound to this
    process before its slow imports (threadline/lifeline.py): it stops when the service dies,
    even by SIGKILL, and so never keeps the database open behind a stopped service."""

    def __init__(self, settings: Settings, security: auth.Security):
        self._args = lifeline.command(os.getpid(), "services.analysis.follower", "--store-addr",
                                      settings.store_addr, "--db", str(settings.db),
                                      "--log-level", settings.log_level)
        # The follower writes to the store: it finds the token as this service did (the
        # variable, or the file beside --db); TLS trust given as a flag is passed on.
        if security.client_trust is not None:
            self._args += ["--tls-ca", str(security.client_trust)]
        self.process = subprocess.Popen(self._args)
        self.restarts = 0
        self._watch = asyncio.create_task(self._keep_running())

    async def _keep_running(self) -> None:
        while True:
            await asyncio.sleep(FOLLOWER_CHECK_SECONDS)
            code = self.process.poll()
            if code is not None:
                log.warning("analysis follower exited with %s; starting it again", code)
                self.restarts += 1
                self.process = subprocess.Popen(self._args)

    async def stop(self) -> None:
        self._watch.cancel()
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, FOLLOWER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


class Running:
    def __init__(self, service: bootstrap.Service, channel, servicer: AnalysisServicer,
                 follower: FollowerProcess | None):
        self._service = service
        self._channel = channel
        self.servicer = servicer
        self.follower = follower
        self.port = service.port

    async def stop(self) -> None:
        if self.follower is not None:
            await self.follower.stop()
        await self._service.stop()
        await self._channel.close()
        self.servicer.close()


async def start(settings: Settings) -> Running:
    security = auth.for_server(settings)
    channel = bootstrap.channel(settings.store_addr, security)
    # Threading (on the pipeline's path) and queries read through separate connections, so
    # slow queries never make the pipeline wait for one.
    servicer = AnalysisServicer(store_pb2_grpc.StoreServiceStub(channel),
                                StoreReader(settings.db, pool_size=1),
                                StoreReader(settings.db), analyse=settings.analyse,
                                pricing_file=settings.pricing_file)
    service = await bootstrap.create_server(
        [lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME], host=settings.host, port=settings.port, security=security)
    follower = FollowerProcess(settings, security) if settings.analyse else None
    return Running(service, channel, servicer, follower)
