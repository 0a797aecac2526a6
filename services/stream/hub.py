"""Fan-out of committed changes to subscribers, with a stated backpressure policy.

Backpressure policy: every subscriber owns a bounded queue (`subscriber_queue` changes).
`Hub.publish` never awaits: it appends the change to each matching subscriber's queue and
returns. A subscriber whose queue is full is dropped on the spot, removed from the hub and told
why (`SlowConsumer`, naming the last sequence it was handed so it can resume with `since`);
the publisher and every other subscriber carry on untouched. Nothing is ever silently skipped:
a subscriber either receives every matching change in order or learns it was dropped.

A subscription starts in queue mode (its consumer awaits `next_batch`). A consumer that has
its own bounded outlet (the WebSocket gateway's per-connection send queue) can `attach` a sink
instead, so live changes go straight into that outlet without an extra task hop; the sink
reports overflow by returning False and the same drop rule applies.

The hub also holds the store's write condition (`store_error`: why the store cannot write
right now, "" while it can) and tells its listeners when it changes, for the gateway to tell
every WebSocket client.

This module knows nothing of gRPC or protobuf: a change's payload is opaque here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from services.stream.errors import ShuttingDown, SlowConsumer, StreamError

log = logging.getLogger(__name__)

# Called with (sequence, payload); returns False when the consumer's outlet is full.
Sink = Callable[[int, object], bool]
DropCallback = Callable[["Subscription", SlowConsumer], None]


@dataclass(frozen=True, slots=True)
class Filter:
    """Which changes a subscriber wants: None means any project / any session."""

    project: str | None = None
    session: str | None = None

    def matches(self, project: str, session: str) -> bool:
        return (self.project is None or self.project == project) and (
            self.session is None or self.session == session
        )


class Subscription:
    """One subscriber: a filter and a bounded queue of (sequence, payload)."""

    def __init__(self, hub: Hub, sub_id: int, filter: Filter, limit: int,
                 on_drop: DropCallback | None):
        self.hub = hub
        self.id = sub_id
        self.filter = filter
        self.limit = limit
        self.on_drop = on_drop
        # Highest sequence handed to the consumer (or to its sink).
        self.delivered = 0
        self.error: StreamError | None = None
        self._items: deque[tuple[int, object]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Sink | None = None
        # Changes at or below this sequence were already delivered by a replay.
        self._floor = 0

    # -- called by the hub -------------------------------------------------------------------

    def offer(self, sequence: int, payload: object) -> bool:
        """Queue one change without waiting; False when the queue (or sink) is full."""
        if sequence <= self._floor:
            return True
        sink = self._sink
        if sink is not None:
            if not sink(sequence, payload):
                return False
            self.delivered = sequence
            return True
        if len(self._items) >= self.limit:
            return False
        self._items.append((sequence, payload))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def fail(self, error: StreamError) -> None:
        self.error = error
        self._items.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_drop is not None and isinstance(error, SlowConsumer):
            self.on_drop(self, error)

    # -- called by the consumer --------------------------------------------------------------

    def skip_through(self, sequence: int) -> None:
        """Forget queued changes up to `sequence` (a replay already delivered them)."""
        self._floor = max(self._floor, sequence)
        self.delivered = max(self.delivered, sequence)
        while self._items and self._items[0][0] <= self._floor:
            self._items.popleft()

    def raise_if_dropped(self) -> None:
        if self.error is not None:
            raise self.error

    async def next_batch(self) -> list[tuple[int, object]]:
        """Every queued change (at least one); raises SlowConsumer once dropped."""
        while not self._items:
            self.raise_if_dropped()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.raise_if_dropped()
        batch = list(self._items)
        self._items.clear()
        self.delivered = batch[-1][0]
        return batch

    def attach(self, sink: Sink) -> bool:
        """Send the queued changes, then every later one, straight to `sink`.

        Returns False (and the subscription is dropped) if the sink overflows while flushing.
        """
        self.raise_if_dropped()
        while self._items:
            sequence, payload = self._items.popleft()
            if not sink(sequence, payload):
                self.hub.drop(self)
                return False
            self.delivered = sequence
        self._sink = sink
        return True

    def close(self) -> None:
        self.hub.unsubscribe(self)


class Hub:
    """Subscribers indexed by filter, the head sequence and the drop count."""

    def __init__(self, queue_limit: int):
        self.queue_limit = queue_limit
        self.head = 0
        # False until the upstream has told us the store's head: `head` means nothing before.
        self.synced = False
        self.drops = 0
        self._ids = itertools.count(1)
        # Keyed by (project or None, session or None); tuples so that publish iterates a
        # snapshot while callbacks subscribe or unsubscribe.
        self._index: dict[tuple[str | None, str | None], tuple[Subscription, ...]] = {}
        self._count = 0
        # Set whenever the number of subscribers changes (for the upstream's waits).
        self._count_changed = asyncio.Event()
        self.store_error = ""
        self._condition_listeners: list[Callable[[str], None]] = []

    def __len__(self) -> int:
        return self._count

    def subscribe(self, filter: Filter, limit: int | None = None,
                  on_drop: DropCallback | None = None) -> Subscription:
        sub = Subscription(self, next(self._ids), filter, limit or self.queue_limit, on_drop)
        key = (filter.project, filter.session)
        self._index[key] = (*self._index.get(key, ()), sub)
        self._count += 1
        self._count_changed.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        key = (sub.filter.project, sub.filter.session)
        subs = self._index.get(key, ())
        if sub not in subs:
            return
        remaining = tuple(s for s in subs if s is not sub)
        if remaining:
            self._index[key] = remaining
        else:
            del self._index[key]
        self._count -= 1
        self._count_changed.set()

    async def wait_for_subscribers(self) -> None:
        """Return once the hub has a subscriber (at once if it has one)."""
        while not self._count:
            self._count_changed.clear()
            await self._count_changed.wait()

    async def wait_until_idle(self, grace: float) -> None:
        """Return once the hub has had no subscriber for `grace` seconds in a row."""
        while True:
            await self._wait_for_none()
            self._count_changed.clear()
            try:
                await asyncio.wait_for(self._count_changed.wait(), grace)
            except TimeoutError:
                if not self._count:
                    return

    async def _wait_for_none(self) -> None:
        while self._count:
            self._count_changed.clear()
            await self._count_changed.wait()

    def drop(self, sub: Subscription) -> None:
        """Remove a subscriber whose queue overflowed and tell it why."""
        self.unsubscribe(sub)
        self.drops += 1
        sub.fail(SlowConsumer(sub.limit, sub.delivered))

    def shutdown(self) -> None:
        """End every subscription (the service is stopping)."""
        for subs in list(self._index.values()):
            for sub in subs:
                self.unsubscribe(sub)
                sub.fail(ShuttingDown(sub.delivered))

    def on_store_error(self, listener: Callable[[str], None]) -> None:
        """Call `listener` with the store's write condition each time it changes."""
        self._condition_listeners.append(listener)

    def set_store_error(self, write_error: str) -> None:
        if write_error == self.store_error:
            return
        self.store_error = write_error
        for listener in self._condition_listeners:
            try:
                listener(write_error)
            except Exception:
                log.exception("store condition listener failed")

    def advance(self, sequence: int) -> None:
        """Move the head without a change (the store's head when first connected)."""
        self.head = max(self.head, sequence)
        self.synced = True

    def reset_head(self, sequence: int) -> None:
        """The store was replaced by one with a shorter history: follow it from there."""
        self.head = sequence
        self.synced = True

    def publish(self, sequence: int, project: str, session: str, payload: object) -> None:
        """Offer one change to every matching subscriber; never waits, never raises.

        A subscriber whose outlet fails is dropped like a slow one (it can resume with
        `since`); the others still get the change.
        """
        if sequence <= self.head:
            return  # already published (an upstream resume never repeats, but be sure)
        self.head = sequence
        index = self._index
        # Narrowest filters first: a client watching one session is handed its change (and
        # its sender woken) before the hundreds that may be watching everything.
        for key in ((project, session), (None, session), (project, None), (None, None)):
            subs = index.get(key)
            if subs:
                for sub in subs:
                    try:
                        delivered = sub.offer(sequence, payload)
                    except Exception:
                        log.exception("subscriber %d failed to take change %d", sub.id, sequence)
                        delivered = False
                    if not delivered:
                        self.drop(sub)
