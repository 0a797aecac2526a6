"""The analysis follower: session analysis of committed records, in the store's order.

The analysis service starts it as a child process (`python -m services.analysis.follower`,
through threadline.lifeline, which stops it when the service dies) at
the lowest CPU priority (`NICENESS`): analysing costs far more than threading, and run inline
it halved the pipeline's bulk throughput on a 2-core machine. While a bulk import is under
way (a large backlog that still grows) it stands aside altogether (`BulkImport`): even at the
lowest priority, on two cores it took a quarter of the import's throughput. It reads the
committed records itself, through a read-only connection (WAL lets it read while the store
writes), so the store's process spends nothing on feeding it; only its results go through
the store's writer. It learns that something was stored from the store's `Changes` feed,
heads only (one sequence per commit, no payload: next to nothing for the store to send):
it reads when the head moves beyond what it has read, so a record is analysed within
milliseconds of its commit, and an idle follower does not touch the database. Until the
store answers (start-up, a restart) it waits for it, reconnecting with gRPC's backoff. In a
bulk import it trails the import and catches up.

Exactly once, through restarts: it reads from its checkpoint (`analysis_progress`), and every
batch it writes carries the analysis of a run of committed records together with the
sequence of the last one (`Batch.analysed_through`), committed in one transaction, and the
store applies it only if the checkpoint is still the one the run started from
(`Batch.analysed_after`): a follower that outlived a restart cannot apply a run twice. A
session it
does not hold is rebuilt from the records stored before the one at hand
(sessions.SessionAnalyser). When anything breaks (the feed or the write stream ends or
fails), it drops its state and starts again from the checkpoint, after `bootstrap.Backoff`,
following the feed again from the last stored record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from services.analysis import wire
from services.analysis.sessions import SessionAnalyser
from services.analysis.store_access import StoreReader
from threadline import auth, bootstrap, config, heap, telemetry
from threadline.auth import Security
from threadline.domain.links import ThreadLink
from threadline.domain.records import Record
from threadline.v1 import common_pb2, store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)
NICENESS = 19
# Records analysed and written as one batch.
PAGE = 500
# Standing aside for a bulk import (BulkImport).
BULK_BACKLOG = 2000
BULK_CHECK_SECONDS = 0.5
MAX_YIELD_SECONDS = 120.0


class BulkImport:
    """Whether to stand aside for a bulk import: while the changes stored after the
    checkpoint pass `BULK_BACKLOG` and their number still grows, the follower waits, so that
    on a small machine the import gets the CPU and the analysis catches up after it (live
    traffic never builds such a backlog). It never waits longer than `MAX_YIELD_SECONDS` in
    a row: under endless heavy traffic it analyses beside it.

    The head is the store's (its `Changes` feed): records, parse errors and analysis changes
    alike. The follower's own results move it too; `wrote` counts them in advance, so that
    catching up after an import does not look like the import going on."""

    def __init__(self) -> None:
        self._head = 0
        self._since: float | None = None

    def wrote(self, updates: int) -> None:
        """The follower sent a batch of `updates` session updates: the store numbers each as
        at most two changes (thread and analysis), which are not an import."""
        self._head += 2 * updates

    def under_way(self, head: int, checkpoint: int, now: float) -> bool:
        growing, self._head = head > self._head, max(head, self._head)
        if head - checkpoint <= BULK_BACKLOG or not growing:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since < MAX_YIELD_SECONDS


class Head:
    """The store's last change sequence as its feed reports it, and an event set whenever it
    moves (or anything else the follower waits for happens)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.moved = asyncio.Event()

    def advance(self, seq: int) -> None:
        if seq > self.seq:
            self.seq = seq
            self.moved.set()


async def _follow_heads(feed, head: Head, backoff: bootstrap.Backoff) -> None:
    """Move `head` as the store's heads-only feed reports commits; ends with the feed."""
    async for batch in feed:
        backoff.reset()  # the store answers: the next reconnect starts at the shortest wait
        if batch.changes:  # a batch carrying the store's write condition has none
            head.advance(batch.changes[-1].sequence)


async def _first(awaitable, stop: asyncio.Event) -> bool:
    """Await `awaitable` unless `stop` is set first; whether it finished."""
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
    if not task.done():
        return False
    task.result()  # its error, if any, is the caller's
    return True


class Follower:
    def __init__(self, store_addr: str, db: Path, security: Security | None = None):
        self._store_addr = store_addr
        self._security = security
        self._reader = StoreReader(db)
        self.analyser = SessionAnalyser(self._reader.session_records)
        # Analysis (and the reads that rebuild a session) block: one thread, in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="follower")
        self._batch_id = 0

    def analyse(self, since: int, items: list[tuple[int, Record, ThreadLink]]
                ) -> common_pb2.Batch:
        """The write batch for a run of stored records (sequence, record, link) that follows
        the checkpoint `since`; the store refuses it unless the checkpoint is still there."""
        changes = self.analyser.analyse(items)
        self._batch_id += 1
        return common_pb2.Batch(batch_id=self._batch_id,
                                analysis=[wire.update_to_pb(c) for c in changes.values()],
                                analysed_after=since, analysed_through=items[-1][0])

    async def run(self, stop: asyncio.Event) -> None:
        backoff = bootstrap.Backoff()
        while not stop.is_set():
            try:
                await self._follow(stop, backoff)
            except (grpc.aio.AioRpcError, OSError, asyncio.InvalidStateError) as exc:
                # The store went away or refused a batch (its stream then ends).
                reason = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else exc
                log.warning("analysis follower: %s; starting again from the checkpoint", reason)
            except Exception:
                log.exception("analysis follower failed; starting again from the checkpoint")
            self.analyser.reset()
            if not stop.is_set():
                await backoff.wait()

    async def _follow(self, stop: asyncio.Event, backoff: bootstrap.Backoff) -> None:
        loop = asyncio.get_running_loop()
        async with bootstrap.channel(self._store_addr, self._security) as channel:
            # Until the store answers there is nothing to analyse: gRPC reconnects meanwhile
            # (with its own backoff, CHANNEL_OPTIONS), and the database is not read.
            if not await _first(channel.channel_ready(), stop):
                return
            since = await loop.run_in_executor(self._worker, self._reader.analysed_through)
            # The feed starts at the last stored record: what lies before it is read from the
            # checkpoint on anyway, and replaying its heads first would look like a bulk
            # import under way (BulkImport) until the replay ended.
            head = Head(await loop.run_in_executor(self._worker, self._reader.last_message_seq))
            stub = store_pb2_grpc.StoreServiceStub(channel)
            feed = stub.Changes(store_pb2.ChangesRequest(since_sequence=head.seq, follow=True,
                                                         heads_only=True))
            heads = asyncio.create_task(_follow_heads(feed, head, backoff))
            writes = stub.Write()
            acks = asyncio.create_task(self._drain(writes))
            stopped = asyncio.create_task(stop.wait())
            for task in (heads, acks, stopped):
                task.add_done_callback(lambda _: head.moved.set())
            # Records up to `seen` are read (those after `since` analysed in this pass); a
            # head beyond it means something was stored since. The follower's own results
            # move the head too: each costs one read that finds no new record.
            seen = since
            bulk = BulkImport()
            try:
                while not stop.is_set():
                    head.moved.clear()
                    for task in (acks, heads):
                        if task.done():  # the store refused a batch, went away or ended
                            task.result()  # the feed: raises its error, or just reconnects
                            return
                    if head.seq <= seen:
                        await head.moved.wait()
                        continue
                    target = head.seq
                    if bulk.under_way(target, since, loop.time()):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), BULK_CHECK_SECONDS)
                        continue
                    items = await loop.run_in_executor(self._worker, self._reader.records_after,
                                                       since, PAGE)
                    if len(items) < PAGE:  # every record stored up to `target` is in hand
                        seen = target
                    if not items:
                        continue
                    batch = await loop.run_in_executor(self._worker, self.analyse, since, items)
                    await writes.write(batch)
                    bulk.wrote(len(batch.analysis))
                    since = items[-1][0]
            finally:
                for task in (stopped, heads, acks):
                    task.cancel()
                feed.cancel()
                writes.cancel()

    @staticmethod
    async def _drain(writes) -> None:
        async for _ack in writes:
            pass

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._reader.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.analysis.follower")
    parser.add_argument("--store-addr", required=True)
    parser.add_argument("--db", required=True)  # a SQLite file or a database URL
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--tls-ca", type=Path)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(NICENESS)
    telemetry.setup_logging(args.log_level)
    telemetry.setup_tracing("threadline-analysis-follower")
    settings = config.resolve({"db": args.db, "store_addr": args.store_addr,
                               "tls_ca": args.tls_ca})
    follower = Follower(args.store_addr, settings.db, auth.for_client(settings))

    # Stopping when the analysis service is gone (even killed outright) is lifeline's job: the
    # service starts this process through it, bound before the slow imports above.
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        trimmer = asyncio.create_task(heap.trim_periodically())
        await follower.run(stop)
        trimmer.cancel()

    try:
        asyncio.run(run())
    finally:
        follower.close()
        telemetry.shutdown_tracing()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
