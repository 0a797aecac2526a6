"""The analysis follower: session analysis of committed records, in the store's order.

The analysis service starts it as a child process (`python -m services.analysis.follower`,
through threadline.lifeline, which stops it when the service dies) at
the lowest CPU priority (`NICENESS`): analysing costs far more than threading, and run inline
it halved the pipeline's bulk throughput on a 2-core machine. While a bulk import is under
way (a large backlog that still grows) it stands aside altogether (`BulkImport`): even at the
lowest priority, on two cores it took a quarter of the import's throughput. It reads the
committed records itself, through a read-only connection (WAL lets it read while the store
writes), so the store's process spends nothing on feeding it; only its results go through
the store's writer. Live, it looks for new records every `POLL_SECONDS` (backing off to
`POLL_MAX_SECONDS` while nothing comes) and analyses them within milliseconds of their
commit; in a bulk
import it trails the import and catches up.

Exactly once, through restarts: it reads from its checkpoint (`analysis_progress`), and every
batch it writes carries the analysis of a run of committed records together with the
sequence of the last one (`Batch.analysed_through`), committed in one transaction, and the
store applies it only if the checkpoint is still the one the run started from
(`Batch.analysed_after`): a follower that outlived a restart cannot apply a run twice. A
session it
does not hold is rebuilt from the records stored before the one at hand
(sessions.SessionAnalyser). When anything breaks, it drops its state and starts again from
the checkpoint.
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
from services.analysis.thread_links import ThreadLink
from threadline import auth, bootstrap, config, heap, telemetry
from threadline.auth import Security
from threadline.records import Record
from threadline.v1 import common_pb2, store_pb2_grpc

log = logging.getLogger(__name__)
NICENESS = 19
# Records analysed and written as one batch; and the pause when there is nothing new.
PAGE = 500
# Looking for new records: every 20 ms while they come, backing off to 0.5 s when idle.
POLL_SECONDS = 0.02
POLL_MAX_SECONDS = 0.5
# Standing aside for a bulk import (BulkImport).
BULK_BACKLOG = 2000
BULK_CHECK_SECONDS = 0.5
MAX_YIELD_SECONDS = 120.0


class BulkImport:
    """Whether to stand aside for a bulk import: while the records stored but not analysed
    pass `BULK_BACKLOG` and their number still grows, the follower waits, so that on a small
    machine the import gets the CPU and the analysis catches up after it (live traffic
    never builds such a backlog). It never waits longer than `MAX_YIELD_SECONDS` in a row:
    under endless heavy traffic it analyses beside it."""

    def __init__(self) -> None:
        self._head = 0
        self._since: float | None = None

    def under_way(self, head: int, checkpoint: int, now: float) -> bool:
        growing, self._head = head > self._head, head
        if head - checkpoint <= BULK_BACKLOG or not growing:
            self._since = None
            return False
        if self._since is None:
            self._since = now
        return now - self._since < MAX_YIELD_SECONDS


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
                await self._follow(stop)
            except (grpc.aio.AioRpcError, OSError, asyncio.InvalidStateError) as exc:
                # The store went away or refused a batch (its stream then ends).
                reason = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else exc
                log.warning("analysis follower: %s; starting again from the checkpoint", reason)
            except Exception:
                log.exception("analysis follower failed; starting again from the checkpoint")
            self.analyser.reset()
            if not stop.is_set():
                await backoff.wait()

    async def _follow(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        since = await loop.run_in_executor(self._worker, self._reader.analysed_through)
        async with bootstrap.channel(self._store_addr, self._security) as channel:
            writes = store_pb2_grpc.StoreServiceStub(channel).Write()
            acks = asyncio.create_task(self._drain(writes))
            pause = POLL_SECONDS
            bulk = BulkImport()
            try:
                while not stop.is_set():
                    if acks.done():  # the store refused a batch or went away
                        acks.result()
                        return
                    head = await loop.run_in_executor(self._worker,
                                                      self._reader.last_message_seq)
                    if bulk.under_way(head, since, loop.time()):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), BULK_CHECK_SECONDS)
                        continue
                    items = await loop.run_in_executor(self._worker, self._reader.records_after,
                                                       since, PAGE)
                    if not items:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), pause)
                        pause = min(pause * 2, POLL_MAX_SECONDS)
                        continue
                    pause = POLL_SECONDS
                    batch = await loop.run_in_executor(self._worker, self.analyse, since, items)
                    await writes.write(batch)
                    since = items[-1][0]
            finally:
                writes.cancel()
                acks.cancel()

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
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--tls-ca", type=Path)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(NICENESS)
    telemetry.setup_logging(args.log_level)
    telemetry.setup_tracing("threadline-analysis-follower")
    settings = config.resolve({"db": args.db, "store_addr": args.store_addr,
                               "tls_ca": args.tls_ca})
    follower = Follower(args.store_addr, args.db, auth.for_client(settings))

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
