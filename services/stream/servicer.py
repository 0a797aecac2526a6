"""StreamService over gRPC: maps requests to the hub and changes back to protobuf.

A subscriber that falls behind is ended with RESOURCE_EXHAUSTED and a message naming the last
sequence it was sent, e.g. "slow consumer: queue full (10000 changes); reconnect with
since=4242" (see hub.py for the backpressure policy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import grpc

from services.stream import resume
from services.stream.errors import (
    InvalidRequest,
    NotFound,
    ShuttingDown,
    SinceBeyondHead,
    SlowConsumer,
    StreamError,
    Unavailable,
)
from services.stream.hub import Filter, Hub
from threadline.v1 import common_pb2, stream_pb2, stream_pb2_grpc

# The one place where the service's errors become gRPC status codes.
STATUS_FOR: dict[type[StreamError], grpc.StatusCode] = {
    SlowConsumer: grpc.StatusCode.RESOURCE_EXHAUSTED,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    SinceBeyondHead: grpc.StatusCode.OUT_OF_RANGE,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: StreamError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS_FOR:
            return STATUS_FOR[kind]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


class StreamServicer(stream_pb2_grpc.StreamServiceServicer):
    def __init__(self, hub: Hub, replay: resume.Replay,
                 websocket_clients: Callable[[], int], websocket_slow: Callable[[], int],
                 resolve: resume.Resolve = resume.as_given):
        self.hub = hub
        self.replay = replay
        self.resolve = resolve
        self.subscribers = 0
        self.slow_disconnects = 0
        self._websocket_clients = websocket_clients
        self._websocket_slow = websocket_slow

    async def Subscribe(self, request: stream_pb2.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[common_pb2.Change]:
        since = request.since_sequence if request.HasField("since_sequence") else None
        filter = Filter(request.project_key or None, request.session_id or None)
        # Where this subscriber should resume if it is dropped before anything is sent.
        last = since if since is not None else self.hub.head
        self.subscribers += 1
        try:
            if since is not None and since < 0:
                raise InvalidRequest("since_sequence must not be negative")
            resume.check_since(self.hub, since)
            filter = await self.resolve(filter)
            async with aclosing(resume.follow(self.hub, self.replay, filter, since)) as feed:
                async for batch in feed:
                    for sequence, event in batch:
                        yield event.change  # type: ignore[attr-defined]
                        last = sequence
        except SlowConsumer as e:
            self.slow_disconnects += 1
            # The hub counts a whole batch as handed out; name what was really written.
            await context.abort(status_for(e), str(SlowConsumer(e.queue_limit, last)))
        except ShuttingDown as e:
            await context.abort(status_for(e), str(ShuttingDown(last)))
        except StreamError as e:
            await context.abort(status_for(e), str(e))
        finally:
            self.subscribers -= 1

    async def GetStatus(self, request: stream_pb2.GetStreamStatusRequest,
                        context: grpc.aio.ServicerContext) -> stream_pb2.StreamStatus:
        return stream_pb2.StreamStatus(
            head_sequence=self.hub.head, grpc_subscribers=self.subscribers,
            websocket_clients=self._websocket_clients(),
            slow_disconnects=self.slow_disconnects + self._websocket_slow(),
            store_error=self.hub.store_error)
