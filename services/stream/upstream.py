"""The store's change feed: one live `Changes(follow=true)` stream feeding the hub, and the
bounded replays that resuming subscribers need.

The store may restart or end a slow follower with RESOURCE_EXHAUSTED; both streams then
reconnect with a backoff of 100 ms growing to 1 s and resume after the last sequence they saw,
so nothing is lost or repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc

from services.stream.errors import InvalidRequest
from services.stream.events import Event
from services.stream.hub import Filter, Hub
from services.stream.resume import Batch
from threadline import bootstrap, telemetry
from threadline.bootstrap import Backoff
from threadline.v1 import store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

# A stream that stayed up this long was healthy: the next failure starts the backoff afresh.
HEALTHY_SECONDS = 1.0
STATS_TIMEOUT = 5.0


class StoreFeed:
    """Client of the store's change feed."""

    def __init__(self, address: str, hub: Hub):
        self.hub = hub
        self.connected = False
        self._channel = bootstrap.channel(address)
        self._stub = store_pb2_grpc.StoreServiceStub(self._channel)
        # Public so a test can read spans from its own provider.
        self.tracer = telemetry.tracer("stream")
        self._started = False

    async def close(self) -> None:
        await self._channel.close()

    async def run(self) -> None:
        """Follow the store forever, publishing every change to the hub."""
        backoff = Backoff()
        while True:
            opened = time.monotonic()
            try:
                await self._follow(backoff)
                log.info("store change feed ended; reconnecting")
            except grpc.aio.AioRpcError as e:
                log.info("store change feed broke (%s: %s); reconnecting after %.1fs",
                         e.code().name, e.details(), backoff.delay)
            except Exception:
                # A bug must not end live delivery for good while health says SERVING.
                log.exception("store change feed failed; reconnecting after %.1fs",
                              backoff.delay)
            finally:
                self.connected = False
            if time.monotonic() - opened >= HEALTHY_SECONDS:
                backoff.reset()
            await backoff.wait()

    async def _follow(self, backoff: Backoff) -> None:
        hub = self.hub
        stats = await self._stub.GetStats(store_pb2.GetStatsRequest(), timeout=STATS_TIMEOUT)
        if not self._started:
            # Live subscribers start at the store's head; history is for those giving `since`.
            hub.advance(stats.last_sequence)
            self._started = True
        elif stats.last_sequence < hub.head:
            log.warning("store head %d is behind ours (%d): the store was replaced; "
                        "following it from its head", stats.last_sequence, hub.head)
            hub.reset_head(stats.last_sequence)
        call = self._stub.Changes(store_pb2.ChangesRequest(since_sequence=hub.head, follow=True))
        self.connected = True
        try:
            async for batch in call:
                backoff.reset()
                for change in batch.changes:
                    with telemetry.span_from(self.tracer, "stream.deliver",
                                             change.trace_context, sequence=change.sequence):
                        hub.publish(change.sequence, change.project_key, change.session_id,
                                    Event(change))
        finally:
            call.cancel()

    async def replay(self, since: int, filter: Filter) -> AsyncIterator[Batch]:
        """Every stored change after `since` matching `filter`, then stop (resumes on errors)."""
        backoff = Backoff()
        last = since
        while True:
            call = self._stub.Changes(store_pb2.ChangesRequest(
                since_sequence=last, follow=False, project_key=filter.project or "",
                session_id=filter.session or ""))
            try:
                async for batch in call:
                    backoff.reset()
                    if batch.changes:
                        last = batch.changes[-1].sequence
                        yield [(c.sequence, Event(c)) for c in batch.changes]
                return
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidRequest(e.details() or "store refused the replay") from e
                log.info("store replay broke at %d (%s); retrying", last, e.code().name)
            finally:
                call.cancel()
            await backoff.wait()
