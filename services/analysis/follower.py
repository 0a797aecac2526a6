"""The analysis follower: session analysis of committed records, in the store's order.

The analysis service starts it as a child process (`python -m services.analysis.follower`) at
a lower CPU priority (`NICENESS`): analysing costs far more than threading, and run inline it
would halve the pipeline's bulk throughput on a small machine. Following the store's change
feed instead, it takes what CPU the pipeline leaves: live, a record is analysed milliseconds
after it is committed (and published); in a bulk import, analysis trails the import and
catches up when it ends.

Exactly once, through restarts: it reads the feed from its checkpoint (`analysis_progress`),
and every batch it writes carries the analysis of a run of committed records together with
the sequence of the last one (`Batch.analysed_through`), committed in one transaction. A
session it does not hold is rebuilt from the records stored before the one at hand
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
from threadline import bootstrap, convert, telemetry
from threadline.v1 import common_pb2, store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)
NICENESS = 19
# How often the follower checks that the service that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def _link(m: common_pb2.Message) -> ThreadLink:
    return ThreadLink(m.thread_parent_uuid, m.thread_parent_source, m.thread_relation,
                      m.thread_confidence)


class Follower:
    def __init__(self, store_addr: str, db: Path):
        self._store_addr = store_addr
        self._reader = StoreReader(db)
        self.analyser = SessionAnalyser(self._reader.session_records)
        # Analysis (and the reads that rebuild a session) block: one thread, in order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="follower")
        self._batch_id = 0

    def analyse(self, page: store_pb2.ChangeBatch) -> common_pb2.Batch | None:
        """The write batch for one page of the change feed; None when it holds no message."""
        items = [(c.sequence, convert.message_from_pb(c.message), _link(c.message))
                 for c in page.changes if c.kind == common_pb2.CHANGE_KIND_MESSAGE]
        if not items:
            return None  # parse errors, and the analysis changes this follower wrote itself
        changes = self.analyser.analyse(items)
        self._batch_id += 1
        return common_pb2.Batch(batch_id=self._batch_id,
                                analysis=[wire.update_to_pb(c) for c in changes.values()],
                                analysed_through=items[-1][0])

    async def run(self, stop: asyncio.Event) -> None:
        backoff = bootstrap.Backoff()
        while not stop.is_set():
            try:
                await self._follow(stop)
            except (grpc.aio.AioRpcError, OSError) as exc:
                reason = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else exc
                log.warning("analysis follower: %s; starting again from the checkpoint", reason)
            self.analyser.reset()
            if not stop.is_set():
                await backoff.wait()

    async def _follow(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        since = await loop.run_in_executor(self._worker, self._reader.analysed_through)
        async with bootstrap.channel(self._store_addr) as channel:
            stub = store_pb2_grpc.StoreServiceStub(channel)
            feed = stub.Changes(store_pb2.ChangesRequest(since_sequence=since, follow=True))
            writes = stub.Write()
            acks = asyncio.create_task(self._drain(writes))
            stopping = asyncio.create_task(stop.wait())
            stopping.add_done_callback(lambda _: feed.cancel())
            try:
                async for page in feed:
                    batch = await loop.run_in_executor(self._worker, self.analyse, page)
                    if batch is not None:
                        await writes.write(batch)
                    if acks.done():  # the store refused a batch or went away
                        acks.result()
                        return
            except asyncio.CancelledError:
                if not stop.is_set():
                    raise
            finally:
                stopping.cancel()
                feed.cancel()
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
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.nice(NICENESS)
    telemetry.setup_logging(args.log_level)
    telemetry.setup_tracing("threadline-analysis-follower")
    follower = Follower(args.store_addr, args.db)

    parent = os.getppid()

    async def orphaned(stop: asyncio.Event) -> None:
        """Stop when the analysis service is gone (even killed outright)."""
        while not stop.is_set():
            if os.getppid() != parent:
                stop.set()
            await asyncio.sleep(PARENT_CHECK_SECONDS)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = asyncio.create_task(orphaned(stop))
        await follower.run(stop)
        watch.cancel()

    try:
        asyncio.run(run())
    finally:
        follower.close()
        telemetry.shutdown_tracing()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
