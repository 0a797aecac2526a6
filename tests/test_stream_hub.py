"""The hub and the resume logic, as plain objects (no gRPC, no sockets)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from services.stream import resume
from services.stream.errors import SlowConsumer
from services.stream.hub import Filter, Hub


def test_publish_reaches_matching_subscribers_only():
    async def main():
        hub = Hub(10)
        every = hub.subscribe(Filter())
        project = hub.subscribe(Filter("p1"))
        session = hub.subscribe(Filter(None, "s2"))
        both = hub.subscribe(Filter("p1", "s1"))
        hub.publish(1, "p1", "s1", "a")
        hub.publish(2, "p2", "s2", "b")
        hub.publish(3, "p1", "s2", "c")
        assert [s for s, _ in await every.next_batch()] == [1, 2, 3]
        assert [s for s, _ in await project.next_batch()] == [1, 3]
        assert [s for s, _ in await session.next_batch()] == [2, 3]
        assert [s for s, _ in await both.next_batch()] == [1]
        assert hub.head == 3

    asyncio.run(main())


def test_overflow_drops_only_the_slow_subscriber_and_says_why():
    async def main():
        hub = Hub(2)
        dropped = []
        slow = hub.subscribe(Filter(), on_drop=lambda sub, error: dropped.append(error))
        fast = hub.subscribe(Filter())
        hub.publish(1, "p", "s", 1)
        assert [s for s, _ in await slow.next_batch()] == [1]
        assert [s for s, _ in await fast.next_batch()] == [1]
        for seq in range(2, 6):
            hub.publish(seq, "p", "s", seq)
            assert [s for s, _ in await fast.next_batch()] == [seq]
        assert len(dropped) == 1 and "since=1" in str(dropped[0])
        assert hub.drops == 1 and len(hub) == 1
        with pytest.raises(SlowConsumer):
            await slow.next_batch()

    asyncio.run(main())


def test_duplicate_sequences_are_not_published_twice():
    async def main():
        hub = Hub(10)
        sub = hub.subscribe(Filter())
        hub.publish(1, "p", "s", 1)
        hub.publish(1, "p", "s", 1)
        hub.publish(2, "p", "s", 2)
        assert [s for s, _ in await sub.next_batch()] == [1, 2]

    asyncio.run(main())


def test_attach_flushes_buffer_then_delivers_live_straight_to_the_sink():
    async def main():
        hub = Hub(10)
        sub = hub.subscribe(Filter())
        hub.publish(1, "p", "s", 1)
        hub.publish(2, "p", "s", 2)
        sub.skip_through(1)
        got = []
        assert sub.attach(lambda seq, payload: got.append(seq) is None)
        hub.publish(3, "p", "s", 3)
        assert got == [2, 3]
        # A sink that reports overflow gets the subscription dropped.
        full = hub.subscribe(Filter())
        full.attach(lambda seq, payload: False)
        hub.publish(4, "p", "s", 4)
        assert full.error is not None and hub.drops == 1

    asyncio.run(main())


def test_follow_with_since_has_no_gap_and_no_duplicate():
    """Changes published while the replay runs are delivered once, after the replayed ones."""

    async def main():
        hub = Hub(100)
        stored = list(range(1, 6))
        for seq in stored:
            hub.publish(seq, "p", "s", seq)

        async def replay(since, filter):
            snapshot = list(stored)  # the store's view when the replay starts
            # Live changes arrive while the replay is running: some inside its snapshot...
            for seq in (6, 7):
                stored.append(seq)
                hub.publish(seq, "p", "s", seq)
            snapshot += [6, 7]
            for seq in snapshot:
                if seq > since:
                    yield [(seq, seq)]
                    if seq == 4:  # ...and some after it
                        for later in (8, 9):
                            stored.append(later)
                            hub.publish(later, "p", "s", later)

        got = []
        async with aclosing(resume.follow(hub, replay, Filter(), 2)) as feed:
            async for batch in feed:
                got += [s for s, _ in batch]
                if got[-1] == 9:
                    break
        assert got == list(range(3, 10))
        assert len(hub) == 0  # closing the feed left the hub

    asyncio.run(main())


def test_a_subscriber_whose_outlet_raises_is_dropped_and_the_rest_still_get_the_change():
    async def main():
        hub = Hub(10)
        broken = hub.subscribe(Filter())

        def sink(sequence: int, payload: object) -> bool:
            raise RuntimeError("a bug in one outlet")

        broken.attach(sink)
        other = hub.subscribe(Filter())
        hub.publish(1, "p1", "s1", "x")  # must not raise
        assert await other.next_batch() == [(1, "x")]
        with pytest.raises(SlowConsumer):
            broken.raise_if_dropped()
        assert len(hub) == 1 and hub.head == 1

    asyncio.run(main())
