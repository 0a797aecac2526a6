"""Live fan-out of committed changes, and the replay-then-follow handoff.

Backpressure policy: every subscriber has a bounded queue (`limit` changes). Publishing never
waits: a subscriber whose queue would overflow is dropped on the spot and its stream ends with
`SubscriberTooSlow` (RESOURCE_EXHAUSTED on the wire). It loses nothing: subscribing again with
the last sequence it received replays the rest from the database. The writer and the other
subscribers are never slowed by a slow one.

Changes are opaque here (`LiveChange.payload`); only their sequence and filter keys are read.
Everything runs on the event loop: `publish` is called from the writer's commit hook.

A subscriber may want heads only: how far the store got, not what it stored
(`ChangesRequest.heads_only`). While every subscriber does (`wants_payloads` is False), the
commit hook builds no payloads, but for the last change's head: copying each stored message
into an event is most of the feed's cost.

The store's write condition (why writes fail right now, "" once they succeed) goes to every
follower as it changes, and first of all to one that subscribes while a condition holds: a
`Condition` among the payloads. It takes no room in the queue (it changes a few times in a
store's life), so a full disk is announced even to a follower that is behind.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.storage.errors import StoreClosed, SubscriberTooSlow


@dataclass(slots=True, frozen=True)
class LiveChange:
    seq: int
    project_key: str
    session_id: str
    payload: Any


@dataclass(slots=True, frozen=True)
class Condition:
    """The store's write condition changed: why writes fail now, "" once they succeed."""

    write_error: str


class Subscription:
    def __init__(self, feed: ChangeFeed, project_key: str, session_id: str, limit: int,
                 heads_only: bool = False):
        self.project_key = project_key
        self.session_id = session_id
        self.limit = limit
        self.heads_only = heads_only
        self.overflowed = False
        self.closed = False
        self._items: deque[LiveChange] = deque()
        # The condition not yet taken by `get`, if it changed since the last one.
        self._condition: Condition | None = None
        self._wakeup = asyncio.Event()
        self._feed = feed

    def matches(self, c: LiveChange) -> bool:
        return ((not self.project_key or c.project_key == self.project_key)
                and (not self.session_id or c.session_id == self.session_id))

    def _offer(self, changes: Sequence[LiveChange]) -> bool:
        """Queue the matching changes; False when this overflows the queue."""
        if self.project_key or self.session_id:
            changes = [c for c in changes if self.matches(c)]
        if not changes:
            return True
        if len(self._items) + len(changes) > self.limit:
            self.overflowed = True
            self._items.clear()
            self._wakeup.set()
            return False
        self._items.extend(changes)
        self._wakeup.set()
        return True

    def _note(self, condition: Condition) -> None:
        self._condition = condition
        self._wakeup.set()

    def _end(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def get(self) -> list[LiveChange | Condition]:
        """Wait for changes and take every queued one (a changed condition first)."""
        while True:
            if self.overflowed:
                raise SubscriberTooSlow(self.limit + 1, self.limit)
            if self._items or self._condition is not None:
                items: list[LiveChange | Condition] = []
                if self._condition is not None:
                    items.append(self._condition)
                    self._condition = None
                items.extend(self._items)
                self._items.clear()
                return items
            if self.closed:
                raise StoreClosed("the store is shutting down")
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        self._feed._remove(self)


class ChangeFeed:
    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("subscriber queue limit must be >= 1")
        self.limit = limit
        self.slow_disconnects = 0
        self._subscribers: set[Subscription] = set()
        self._closed = False
        # Why the store cannot write right now; "" while it can.
        self.write_error = ""

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def wants_payloads(self) -> bool:
        """Whether any subscriber wants more than the heads of the changes."""
        return any(not sub.heads_only for sub in self._subscribers)

    def subscribe(self, project_key: str = "", session_id: str = "",
                  heads_only: bool = False) -> Subscription:
        if self._closed:
            raise StoreClosed("the store is shutting down")
        sub = Subscription(self, project_key, session_id, self.limit, heads_only)
        self._subscribers.add(sub)
        return sub

    def publish(self, changes: Sequence[LiveChange]) -> None:
        """Hand committed changes (in sequence order) to every subscriber; never blocks."""
        if not changes:
            return
        for sub in list(self._subscribers):
            if not sub._offer(changes):
                self._subscribers.discard(sub)
                self.slow_disconnects += 1

    def set_condition(self, write_error: str) -> None:
        """Tell every follower the store's new write condition (on the event loop)."""
        if write_error == self.write_error:
            return
        self.write_error = write_error
        for sub in self._subscribers:
            sub._note(Condition(write_error))

    def close(self) -> None:
        """End every subscription (their streams end with StoreClosed)."""
        self._closed = True
        for sub in self._subscribers:
            sub._end()
        self._subscribers.clear()

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)


ReadPage = Callable[[int], Awaitable[Sequence[tuple[int, Any]]]]


async def replay_then_follow(feed: ChangeFeed, read_page: ReadPage, since: int, follow: bool,
                             project_key: str = "", session_id: str = "",
                             page_size: int = 500, heads_only: bool = False
                             ) -> AsyncIterator[list[Any]]:
    """Every change after `since`: first from the database, then (with `follow`) live.

    Yields lists of payloads in sequence order: one per page read, one per live wake-up. A
    `Condition` may come first in a list: at once when following while one holds, then when
    it changes.

    The handoff is gap-free: the subscription is registered BEFORE the replay reads its last
    page, so a change committed during the replay is either read by it or queued live (or
    both: live changes at or below the last replayed sequence are skipped). If the live queue
    overflows while the replay is still reading, the replay simply goes on and subscribes
    again. `read_page(after)` returns up to `page_size` (sequence, payload) pairs. With
    `heads_only`, live payloads may be heads only (see ChangeFeed.wants_payloads).
    """
    last = since
    sub = feed.subscribe(project_key, session_id, heads_only) if follow else None
    try:
        if sub is not None and feed.write_error:
            yield [Condition(feed.write_error)]
        while True:
            page = await read_page(last)
            if page:
                yield [payload for _, payload in page]
                last = page[-1][0]
            if len(page) >= page_size:
                continue
            if sub is not None and sub.overflowed:
                sub = feed.subscribe(project_key, session_id, heads_only)
                continue
            break
        if sub is None:
            return
        while True:
            out: list[Any] = []
            for item in await sub.get():
                if isinstance(item, Condition):
                    out.append(item)
                elif item.seq > last:
                    out.append(item.payload)
                    last = item.seq
            if out:
                yield out
    finally:
        if sub is not None:
            sub.close()
