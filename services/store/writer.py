"""The single SQLite writer, and the checkpoint thread that keeps the WAL short.

One daemon thread owns the only read-write connection and drains a queue of write batches
(datasette's pattern). Each turn it takes every batch already queued (up to a bound), applies
them in ONE `BEGIN IMMEDIATE` transaction - each batch under its own savepoint, so a batch that
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

Idempotence: a message whose key is stored is skipped (within a batch the first occurrence
wins), as is a parse error at a stored (path, byte_offset). Every NEW message and parse error
takes the next sequence number and a `changes` row.
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

import orjson
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select, text, tuple_
from sqlalchemy.pool import NullPool

from threadline.storage import files, folding, projects, reanalysis, schema, search, titles
from threadline.storage import migrations as upgrade
from threadline.storage.errors import EarlierBatchFailed, StaleAnalysis, StoreClosed, WriteFailed

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
# SQLite's default limit of bound parameters is 32766; stay well under it.
_IN_CHUNK = 5000
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


def _engine(db_path: Path, configure: Callable[[sqlite3.Connection], None]) -> Engine:
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(str(db_path), check_same_thread=False),
        poolclass=NullPool,
    )
    event.listen(engine, "connect", lambda dbapi_conn, _record: configure(dbapi_conn))
    return engine


def storage_failure(exc: BaseException, db_path: Path) -> str | None:
    """What a write failure says about the storage ("database or disk is full at <path>"), or
    None when it is about the batch itself."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(orig, sqlite3.Error) and code is not None and (code & 0xFF) in _STORAGE_CODES:
        return f"{orig} at {db_path}"
    return None


_STORAGE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


def next_offset(current: dict | None, incoming: dict) -> dict:
    """The source row to store: an offset only moves forward, unless the file was replaced."""
    if (current is None or incoming["reset"] or current["identity"] != incoming["identity"]
            or incoming["offset"] >= current["offset"]):
        return {k: v for k, v in incoming.items() if k != "reset"}
    return current


class Writer:
    """Owns the write connection. `start()` and `stop()` block: call them from a thread."""

    def __init__(self, db_path: Path, on_commit: CommitHook | None = None,
                 wal_limit_bytes: int = WAL_LIMIT_BYTES):
        self.db_path = Path(db_path)
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
        files.private_database(self.db_path)
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

    def _configure(self, dbapi_connection: sqlite3.Connection) -> None:
        schema.configure_writer(dbapi_connection)
        # Whenever the WAL starts over from its beginning, cut the file back to this size.
        dbapi_connection.execute(f"PRAGMA journal_size_limit={int(self.wal_limit_bytes)}")

    def _run(self) -> None:
        try:
            engine = _engine(self.db_path, self._configure)
            # Every transaction of this connection takes the write lock up front.
            event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN IMMEDIATE"))
            conn = engine.connect()
            with conn.begin():
                upgrade.add_missing(conn)
                # Analysis of an earlier version is dropped before records are migrated.
                reanalysis.start_again(conn)
                upgrade.migrate(conn)
                self.last_sequence = conn.scalar(select(func.max(schema.changes.c.seq))) or 0
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
        nobody would on close)."""
        raw = conn.connection.dbapi_connection
        if raw is None:
            return
        try:
            raw.execute("PRAGMA busy_timeout=1000")  # readers in other processes end soon
            busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.info("WAL of %s not truncated at stop: a reader still uses it",
                         self.db_path)
        except sqlite3.Error as exc:
            log.warning("WAL of %s not truncated at stop: %s", self.db_path, exc)

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
                log.warning("writes to %s succeed again", self.db_path)
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
        problem = storage_failure(exc, self.db_path)
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
                return conn.scalar(select(func.max(schema.changes.c.seq))) or 0
        except Exception:
            log.exception("cannot read the last sequence back; assuming %d", fallback)
            return fallback

    def _apply(self, conn: Connection, batch: WriteBatch) -> WriteResult:
        new_messages = self._insert_messages(conn, batch.messages)
        new_errors = self._insert_errors(conn, batch.errors)
        if batch.tool_calls:
            upsert_tool_calls(conn, batch.tool_calls)
        offsets = _store_offsets(conn, batch.offsets) if batch.offsets else []
        if batch.analysed_through:
            current = conn.scalar(select(schema.analysis_progress.c.seq)
                                  .where(schema.analysis_progress.c.id == 1)) or 0
            if current != batch.analysed_after:
                raise StaleAnalysis(batch.analysed_after, current)
            conn.execute(_SAVE_PROGRESS, {"seq": batch.analysed_through})
        new_analysis = self._write_analysis(conn, batch.analysis) if batch.analysis else []
        return WriteResult(batch.batch_id, offsets, self.last_sequence, new_messages, new_errors,
                           new_analysis)

    def _write_analysis(self, conn: Connection, updates: list[dict]) -> list[tuple[int, int, str]]:
        """Store each session's analysis update and number it as one or two changes."""
        changes: list[dict] = []
        new: list[tuple[int, int, str]] = []
        seq = self.last_sequence
        projects.name_analysis(conn, updates)
        for i, update in enumerate(updates):
            write_analysis(conn, update)
            kinds = [schema.THREAD_UPDATED] if update["thread_changed"] else []
            if update["summary"] is not None:
                kinds.append(schema.ANALYSIS_UPDATED)
            for kind in kinds:
                seq += 1
                new.append((i, seq, kind))
                changes.append({"seq": seq, "kind": kind, "ref": update["session_id"],
                                "project_key": update["project_key"],
                                "session_id": update["session_id"]})
        if changes:
            conn.exec_driver_sql(_INSERT_CHANGE, changes)
            self.last_sequence = seq
        return new

    def _insert_messages(self, conn: Connection, rows: list[dict]) -> list[tuple[int, int]]:
        if not rows:
            return []
        seen = _existing_keys(conn, [r["key"] for r in rows])
        new: list[tuple[int, int]] = []
        fresh: list[dict] = []
        seq = self.last_sequence
        for i, row in enumerate(rows):
            key = row["key"]
            if key in seen:
                continue
            seen.add(key)
            seq += 1
            row["seq"] = seq
            new.append((i, seq))
            fresh.append(row)
        if not fresh:
            return []
        # Each row as sent names its file's folder; it is stored under its session's project.
        moved_from = projects.assign(conn, fresh)
        changes = [{"seq": row["seq"], "kind": schema.MESSAGE, "ref": row["key"],
                    "project_key": row["project_key"], "session_id": row["session_id"]}
                   for row in fresh]
        conn.exec_driver_sql(_INSERT_MESSAGE, fresh)
        conn.exec_driver_sql(_INSERT_CHANGE, changes)
        fold = folding.SessionFold()
        for row in fresh:
            fold.add(row)
        fold.merge(conn)
        if moved_from:  # sessions left these projects: derive both sides again
            folding.refresh_projects(conn, fold.projects() | moved_from)
        titles.record(conn, fresh)
        self.last_sequence = seq
        return new

    def _insert_errors(self, conn: Connection, rows: list[dict]) -> list[tuple[int, int]]:
        if not rows:
            return []
        pe = schema.parse_errors
        wanted = [(r["path"], r["byte_offset"]) for r in rows]
        seen: set = set()
        for i in range(0, len(wanted), _IN_CHUNK // 2):
            part = wanted[i:i + _IN_CHUNK // 2]
            seen.update(tuple(r) for r in conn.execute(
                select(pe.c.path, pe.c.byte_offset).where(
                    tuple_(pe.c.path, pe.c.byte_offset).in_(part))))
        new: list[tuple[int, int]] = []
        fresh: list[dict] = []
        seq = self.last_sequence
        for i, row in enumerate(rows):
            ref = (row["path"], row["byte_offset"])
            if ref in seen:
                continue
            seen.add(ref)
            seq += 1
            row["seq"] = seq
            new.append((i, seq))
            fresh.append(row)
        if fresh:
            projects.assign(conn, [], fresh)
            changes = [{"seq": row["seq"], "kind": schema.PARSE_ERROR,
                        "ref": f"{row['path']}:{row['byte_offset']}",
                        "project_key": row["project_key"], "session_id": ""} for row in fresh]
            conn.exec_driver_sql(_INSERT_ERROR, fresh)
            conn.exec_driver_sql(_INSERT_CHANGE, changes)
            self.last_sequence = seq
        return new


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


def _existing_keys(conn: Connection, keys: list[str]) -> set[str]:
    """The keys among `keys` that are stored. One JSON parameter instead of one per key: no
    statement to compile per batch size, no limit on bound parameters."""
    result = conn.exec_driver_sql(
        "SELECT key FROM messages WHERE key IN (SELECT value FROM json_each(?))",
        (orjson.dumps(keys).decode(),))
    return {r[0] for r in result}


def _insert_sql(table: Table) -> str:
    """A plain INSERT with named parameters for every column of `table`.

    The hot inserts go through `exec_driver_sql` with this text: SQLAlchemy's per-row
    parameter processing costs more than SQLite's insert itself (measured: ~40% of a batch).
    """
    names = [c.name for c in table.columns]
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(f":{n}" for n in names)
    return f'INSERT INTO "{table.name}" ({columns}) VALUES ({values})'


_INSERT_MESSAGE = _insert_sql(schema.messages)
_INSERT_CHANGE = _insert_sql(schema.changes)
_INSERT_ERROR = _insert_sql(schema.parse_errors)


_UPSERT_TOOL_USE = text("""
INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, result_message_key,
                        input_json, is_error, started_at, finished_at, agent_id)
VALUES (:tool_use_id, :session_id, :name, :use_message_key, '', :input_json, 0, :started_at, '',
        '')
ON CONFLICT (tool_use_id) DO UPDATE SET
  session_id = CASE WHEN tool_calls.session_id = '' THEN excluded.session_id
                    ELSE tool_calls.session_id END,
  name = CASE WHEN excluded.name != '' THEN excluded.name ELSE tool_calls.name END,
  use_message_key = excluded.use_message_key,
  input_json = excluded.input_json,
  started_at = excluded.started_at
""")

_UPSERT_TOOL_RESULT = text("""
INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, result_message_key,
                        input_json, is_error, started_at, finished_at, agent_id)
VALUES (:tool_use_id, :session_id, :name, '', :result_message_key, x'', :is_error, '',
        :finished_at, :agent_id)
ON CONFLICT (tool_use_id) DO UPDATE SET
  session_id = CASE WHEN tool_calls.session_id = '' THEN excluded.session_id
                    ELSE tool_calls.session_id END,
  name = CASE WHEN tool_calls.name = '' THEN excluded.name ELSE tool_calls.name END,
  result_message_key = excluded.result_message_key,
  is_error = excluded.is_error,
  finished_at = excluded.finished_at,
  agent_id = excluded.agent_id
""")


def upsert_tool_calls(conn: Connection, rows: list[dict]) -> None:
    """A call's two halves arrive in different batches, in either order: each half fills
    only its own columns, so applying them in any order (or twice) gives the same row."""
    uses = [r for r in rows if r["has_use"] and r["tool_use_id"]]
    results = [r for r in rows if r["has_result"] and r["tool_use_id"]]
    if uses:
        conn.execute(_UPSERT_TOOL_USE, uses)
    if results:
        conn.execute(_UPSERT_TOOL_RESULT, results)


_UPSERT_SEGMENT = _insert_sql(schema.segments).replace("INSERT", "INSERT OR REPLACE", 1)
_INSERT_TURN = _insert_sql(schema.turns).replace("INSERT", "INSERT OR IGNORE", 1)
_INSERT_RELATIONSHIP = _insert_sql(schema.relationships).replace("INSERT", "INSERT OR IGNORE", 1)
_names = [c.name for c in schema.session_summaries.columns]
# The summary is a snapshot from analysis; `resumed_from` is learnt from the files while
# threading and is not known to a session rebuilt from the store, so the snapshot never
# changes it (a new row gets '' here; `save_resumed` sets it).
_UPSERT_SUMMARY = text(
    f"INSERT INTO session_summaries ({', '.join(_names)}) "
    f"VALUES ({', '.join(':' + n for n in _names)}) ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{n} = excluded.{n}" for n in _names if n not in ("session_id", "resumed_from")))


# A resumption is learnt while threading, before the session has any figures: a new row
# gets every column's default (the Table defaults apply to SQLAlchemy inserts, not to text).
_SUMMARY_DEFAULTS = {c.name: c.default.arg for c in schema.session_summaries.columns
                     if c.default is not None}
# A later finding replaces an earlier one: threading reports the session a resumed file
# continues again when a closer one turns up further down the file (a chain of resumptions).
_SAVE_RESUMED = text(
    f"INSERT INTO session_summaries ({', '.join(['session_id', *_SUMMARY_DEFAULTS])}) "
    f"VALUES ({', '.join(':' + n for n in ['session_id', *_SUMMARY_DEFAULTS])}) "
    "ON CONFLICT (session_id) DO UPDATE SET resumed_from = excluded.resumed_from")
_RESUMED_FROM = text("SELECT resumed_from FROM session_summaries WHERE session_id = :s")
# Longer chains of resumptions are not followed when looking for a cycle (none is that long).
MAX_RESUMED_CHAIN = 10_000
_SAVE_PROGRESS = text(f"""
INSERT INTO analysis_progress (id, seq, version) VALUES (1, :seq, {reanalysis.ANALYSIS_VERSION})
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, version = excluded.version
""")


def write_analysis(conn: Connection, update: dict) -> None:
    """Merges first: a segment merged into the one before it is deleted and its turns move
    there (the next segment then takes over its index). Then segments are replaced whole;
    turns and relationships are final once written (INSERT OR IGNORE keeps a resent batch
    idempotent)."""
    sg, t = schema.segments, schema.turns
    session = update["session_id"]
    for index in update["merged"]:
        conn.execute(t.update().where(t.c.session_id == session, t.c.segment_index == index)
                     .values(segment_index=index - 1))
        conn.execute(sg.delete().where(sg.c.session_id == session, sg.c.idx == index))
    if update["segments"]:
        conn.exec_driver_sql(_UPSERT_SEGMENT, update["segments"])
    if update["turns"]:
        conn.exec_driver_sql(_INSERT_TURN, update["turns"])
    if update["relationships"]:
        conn.exec_driver_sql(_INSERT_RELATIONSHIP, update["relationships"])
    summary = update["summary"]
    if summary is not None:
        conn.execute(_UPSERT_SUMMARY, {**summary, "resumed_from": ""})
    earlier = update["resumed_from"] or (summary or {}).get("resumed_from", "")
    if earlier and not save_resumed(conn, session, update["project_key"], earlier):
        update["resumed_from"] = ""  # refused: the change published for it says so too


def save_resumed(conn: Connection, session: str, project_key: str, earlier: str) -> bool:
    """Store that `session` continues `earlier`, unless `earlier` already continues `session`
    (directly or through a chain): resumptions never form a cycle, whatever order files are
    read in. Returns whether it was stored."""
    seen = {session}
    at = earlier
    for _ in range(MAX_RESUMED_CHAIN):
        if not at:
            break
        if at in seen:
            return False
        seen.add(at)
        at = conn.scalar(_RESUMED_FROM, {"s": at}) or ""
    conn.execute(_SAVE_RESUMED, {**_SUMMARY_DEFAULTS, "session_id": session,
                                 "project_key": project_key, "resumed_from": earlier})
    return True


def _store_offsets(conn: Connection, offsets: list[dict]) -> list[dict]:
    src = schema.sources
    paths = list({o["path"] for o in offsets if o["path"]})
    current: dict[str, dict] = {
        r["path"]: dict(r) for r in conn.execute(
            select(src).where(src.c.path.in_(paths))).mappings()
    }
    changed: dict[str, dict] = {}
    for incoming in offsets:
        path = incoming["path"]
        if not path:
            continue
        stored = next_offset(current.get(path), incoming)
        if stored is not current.get(path):
            current[path] = changed[path] = stored
    if changed:
        conn.execute(src.insert().prefix_with("OR REPLACE"), list(changed.values()))
    return [current[p] for p in dict.fromkeys(o["path"] for o in offsets if o["path"])]


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

    def __init__(self, db_path: Path, interval: float = CHECKPOINT_TICK_SECONDS,
                 writer: Writer | None = None, idle_seconds: float = IDLE_CHECKPOINT_SECONDS):
        self.db_path = Path(db_path)
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
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        def configure(c: sqlite3.Connection) -> None:
            c.isolation_level = None
            c.execute("PRAGMA wal_autocheckpoint=0")

        engine = _engine(self.db_path, configure)
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
