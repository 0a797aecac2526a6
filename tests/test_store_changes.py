"""Changes feed: replay, gap-free handoff to live changes, slow subscribers."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from store_support import batch, messages, parse_error, running_store, wait_for, write

from services.store.changefeed import ChangeFeed, Condition, LiveChange, replay_then_follow
from threadline.storage.errors import SubscriberTooSlow
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2 as spb
from threadline.v1.store_pb2_grpc import StoreServiceStub


def _batches(first_id: int, start: int, count: int, per_batch: int, **kw) -> list[pb.Batch]:
    return [batch(first_id + n, messages(start + n * per_batch, per_batch, **kw),
                  offset=(start + (n + 1) * per_batch) * 100)
            for n in range(count)]


def test_replay_returns_exactly_the_later_changes(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            await write(stub, _batches(1, 0, 3, 400))  # more than one replay page
            await write(stub, [batch(9, errors=[parse_error(5)])])
            seen = [c async for c in flat(stub.Changes(spb.ChangesRequest(since_sequence=150)))]
            assert [c.sequence for c in seen] == list(range(151, 1202))
            assert seen[0].message.key == "m150" and seen[0].message.raw == b""
            assert seen[0].kind == pb.CHANGE_KIND_MESSAGE and seen[0].session_id == "s1"
            assert seen[-1].kind == pb.CHANGE_KIND_PARSE_ERROR
            assert seen[-1].parse_error.source.byte_offset == 5
            only = [c async for c in flat(stub.Changes(spb.ChangesRequest(project_key="nope")))]
            assert only == []

    asyncio.run(main())


def test_follow_hands_over_from_replay_to_live_without_gap_or_duplicate(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            await write(stub, _batches(1, 0, 4, 500))
            call = stub.Changes(spb.ChangesRequest(since_sequence=100, follow=True))
            # Writes keep landing while the replay pages through the first 2000.
            writer = asyncio.create_task(write(stub, _batches(100, 2000, 40, 25)))
            seqs = []
            async for change in flat(call):
                seqs.append(change.sequence)
                if change.sequence >= 3000:
                    break
            await writer
            call.cancel()
            assert seqs == list(range(101, 3001))

    asyncio.run(main())


def test_live_changes_carry_the_batch_trace_context_and_honour_filters(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            call = stub.Changes(spb.ChangesRequest(follow=True, session_id="sess-2"))
            changes = flat(call)
            # Until this marker arrives the stream may still be replaying from the database
            # (replayed changes carry no trace context); after it, everything is live.
            await write(stub, [batch(1, messages(5, 1, session="sess-2"))])
            assert (await anext(changes)).message.key == "m5"
            traced = batch(3, messages(10, 2, session="sess-2"))
            traced.trace_context["traceparent"] = (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            await write(stub, [batch(2, messages(0, 3)), traced])
            got = [await anext(changes), await anext(changes)]
            call.cancel()
            assert [c.message.key for c in got] == ["m10", "m11"]
            assert all(c.message.raw == b"" for c in got)
            assert got[0].trace_context["traceparent"].split("-")[1] == (
                "0af7651916cd43dd8448eb211c80319c")

    asyncio.run(main())


def test_slow_subscriber_is_ended_without_blocking_a_fast_one(database_url):
    async def main():
        async with running_store(database_url, subscriber_queue=300) as (run, stub):
            # The slow client never reads: once its HTTP/2 window is full (no BDP probing to
            # grow it), the store's queue for it fills and overflows.
            slow_channel = grpc.aio.insecure_channel(f"127.0.0.1:{run.port}",
                                                     options=[("grpc.http2.bdp_probe", 0)])
            slow = StoreServiceStub(slow_channel).Changes(spb.ChangesRequest(follow=True))
            fast = stub.Changes(spb.ChangesRequest(follow=True))
            await wait_for(lambda: run.feed.subscriber_count == 2)
            seqs: list[int] = []
            for round_ in range(20):  # 2000 changes of ~8 KB, 100 at a time
                await write(stub, _batches(round_ * 10, round_ * 100, 10, 10, text="x" * 4000))
                while len(seqs) < (round_ + 1) * 100:
                    seqs.extend(c.sequence for c in (await fast.read()).changes)
            total = len(seqs)
            assert seqs == list(range(1, total + 1))
            assert run.feed.slow_disconnects == 1
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for change in flat(slow):
                    received.append(change.sequence)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert received == list(range(1, len(received) + 1))
            # It resumes from the last sequence it got, losing nothing.
            last = received[-1] if received else 0
            rest = [c.sequence async for c in flat(stub.Changes(spb.ChangesRequest(
                since_sequence=last)))]
            assert received + rest == list(range(1, total + 1))
            fast.cancel()
            await slow_channel.close()

    asyncio.run(main())


def test_follow_ends_when_the_store_stops(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            call = stub.Changes(spb.ChangesRequest(follow=True))
            await wait_for(lambda: run.feed.subscriber_count == 1)
            await run.stop()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(main())


async def flat(call, limit: int | None = None):
    """The changes of a Changes stream, one by one (the store sends them in batches)."""
    count = 0
    async for changes in call:
        for change in changes.changes:
            yield change
            count += 1
            if count == limit:
                return


def _live(seqs) -> list[LiveChange]:
    return [LiveChange(s, "p", "s", s) for s in seqs]


def test_handoff_skips_what_the_replay_already_sent():
    """Changes committed while the replay reads arrive twice (database and live queue):
    each is yielded once, in order."""
    async def main():
        feed = ChangeFeed(limit=100)
        stored = list(range(1, 8))

        async def read_page(after):
            page = [(s, s) for s in stored if s > after][:3]
            if after == 3:  # a commit lands between two pages: stored AND published
                stored.extend([8, 9])
                feed.publish(_live([8, 9]))
            return page

        out = []
        async with contextlib.aclosing(
                replay_then_follow(feed, read_page, 0, True, page_size=3)) as changes:
            async for items in changes:
                out.extend(items)
                if 9 in items:
                    feed.publish(_live([10]))
                if 10 in items:
                    break
        assert out == list(range(1, 11))
        assert feed.subscriber_count == 0

    asyncio.run(main())


def test_overflow_during_replay_keeps_replaying():
    async def main():
        feed = ChangeFeed(limit=2)
        stored = list(range(1, 5))
        calls = []

        async def read_page(after):
            calls.append(after)
            if len(calls) == 1:  # the live queue overflows while the replay reads
                stored.extend([5, 6, 7])
                feed.publish(_live([5, 6, 7]))
            return [(s, s) for s in stored if s > after][:10]

        gen = replay_then_follow(feed, read_page, 0, True, page_size=10)
        out = []
        while len(out) < 7:
            out.extend(await gen.__anext__())
        assert out == list(range(1, 8))
        stored.append(8)  # committed, then published, as the writer does
        feed.publish(_live([8]))
        assert await gen.__anext__() == [8]
        await gen.aclose()

    asyncio.run(main())


def test_followers_hear_the_write_condition_first_and_as_it_changes():
    """A full disk reaches every follower, even one whose filter no change matches and one
    that subscribes while it holds; heard once per change, before the changes queued with it."""
    async def main():
        feed = ChangeFeed(limit=2)

        async def read_page(after):
            return []

        narrow = feed.subscribe(session_id="another")
        feed.publish(_live([1]))
        feed.set_condition("database or disk is full at /x.db")
        feed.set_condition("database or disk is full at /x.db")  # unchanged: not repeated
        assert await narrow.get() == [Condition("database or disk is full at /x.db")]
        late = replay_then_follow(feed, read_page, 1, True)
        assert await late.__anext__() == [Condition("database or disk is full at /x.db")]
        feed.set_condition("")
        feed.publish(_live([2]))
        assert await late.__anext__() == [Condition(""), 2]
        assert await narrow.get() == [Condition("")]
        await late.aclose()

    asyncio.run(main())


def test_overflowing_live_subscriber_raises():
    async def main():
        feed = ChangeFeed(limit=2)
        sub = feed.subscribe()
        feed.publish(_live([1, 2, 3]))
        with pytest.raises(SubscriberTooSlow):
            await sub.get()
        assert feed.slow_disconnects == 1 and feed.subscriber_count == 0

    asyncio.run(main())


def test_live_changes_carry_the_key_the_store_gave_a_keyless_message(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            call = stub.Changes(spb.ChangesRequest(follow=True))
            await wait_for(lambda: run.feed.subscriber_count == 1)
            keyless = messages(0, 1)
            keyless[0].key = ""
            await write(stub, [batch(1, keyless, offset=100)])
            (live,) = [c async for c in flat(call, limit=1)]
            call.cancel()
            (replayed,) = [c async for c in flat(stub.Changes(spb.ChangesRequest()))]
            assert live.message.key == replayed.message.key == f"{keyless[0].source.path}:0"

    asyncio.run(main())


def test_heads_only_sends_the_last_change_of_each_batch_without_payload(database_url):
    async def main():
        async with running_store(database_url) as (run, stub):
            await write(stub, _batches(1, 0, 3, 400))  # 1,200 stored: three replay pages
            heads = stub.Changes(spb.ChangesRequest(since_sequence=100, follow=True,
                                                    heads_only=True))
            replayed = [await heads.read() for _ in range(3)]
            assert [[c.sequence for c in b.changes] for b in replayed] == [[600], [1100], [1200]]
            await wait_for(lambda: run.feed.subscriber_count == 1)
            assert not run.feed.wants_payloads
            await write(stub, [batch(9, messages(2000, 5), offset=500_000),
                               batch(10, errors=[parse_error(600_000)])])
            # One change per commit (the two batches may share one): the last one's head.
            live = [c for c in (await heads.read()).changes]
            if live[-1].sequence == 1205:
                assert live[-1].kind == pb.CHANGE_KIND_MESSAGE
                assert live[-1].session_id == "s1" and not live[-1].HasField("payload")
                live = [c for c in (await heads.read()).changes]
            assert [(c.sequence, c.kind) for c in live] == [
                (1206, pb.CHANGE_KIND_PARSE_ERROR)]
            # The error's folder ("proj") stands for the one project its sessions ran in.
            assert not live[0].HasField("payload") and live[0].project_key == "/work"

            # A subscriber that wants payloads gets them all; heads-only still gets heads.
            full = stub.Changes(spb.ChangesRequest(since_sequence=1206, follow=True))
            await wait_for(lambda: run.feed.wants_payloads)
            await write(stub, [batch(11, messages(3000, 3), offset=700_000)])
            got = [c async for c in flat(full, limit=3)]
            assert [c.message.key for c in got] == ["m3000", "m3001", "m3002"]
            (head,) = (await heads.read()).changes
            assert head.sequence == 1209 and not head.HasField("payload")
            full.cancel()
            await wait_for(lambda: not run.feed.wants_payloads)
            heads.cancel()

    asyncio.run(main())


def test_heads_only_takes_no_filter(database_url):
    async def main():
        async with running_store(database_url) as (_run, stub):
            call = stub.Changes(spb.ChangesRequest(heads_only=True, session_id="s1"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(main())
