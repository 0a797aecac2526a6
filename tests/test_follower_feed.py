"""The analysis follower learns what the store committed from its `Changes` feed (heads
only): a real store on port 0, the follower in this process. It reads the database when the
head moves and only then: not while idle, not while the store is not there yet; and it
survives the store restarting under it without missing a record or analysing one twice."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select
from store_support import batch, messages, settings, wait_for, write

from services.analysis.follower import BULK_BACKLOG, PAGE, BulkImport, Follower
from services.store import server as store_server
from threadline import auth, bootstrap
from threadline.storage import schema
from threadline.storage.analysis import analysed_through, last_message_seq
from threadline.storage.readonly import open_readonly
from threadline.v1 import store_pb2_grpc

# How long an idle follower is watched for reads.
IDLE_SECONDS = 1.0
# Allowed from a batch's acknowledgement to its analysis: generous for a loaded 2-core
# machine; live it takes milliseconds.
PROMPT_SECONDS = 2.0


class CountingReads:
    """Counts every read the follower makes through its reader (StoreReader.run)."""

    def __init__(self, follower: Follower):
        self.count = 0
        reader = follower._reader
        run = reader.run

        def counted(*args, **kwargs):
            self.count += 1
            return run(*args, **kwargs)

        reader.run = counted  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def following(db: Path, port: int) -> AsyncIterator[tuple[Follower, CountingReads]]:
    # The installation's token, which the analysis service makes before starting its follower.
    auth.ensure_token(auth.token_path(db))
    follower = Follower(f"127.0.0.1:{port}", db, auth.for_client(settings(db)))
    reads = CountingReads(follower)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        yield follower, reads
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        follower.close()


@contextlib.asynccontextmanager
async def client(db: Path, port: int) -> AsyncIterator[store_pb2_grpc.StoreServiceStub]:
    channel = bootstrap.channel(f"127.0.0.1:{port}", auth.for_client(settings(db)))
    # The follower's connection attempts to this address (one process shares them) may still
    # be backing off from a moment ago when the store was not there.
    await asyncio.wait_for(channel.channel_ready(), 10)
    try:
        yield store_pb2_grpc.StoreServiceStub(channel)
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def store_on(db: Path, port: int = 0
                   ) -> AsyncIterator[tuple[store_server.Running,
                                            store_pb2_grpc.StoreServiceStub]]:
    run = await store_server.start(settings(db, port=port))
    try:
        async with client(db, run.port) as stub:
            yield run, stub
    finally:
        await run.stop()


def analysed(db: Path) -> tuple[int, int]:
    """(the follower's checkpoint, the last stored record's sequence)."""
    with open_readonly(db).connect() as conn:
        return analysed_through(conn), last_message_seq(conn)


def caught_up(db: Path) -> bool:
    checkpoint, last = analysed(db)
    return last > 0 and checkpoint == last


def summaries(db: Path) -> dict[str, int]:
    """Messages counted by analysis, per session."""
    with open_readonly(db).connect() as conn:
        ss = schema.session_summaries
        return dict(conn.execute(select(ss.c.session_id, ss.c.messages)).all())


async def settled(reads: CountingReads) -> None:
    """Wait until the follower has stopped reading (its own results wake it once)."""
    last = -1
    while reads.count != last:
        last = reads.count
        await asyncio.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_written_batch_is_analysed_promptly_and_an_idle_follower_reads_nothing(tmp_path):
    db = tmp_path / "t.db"

    async def scenario() -> list[float]:
        delays = []
        async with store_on(db) as (run, stub), following(db, run.port) as (_, reads):
            for n in range(3):
                await write(stub, [batch(n + 1, messages(10 * n, 10, prefix=f"b{n}-"),
                                         offset=1000 * n)])
                written = time.monotonic()
                await wait_for(lambda: caught_up(db), timeout=PROMPT_SECONDS)
                delays.append(time.monotonic() - written)
                await settled(reads)
                before = reads.count
                await asyncio.sleep(IDLE_SECONDS)
                assert reads.count == before, "an idle follower read the database"
        return delays

    delays = asyncio.run(scenario())
    assert len(delays) == 3 and max(delays) < PROMPT_SECONDS
    assert summaries(db) == {"s1": 30}


def test_the_follower_waits_for_a_store_that_is_not_there_yet_without_reading(tmp_path):
    db = tmp_path / "t.db"
    port = free_port()

    async def scenario() -> None:
        async with following(db, port) as (_, reads):
            await asyncio.sleep(IDLE_SECONDS)
            assert reads.count == 0, "the follower read while the store was not there"
            async with store_on(db, port) as (_, stub):
                await write(stub, [batch(1, messages(0, 5))])
                await wait_for(lambda: caught_up(db), timeout=10)

    asyncio.run(scenario())
    assert summaries(db) == {"s1": 5}


def test_a_store_restart_midway_is_survived_without_missing_or_repeating_a_record(tmp_path):
    db = tmp_path / "t.db"
    # Pages enough that the store stops while the follower is in the middle of them.
    first = 6 * PAGE

    async def scenario() -> None:
        run = await store_server.start(settings(db))
        port = run.port
        async with following(db, port):
            async with client(db, port) as stub:
                await write(stub, [batch(1, messages(0, first, session="s1"))])
            # Stopped at once, while the follower is analysing (its writes then fail).
            await run.stop()
            midway, _ = analysed(db)
            async with store_on(db, port) as (_, stub):
                await write(stub, [batch(2, messages(0, 10, session="s2", prefix="n",
                                                     path="/transcripts/proj/s2.jsonl"),
                                         path="/transcripts/proj/s2.jsonl")])
                await wait_for(lambda: caught_up(db), timeout=60)
        assert midway < first  # the store did stop before the follower was through

    asyncio.run(scenario())
    assert summaries(db) == {"s1": first, "s2": 10}


def test_the_followers_own_results_moving_the_head_are_not_taken_for_a_bulk_import():
    """The feed's head counts the follower's analysis changes too: catching up after an
    import, each batch it writes moves the head, and that alone must not make it stand aside
    (it would then analyse one page per BULK_CHECK_SECONDS)."""
    bulk = BulkImport()
    big = BULK_BACKLOG + 1000
    assert bulk.under_way(head=big, checkpoint=0, now=0.0)  # the import still grows
    assert not bulk.under_way(head=big, checkpoint=0, now=1.0)  # it ended: catch up
    bulk.wrote(3)  # a page of three sessions: up to six changes
    assert not bulk.under_way(head=big, checkpoint=PAGE, now=1.5)  # not committed yet
    assert not bulk.under_way(head=big + 5, checkpoint=PAGE, now=2.0)
    assert bulk.under_way(head=big + 5 + BULK_BACKLOG, checkpoint=PAGE, now=2.5)  # an import
