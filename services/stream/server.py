"""Starting and stopping the stream service: gRPC StreamService plus the WebSocket gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc

from services.stream.gateway import Gateway
from services.stream.hub import Hub
from services.stream.reads import Reads
from services.stream.servicer import StreamServicer
from services.stream.upstream import StoreFeed
from threadline import auth, bootstrap
from threadline.config import Settings
from threadline.v1 import stream_pb2, stream_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = stream_pb2.DESCRIPTOR.services_by_name["StreamService"].full_name


@dataclass
class Running:
    port: int
    ws_port: int
    hub: Hub
    feed: StoreFeed
    reads: Reads
    gateway: Gateway
    service: bootstrap.Service
    upstream_task: asyncio.Task[None]

    async def stop(self) -> None:
        # End the WebSocket clients and the gRPC subscribers (their streams never finish on
        # their own, so waiting for them would only use up the grace period), then the server,
        # then the upstream stream.
        await self.gateway.stop()
        self.hub.shutdown()
        await self.service.stop()
        self.upstream_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.upstream_task
        await self.feed.close()
        await self.reads.close()


async def start(settings: Settings) -> Running:
    security = auth.for_server(settings)
    hub = Hub(settings.subscriber_queue)
    feed = StoreFeed(settings.store_addr, hub, security)
    reads = Reads(settings.store_addr, settings.analysis_addr, security)
    gateway = Gateway(hub, feed.replay, settings.subscriber_queue, security=security,
                      origins=settings.ws_origins, resolve=feed.resolve, reads=reads)
    servicer = StreamServicer(hub, feed.replay, lambda: len(gateway.connections),
                              lambda: gateway.slow_disconnects, feed.resolve)
    try:
        await feed.sync()
    except grpc.aio.AioRpcError as e:  # no store yet: the feed learns the head later
        log.warning("store head unknown at start (%s); following it once it answers",
                    e.code().name)
    upstream_task = asyncio.create_task(feed.run(), name="stream-upstream")
    try:
        ws_port = await gateway.start(settings.ws_host, settings.ws_port)
        service = await bootstrap.create_server(
            [lambda s: stream_pb2_grpc.add_StreamServiceServicer_to_server(servicer, s)],
            [SERVICE_NAME], host=settings.host, port=settings.port, security=security)
    except BaseException:
        upstream_task.cancel()
        await gateway.stop()
        await feed.close()
        await reads.close()
        raise
    return Running(service.port, ws_port, hub, feed, reads, gateway, service, upstream_task)
