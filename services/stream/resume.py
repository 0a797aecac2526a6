"""Resuming a subscription from a sequence with no gap and no duplicate.

The order matters: the subscriber registers with the hub first, so every live change from then
on is buffered in its queue; the missing range is then replayed from the store; finally the
buffered changes are delivered, skipping those the replay already covered. Because the store
commits a change before streaming it, the replay reaches at least as far as anything the hub
had published before the registration, so the two ranges overlap instead of leaving a hole.

`Replay` is supplied by the caller (the store client), which keeps this module free of gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from services.stream.errors import SinceBeyondHead
from services.stream.hub import Filter, Hub, Subscription

Batch = list[tuple[int, object]]
# replay(since, filter) yields batches of (sequence, payload) after `since`, in order, then ends.
Replay = Callable[[int, Filter], AsyncIterator[Batch]]
# resolve(filter) is the filter with the names a user gave (a project's short name or alias, a
# session id prefix) made the keys changes carry; raises InvalidRequest for an ambiguous one.
Resolve = Callable[[Filter], Awaitable[Filter]]


async def as_given(filter: Filter) -> Filter:
    """A `Resolve` that takes every name as it is given."""
    return filter


def check_since(hub: Hub, since: int | None) -> None:
    """Refuse a `since` past the head, which would otherwise get silence until the head passes
    it (forever, if the store was replaced). Not judged before the head is known."""
    if since is not None and hub.synced and since > hub.head:
        raise SinceBeyondHead(since, hub.head)


async def catch_up(sub: Subscription, replay: Replay, since: int) -> AsyncIterator[Batch]:
    """Yield every stored change after `since`; afterwards `sub` holds only later ones."""
    last = since
    async for batch in replay(since, sub.filter):
        sub.raise_if_dropped()
        if batch:
            last = batch[-1][0]
            yield batch
    sub.skip_through(last)


async def follow(hub: Hub, replay: Replay, filter: Filter,
                 since: int | None) -> AsyncIterator[Batch]:
    """Every matching change after `since` (live only when None), batch by batch, forever.

    Raises SlowConsumer when the subscriber is dropped. Close it with `aclosing` so the
    subscription leaves the hub as soon as the consumer stops.
    """
    sub = hub.subscribe(filter)
    try:
        if since is not None:
            async for batch in catch_up(sub, replay, since):
                yield batch
        while True:
            yield await sub.next_batch()
    finally:
        sub.close()
