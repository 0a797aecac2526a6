"""The single writer, and the checkpoint thread that keeps SQLite's WAL short.

One daemon thread owns the only read-write connection (made by the storage layer's
`Database`, SQLite or PostgreSQL) and drains a queue of write batches (datasette's pattern).
Each turn it takes every batch already queued (up to a bound), applies them with the storage
layer's write functions (threadline/storage/writes.py) in ONE transaction (`BEGIN IMMEDIATE`
on SQLite) - each batch under its own savepoint, so a batch that
fails is rolled back alone - and commits once; only then are results handed to the event loop
(`call_soon_threadsafe`), in commit order. Offsets are written in the same transaction as the
rows they cover, so a process killed at any instant neither loses nor duplicates anything once
the unacknowledged batches are sent again. For the same reason, once a batch of a Write stream
fails every later batch of that stream fails too (`WriteStream`): committing a later batch
would move its source's offset past the rows of the failed one, and they would never be resent.

A full disk (or an I/O error) is a condition, not a defect: the batches fail with
`WriteFailed` ("database or disk is full at <path>"), their senders keep them and send them
again, the condition is kept in `write_error` for the store's status (and handed to the
`on_condition` hook, which tells the change feed's followers), and it clears itself with the
next commit that succeeds.

Idempotence and sequence numbers: see writes.py. The writer keeps the highest committed
sequence and hands it back to the write functions, which number every new row after it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from threadline.storage import dialect, search, writes
from threadline.storage.database import Database, open_database
from threadline.storage.errors import EarlierBatchFailed, StoreClosed, WriteFailed

log = logging.getLogger(__name__)

# Bounds of one group commit: big enough to amortise the commit, small enough to keep the
# latency of the batch queued last low.
GROUP_MAX_BATCHES = 16
GROUP_MAX_ROWS = 4000
CHECKPOINT_SECONDS = 1.0
# How often the checkpoint thread looks at the WAL's size: a bulk import writes tens of MB a
# second, so looking once a second would let the WAL overshoot its limit by that much.
CHECKPOINT_TICK_SECONDS = 0.25
# The WAL is checkpointed and truncated to zero once the writer has been idle this long, so
# bulk work leaves no large WAL behind.
IDLE_CHECKPOINT_SECONDS = 1.5
# While writes go on, a WAL grown past the limit gets one checkpoint that may wait this long
# for the write lock and for readers: long enough to bound the WAL under a steady stream of
# commits and reads, short enough that no write waits noticeably.
BOUNDING_WAIT_MS = 100
# A checkpoint that fails (the disk is full) is tried again after a growing pause, up to this:
# every attempt writes to the database file, which would take any space just freed.
CHECKPOINT_RETRY_MAX_SECONDS = 30.0
WAL_LIMIT_BYTES = 64 * 1024 * 1024
_STOP = object()


class WriteStream:
    """The batches of one ordered stream: after one fails, the later ones are refused.

    Read and written only by the writer thread, which takes batches in submission order.
    """

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False


@dataclass(slots=True)
class WriteBatch:
    """One batch to commit, as plain rows (see rows.py for their keys)."""

    batch_id: int
    messages: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    # Source offsets the batch covers, in order; each row has a "reset" flag.
    offsets: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    # Per session, what analysis derived from the batch (rows.analysis_row).
    analysis: list[dict] = field(default_factory=list)
    # The analysis follower's checkpoint after this batch (0: none in this batch), and the one
    # the batch follows (it is refused unless that is still the stored one).
    analysed_through: int = 0
    analysed_after: int = 0
    # Opaque to the writer: handed back to the on_commit hook with the result.
    context: Any = None
    # The ordered stream this batch belongs to, if any.
    stream: WriteStream | None = None


@dataclass(slots=True)
class WriteResult:
    batch_id: int
    # The stored offset of each source the batch covered, after the batch.
    offsets: list[dict]
    # Highest sequence committed when the batch's transaction committed.
    last_sequence: int
    # (index into WriteBatch.messages / .errors, sequence) of the rows that were new.
    new_messages: list[tuple[int, int]]
    new_errors: list[tuple[int, int]]
    # (index into WriteBatch.analysis, sequence, change kind) of the analysis changes.
    new_analysis: list[tuple[int, int, str]] = field(default_factory=list)


CommitHook = Callable[[WriteBatch, WriteResult], None]
# Called on the event loop with the new `write_error` each time it changes.
ConditionHook = Callable[[str], None]


def storage_failure(exc: BaseException, db: object) -> str | None:
    """What a write failure says about the storage ("database or disk is full at <db>"), or
    None when it is about the batch itself."""
    return dialect.storage_failure(exc, str(db))


class Writer:
    """Owns the write connection. `start()` and `stop()` block: call them from a thread."""

    def __init__(self, db: Path | str | Database, on_commit: CommitHook | None = None,
                 wal_limit_bytes: int = WAL_LIMIT_BYTES):
        self.database = open_database(db)
        self.on_commit = on_commit
        self.wal_limit_bytes = wal_limit_bytes
        self.last_sequence = 0
        # Written by the writer thread only; read by the checkpoint thread and for the status.
        self.commits = 0
        self.last_commit_at = 0.0
        # Why writes fail right now ("database or disk is full at ..."); "" while they succeed.
        self.write_error = ""
        self.on_condition: ConditionHook | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._closed = False
        # Makes "not closed, so queue it" one step with respect to stop(): nothing is queued
        # after the stop sentinel, where nobody would resolve its future.
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        """Commit what is queued, then close the connection."""
        with self._lock:
            if self._thread is None or self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    # --- submitting (event loop side) --------------------------------------------------------

    def submit(self, batch: WriteBatch) -> asyncio.Future[WriteResult]:
        """Queue a batch; the future resolves once it is committed (or failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteResult] = loop.create_future()
        with self._lock:
            if not self._closed:
                self._queue.put((batch, loop, future))
                return future
        future.set_exception(StoreClosed("the store writer is stopped"))
        return future

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            engine = self.database.write_engine(wal_limit_bytes=self.wal_limit_bytes)
            conn = engine.connect()
            with conn.begin():
                self.last_sequence = writes.prepare(conn)
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                group, stopping = self._take_group()
                if group:
                    self._commit_group(conn, group)
                if stopping:
                    break
        finally:
            self._fail_queued()
            self._truncate_wal(conn)
            conn.close()
            engine.dispose()

    def _truncate_wal(self, conn: Connection) -> None:
        """At stop: copy the WAL into the database and cut it to zero bytes, so a stopped
        store leaves no WAL behind (other processes may keep the database open, and then
        nobody would on close). PostgreSQL: nothing to do, the server keeps its own WAL."""
        raw = conn.connection.dbapi_connection
        if raw is None or not self.database.is_sqlite:
            return
        try:
            raw.execute("PRAGMA busy_timeout=1000")  # readers in other processes end soon
            busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.info("WAL of %s not truncated at stop: a reader still uses it",
                         self.database)
        except sqlite3.Error as exc:
            log.warning("WAL of %s not truncated at stop: %s", self.database, exc)

    def _take_group(self) -> tuple[list, bool]:
        item = self._queue.get()
        if item is _STOP:
            return [], True
        group = [item]
        rows = len(item[0].messages)
        while len(group) < GROUP_MAX_BATCHES and rows < GROUP_MAX_ROWS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return group, True
            group.append(item)
            rows += len(item[0].messages)
        return group, False

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _, loop, future = item
                _deliver_threadsafe(loop, [(None, future, StoreClosed("the store is stopping"))],
                                    None)

    def _commit_group(self, conn: Connection, group: list) -> None:
        outcomes: list[tuple[WriteBatch, asyncio.Future, WriteResult | BaseException]] = []
        start_sequence = self.last_sequence
        storage_failed = False
        loop = group[0][1]
        try:
            with conn.begin():
                for batch, _loop, future in group:
                    stream = batch.stream
                    if stream is not None and stream.failed:
                        outcomes.append((batch, future, EarlierBatchFailed(batch.batch_id)))
                        continue
                    seq_before = self.last_sequence
                    try:
                        with conn.begin_nested():
                            result = self._apply(conn, batch)
                    except Exception as exc:  # this batch alone fails (and its stream's rest)
                        failure = self._failed(exc, f"batch {batch.batch_id} failed", loop)
                        storage_failed = storage_failed or isinstance(failure, WriteFailed)
                        self.last_sequence = seq_before
                        if stream is not None:
                            stream.failed = True
                        outcomes.append((batch, future, failure))
                    else:
                        outcomes.append((batch, future, result))
                # The group's new messages, indexed at once outside the batches' savepoints:
                # FTS5 writes a segment at every savepoint, which halves its speed.
                search.index_messages(conn, [b.messages[i] for b, _f, o in outcomes
                                             if isinstance(o, WriteResult)
                                             for i, _seq in o.new_messages])
        except Exception as exc:  # the commit itself failed: nothing of the group is stored
            failure = self._failed(exc, f"commit of {len(group)} batches failed", loop)
            self.last_sequence = self._stored_sequence(conn, start_sequence)
            outcomes = [(b, f, failure) for b, _loop, f in group]
            for b, _loop, _f in group:
                if b.stream is not None:
                    b.stream.failed = True
        else:
            self.commits += 1
            self.last_commit_at = time.monotonic()
            wrote = any(isinstance(o, WriteResult) for _b, _f, o in outcomes)
            if wrote and not storage_failed and self.write_error:
                log.warning("writes to %s succeed again", self.database)
                self._set_write_error("", loop)
        for _batch, _future, outcome in outcomes:
            if isinstance(outcome, WriteResult):
                outcome.last_sequence = self.last_sequence
        # One loop per group in practice (one server); keep it general anyway.
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for (batch, future, outcome), (_b, loop, _f) in zip(outcomes, group, strict=True):
            by_loop.setdefault(loop, []).append((batch, future, outcome))
        for loop, items in by_loop.items():
            _deliver_threadsafe(loop, items, self.on_commit)

    def _failed(self, exc: Exception, what: str, loop: asyncio.AbstractEventLoop) -> Exception:
        """The exception to hand back for a failed write: a storage failure becomes
        `WriteFailed` and the store's condition, logged once rather than at every resend."""
        problem = storage_failure(exc, self.database)
        if problem is None:
            log.exception(what, exc_info=exc)
            return exc
        if problem != self.write_error:
            log.error("%s: %s; nothing is lost, the senders keep the batches and write them "
                      "again once it is resolved", what, problem)
        self._set_write_error(problem, loop)
        return WriteFailed(problem)

    def _set_write_error(self, problem: str, loop: asyncio.AbstractEventLoop) -> None:
        if problem == self.write_error:
            return
        self.write_error = problem
        if self.on_condition is not None:
            try:
                loop.call_soon_threadsafe(self.on_condition, problem)
            except RuntimeError:  # the loop is closed: nobody is following any more
                pass

    @staticmethod
    def _stored_sequence(conn: Connection, fallback: int) -> int:
        """The highest committed sequence, read back: after a failed commit, don't guess."""
        try:
            with conn.begin():
                return writes.last_sequence(conn)
        except Exception:
            log.exception("cannot read the last sequence back; assuming %d", fallback)
            return fallback

    def _apply(self, conn: Connection, batch: WriteBatch) -> WriteResult:
        seq = self.last_sequence
        new_messages, seq = writes.insert_messages(conn, batch.messages, seq)
        new_errors, seq = writes.insert_errors(conn, batch.errors, seq)
        if batch.tool_calls:
            writes.upsert_tool_calls(conn, batch.tool_calls)
        offsets = writes.store_offsets(conn, batch.offsets) if batch.offsets else []
        if batch.analysed_through:
            writes.save_progress(conn, batch.analysed_through, batch.analysed_after)
        new_analysis: list[tuple[int, int, str]] = []
        if batch.analysis:
            new_analysis, seq = writes.write_analyses(conn, batch.analysis, seq)
        # Only now: a batch that failed half-way hands its numbers out again (the caller
        # rolls back to its savepoint).
        self.last_sequence = seq
        return WriteResult(batch.batch_id, offsets, seq, new_messages, new_errors,
                           new_analysis)


def _deliver_threadsafe(loop: asyncio.AbstractEventLoop, items: list,
                        on_commit: CommitHook | None) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, items, on_commit)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _deliver(items: list, on_commit: CommitHook | None) -> None:
    """On the event loop, in commit order: publish each result, then resolve its future."""
    for batch, future, outcome in items:
        if isinstance(outcome, WriteResult):
            if on_commit is not None:
                try:
                    on_commit(batch, outcome)
                except Exception:
                    log.exception("on_commit hook failed for batch %s", outcome.batch_id)
            if not future.done():
                future.set_result(outcome)
        elif not future.done():
            future.set_exception(outcome)


class Checkpointer:
    """Keeps the WAL short from its own connection, one decision every tick.

    The writer's automatic checkpoint is off (it would run inside a commit). Instead:
    - after commits, a PASSIVE checkpoint (at most one every `CHECKPOINT_SECONDS`): it never
      blocks the writer or the readers, it copies what it can;
    - when the WAL has nevertheless grown past the writer's limit (readers kept it from
      starting over), a TRUNCATE checkpoint that may wait `BOUNDING_WAIT_MS` for the write
      lock and the readers; if they are still busy it leaves the WAL as it is until later;
    - once the writer is idle for `idle_seconds`, a TRUNCATE checkpoint that does not wait at
      all (a reader still in the WAL: try again next tick), so bulk work leaves an empty WAL.
    A checkpoint that fails (the disk is full) is tried again after a pause doubling up to
    `CHECKPOINT_RETRY_MAX_SECONDS` (or as soon as the writer commits again), so it does not take
    every bit of space freed for the writer; and while space is short, the passive checkpoints
    are TRUNCATE ones that do not wait, so the WAL gives its space back as soon as it can.
    """

    def __init__(self, db: Path | str | Database, interval: float = CHECKPOINT_TICK_SECONDS,
                 writer: Writer | None = None, idle_seconds: float = IDLE_CHECKPOINT_SECONDS):
        self.database = open_database(db)
        self.db_path = self.database.path or Path("database")
        self.interval = interval
        self._passive_at = float("-inf")
        self._bound_retry_at = 0.0
        self._short_of_space = False
        self.writer = writer
        self.idle_seconds = idle_seconds
        self._wal = self.db_path.with_name(self.db_path.name + "-wal")
        self._seen_commits = -1
        self._truncated = False
        self._failures = 0
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)

    def start(self) -> None:
        # PostgreSQL checkpoints its own write-ahead log: nothing here to keep short.
        if self.database.is_sqlite:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        engine = self.database.checkpoint_engine()
        assert engine is not None  # started on SQLite only
        try:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                while not self._stop.wait(self.interval):
                    try:
                        self.tick(raw)
                    except Exception:  # a defect here must not end checkpointing for good
                        log.exception("WAL checkpoint of %s failed", self.db_path)
        finally:
            engine.dispose()

    def tick(self, raw: sqlite3.Connection) -> None:
        """One decision: what kind of checkpoint, if any, to run now."""
        now = time.monotonic()
        writer = self.writer
        commits = writer.commits if writer is not None else None
        # After a failure, wait - unless the writer has committed since: then there is space.
        if now < self._retry_at and (commits is None or commits == self._seen_commits):
            return
        if commits is None or commits != self._seen_commits:
            self._truncated = False
            limit = writer.wal_limit_bytes if writer is not None else WAL_LIMIT_BYTES
            # Kept back by readers last time: not again before a passive checkpoint's interval,
            # so writes are never held up for long under a steady stream of reads.
            if 0 <= limit < self._wal_size() and now >= self._bound_retry_at:
                self._seen_commits = commits if commits is not None else -1
                if not self._checkpoint(raw, "TRUNCATE", BOUNDING_WAIT_MS):
                    self._bound_retry_at = now + CHECKPOINT_SECONDS
                return
            # Short of space (writes or checkpoints failed): the WAL's copy of what is
            # checkpointed is given back to the disk at once, not kept for reuse.
            self._short_of_space |= bool(writer is not None and writer.write_error)
            if self._short_of_space or now - self._passive_at >= CHECKPOINT_SECONDS:
                self._seen_commits = commits if commits is not None else -1
                self._passive_at = now
                if self._short_of_space:
                    self._short_of_space = not self._checkpoint(raw, "TRUNCATE", 0)
                else:
                    self._checkpoint(raw, "PASSIVE", 0)
                return
        if (writer is not None and not self._truncated
                and now - writer.last_commit_at >= self.idle_seconds):
            self._truncated = self._checkpoint(raw, "TRUNCATE", 0)
            self._short_of_space &= not self._truncated

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size
        except OSError:
            return 0

    def _checkpoint(self, raw: sqlite3.Connection, mode: str, wait_ms: int) -> bool:
        """Run one checkpoint; True when it completed (not kept back by a reader or the
        writer)."""
        try:
            raw.execute(f"PRAGMA busy_timeout={wait_ms}")
            busy, _log, _done = raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            self._short_of_space = True
            self._failures += 1
            pause = min(self.interval * 2 ** self._failures, CHECKPOINT_RETRY_MAX_SECONDS)
            self._retry_at = time.monotonic() + pause
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "WAL checkpoint of %s failed (%s); trying again in %.1f s",
                    self.db_path, exc, pause)
            return False
        if self._failures:
            log.info("WAL checkpoint of %s succeeds again", self.db_path)
            self._failures = 0
        return not busy
