"""The store's change feed: one live `Changes(follow=true)` stream feeding the hub, and the
bounded replays that resuming subscribers need.

While nobody subscribes, the live stream asks for heads only: the hub's head keeps up with the
store (for `since` checks and status) while the store copies no message into an event, which
during a bulk import is most of what the feed costs. When a subscriber arrives, the stream is
reopened with payloads from the hub's head before any later change is published, so
subscribers miss nothing; `IDLE_SECONDS` after the last one leaves it goes back to heads.

The live stream with payloads is read by a thread of its own (`LiveReader`): on the event
loop every message of a gRPC stream takes a few loop turns to arrive, and with hundreds of
WebSocket clients written between turns the feed fell seconds behind the store. The thread
reads messages as they come and hands them to the loop, which publishes every batch that
arrived by its next turn in that turn.

The store may restart or end a slow follower with RESOURCE_EXHAUSTED; both streams then
reconnect with a backoff of 100 ms growing to 1 s and resume after the last sequence they saw,
so nothing is lost or repeated.

The store's write condition (a full disk) comes on either stream as it changes, and with the
store's stats at each (re)connection; the hub keeps it for the gateway and the status.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc

from services.stream.errors import InvalidRequest
from services.stream.events import Event
from services.stream.hub import Filter, Hub
from services.stream.resume import Batch
from threadline import access, bootstrap, telemetry
from threadline.auth import Security
from threadline.bootstrap import Backoff
from threadline.v1 import store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

# A stream that stayed up this long was healthy: the next failure starts the backoff afresh.
HEALTHY_SECONDS = 1.0
STATS_TIMEOUT = 5.0
SYNC_SECONDS = 10.0
# How long the hub stays without subscribers before the feed drops to heads only (so that a
# client that reconnects at once does not make it switch twice).
IDLE_SECONDS = 2.0
# Batches the live reader thread may hand over before the loop has published them; beyond
# this it stops reading, so a stalled service is still a slow follower to the store.
PENDING_BATCHES = 256


class StoreFeed:
    """Client of the store's change feed."""

    def __init__(self, address: str, hub: Hub, security: Security | None = None):
        self.hub = hub
        self.connected = False
        self._channel = bootstrap.channel(address, security)
        self._stub = store_pb2_grpc.StoreServiceStub(self._channel)
        # A plain (thread-safe, blocking) channel for the live reader thread.
        self._live_channel = access.sync_channel(address, security, bootstrap.CHANNEL_OPTIONS)
        self._live_stub = store_pb2_grpc.StoreServiceStub(self._live_channel)
        # Public so a test can read spans from its own provider.
        self.tracer = telemetry.tracer("stream")
        self._started = False

    async def close(self) -> None:
        await self._channel.close()
        self._live_channel.close()

    async def sync(self) -> None:
        """Learn the store's head before the service answers, so that its first subscribers
        start from there. Otherwise a live subscriber arriving before the feed's first
        connection would start wherever the store had got to by then, missing what was
        committed in between. Waits up to `SYNC_SECONDS` for a store that is still starting
        (the supervisor launches every service at once)."""
        stats = await self._stub.GetStats(store_pb2.GetStatsRequest(), timeout=SYNC_SECONDS,
                                          wait_for_ready=True)
        self.hub.advance(stats.last_sequence)
        self.hub.set_store_error(stats.write_error)
        self._started = True

    async def run(self) -> None:
        """Follow the store forever, publishing every change to the hub."""
        backoff = Backoff()
        while True:
            opened = time.monotonic()
            try:
                await self._follow(backoff)
                log.info("store change feed ended; reconnecting")
            except grpc.RpcError as e:  # AioRpcError, or the live reader's error
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
        hub.set_store_error(stats.write_error)
        if not self._started:
            # Live subscribers start at the store's head; history is for those giving `since`.
            hub.advance(stats.last_sequence)
            self._started = True
        elif stats.last_sequence < hub.head:
            log.warning("store head %d is behind ours (%d): the store was replaced; "
                        "following it from its head", stats.last_sequence, hub.head)
            hub.reset_head(stats.last_sequence)
        while True:
            heads_only = not len(hub)
            request = store_pb2.ChangesRequest(since_sequence=hub.head, follow=True,
                                               heads_only=heads_only)
            if heads_only:
                call = self._stub.Changes(request)
                reading = self._advance(call, backoff)
                switch = hub.wait_for_subscribers()
            else:
                call = LiveReader(self._live_stub.Changes(request), self._publish, backoff)
                reading = call.run()
                switch = hub.wait_until_idle(IDLE_SECONDS)
            self.connected = True
            try:
                if not await _until(reading, switch):
                    return  # the store ended the stream
            finally:
                call.cancel()

    def _publish(self, batch: store_pb2.ChangeBatch) -> None:
        if batch.HasField("condition"):
            self.hub.set_store_error(batch.condition.write_error)
        for change in batch.changes:
            with telemetry.span_from(self.tracer, "stream.deliver",
                                     change.trace_context, sequence=change.sequence):
                self.hub.publish(change.sequence, change.project_key, change.session_id,
                                 Event(change))

    async def _advance(self, call, backoff: Backoff) -> None:
        """Follow heads until a subscriber arrives; from then on its changes need payloads,
        so the head stays where it is until the stream is reopened with them."""
        hub = self.hub
        async for batch in call:
            backoff.reset()
            if batch.HasField("condition"):
                hub.set_store_error(batch.condition.write_error)
            for change in batch.changes:
                if len(hub):
                    await asyncio.Future()  # the switch to payloads ends this task
                hub.advance(change.sequence)

    async def resolve(self, filter: Filter) -> Filter:
        """The filter with the names a user gave resolved by the store (ResolveNames): a
        project's short name or alias becomes its key, a session id prefix the id, so the
        hub can match them against the changes. Raises InvalidRequest for a name that fits
        several, or a prefix too short. While the store cannot answer, the names are taken
        as given (a subscription by key still works)."""
        if filter.project is None and filter.session is None:
            return filter
        try:
            found = await self._stub.ResolveNames(store_pb2.ResolveNamesRequest(
                project=filter.project or "", session=filter.session or ""),
                timeout=STATS_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidRequest(e.details() or "the store refused the names") from e
            log.warning("cannot resolve %s with the store (%s): taking the names as given",
                        filter, e.code().name)
            return filter
        return Filter(found.project_key or None, found.session_id or None)

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


class LiveReader:
    """Reads a blocking `Changes` stream in a thread; `run` publishes its batches on the loop,
    in order, and ends as the stream does (raising its error)."""

    def __init__(self, call, publish, backoff: Backoff):
        self._call = call
        self._publish = publish
        self._backoff = backoff
        self._room = threading.Semaphore(PENDING_BATCHES)
        self._stopped = threading.Event()
        self._done: asyncio.Future[None] | None = None

    def cancel(self) -> None:
        self._stopped.set()
        self._call.cancel()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        thread = threading.Thread(target=self._read, args=(loop,), name="store-feed",
                                  daemon=True)
        thread.start()
        try:
            await self._done
        finally:
            self.cancel()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        error: BaseException | None = None
        try:
            for batch in self._call:
                while not self._room.acquire(timeout=0.5):
                    if self._stopped.is_set():
                        return
                loop.call_soon_threadsafe(self._take, batch)
        except BaseException as e:  # noqa: BLE001 - handed to the loop, raised there
            error = e
        try:
            # After every batch's callback: the loop runs them in order.
            loop.call_soon_threadsafe(self._finish, error)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _take(self, batch: store_pb2.ChangeBatch) -> None:
        self._room.release()
        done = self._done
        if done is None or done.done():
            return  # stopped: the next stream resumes from the hub's head
        self._backoff.reset()
        try:
            self._publish(batch)
        except Exception as e:
            done.set_exception(e)
            self.cancel()

    def _finish(self, error: BaseException | None) -> None:
        done = self._done
        if done is None or done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


async def _until(reading: Coroutine[Any, Any, None], switch: Coroutine[Any, Any, None]) -> bool:
    """Run `reading` (a live stream) until `switch` happens: True then, False if the stream
    ended first; the stream's error, if it failed first, is raised."""
    reader, switcher = asyncio.create_task(reading), asyncio.create_task(switch)
    try:
        await asyncio.wait({reader, switcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        switcher.cancel()
        await asyncio.gather(reader, switcher, return_exceptions=True)
    if switcher.done() and not switcher.cancelled():
        return True
    reader.result()
    return False
