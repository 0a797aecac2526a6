"""Which files to read next, what has been sent, and what the store has committed.

The `Ingestor` is the domain core of the service (no gRPC here):

- files are *dirty* when they may hold unread lines (a watcher event, a rescan, a rewind);
  files touched by the watcher go first, so a live append is not queued behind a bulk import;
- `next_batch` reads dirty files until a batch is full (or nothing is left) and records what
  the batch covers; it does blocking I/O, so it runs in a worker thread, one call at a time;
- `acknowledge` applies acknowledgements in batch order: a file's durable offset only moves
  over batches that are all committed, so a crash never skips an uncommitted line;
- `rewind` forgets every unacknowledged batch: each file goes back to its durable offset and
  is read again (the store dedupes by key, so a batch committed but not acknowledged is safe
  to send twice).

Methods called from the event loop (`track`, `touch`, `acknowledge`, status) and the worker
thread (`next_batch`) share one short-held lock; `rewind` is only called while no read runs.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.ingest.discovery import Problem, Transcript
from services.ingest.tailer import MAX_LINE_BYTES, Chunk, Durable, FileTail, Source

# A batch stays well under gRPC's limits and the store's transaction sizes; one huge line is
# still sent on its own.
BATCH_BYTES = 2 * 1024 * 1024


@dataclass(slots=True)
class Batch:
    batch_id: int
    chunks: list[Chunk]
    # Files and folders found but not read, each sent once (see `Ingestor.report`).
    problems: list[Problem] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(c.lines for c in self.chunks)


@dataclass(frozen=True, slots=True)
class _Sent:
    """What a batch covered in one file, to apply once it is acknowledged."""

    tail: FileTail
    generation: int
    offset: int
    line_count: int
    reset: bool
    session_id: str
    tail_sha256: str


@dataclass(frozen=True, slots=True)
class FileStatus:
    source: Source
    size: int
    read_offset: int
    durable_offset: int


@dataclass(frozen=True, slots=True)
class Status:
    roots: list[str]
    files: list[FileStatus]
    lines_read: int
    batches_in_flight: int
    idle: bool


@dataclass(slots=True)
class _InFlight:
    sent: list[_Sent]
    problems: list[Problem] = field(default_factory=list)
    acked: bool = False


class Ingestor:
    def __init__(self, batch_lines: int, batch_bytes: int = BATCH_BYTES, final: bool = False,
                 max_line_bytes: int = MAX_LINE_BYTES, quiet_seconds: float | None = None):
        self.batch_lines = max(1, batch_lines)
        self.batch_bytes = max(1, batch_bytes)
        # import mode: files will not grow, so an unterminated last line is read too.
        self.final = final
        self.max_line_bytes = max_line_bytes
        # live mode: an unterminated last line of a file quiet this long is read too.
        self.quiet_seconds = None if final else quiet_seconds
        self.files: dict[str, FileTail] = {}
        self.lines_read = 0
        self._lock = threading.Lock()
        self._urgent: dict[FileTail, None] = {}
        self._dirty: dict[FileTail, None] = {}
        self._reading = False
        self._resume: dict[str, Durable] = {}
        self._in_flight: OrderedDict[int, _InFlight] = OrderedDict()
        self._ids = itertools.count(1)
        # Problems to send, and every (path, reason) reported by this process: a lasting
        # problem is found again by every rescan but sent once.
        self._problems: list[Problem] = []
        self._problems_seen: set[tuple[str, str]] = set()

    # -- what to read ------------------------------------------------------------------------

    def resume_from(self, durable: Iterable[Durable]) -> None:
        """Offsets the store has committed; files tracked later continue from there."""
        for d in durable:
            self._resume[d.source.path] = d
            tail = self.files.get(d.source.path)
            if tail is not None and tail.offset == 0 and tail.generation == 0:
                tail.resume(d)

    def track(self, transcripts: Iterable[Transcript], urgent: bool = False) -> int:
        """Start following new files (known ones are only marked dirty). Returns how many."""
        added = 0
        for t in transcripts:
            tail = self.files.get(t.path)
            if tail is None:
                tail = FileTail(t.path, t.project_key, t.format, self._lock,
                                self.max_line_bytes, self.quiet_seconds, t.is_root)
                durable = self._resume.pop(t.path, None)
                if durable is not None:
                    tail.resume(durable)
                self.files[t.path] = tail
                added += 1
            self._mark(tail, urgent)
        return added

    def touch(self, path: str, urgent: bool = True) -> bool:
        """The file may have changed. Returns False when it is not tracked."""
        tail = self.files.get(path)
        if tail is None:
            return False
        self._mark(tail, urgent)
        return True

    def touch_waiting_tails(self) -> None:
        """Look again at files whose last line waits for its newline (or for quiet)."""
        for tail in list(self.files.values()):
            if tail.tail_waiting:
                self._mark(tail, False)

    def touch_all(self) -> None:
        for tail in list(self.files.values()):
            self._mark(tail, False)

    def _mark(self, tail: FileTail, urgent: bool, first: bool = False) -> None:
        with self._lock:
            if urgent:
                self._dirty.pop(tail, None)
            elif tail in self._urgent:
                return
            queue = self._urgent if urgent else self._dirty
            if first and queue:
                queue.pop(tail, None)
                rest = dict(queue)
                queue.clear()
                queue[tail] = None
                queue.update(rest)
            else:
                queue[tail] = None

    def report(self, problems: Iterable[Problem]) -> list[Problem]:
        """Files or folders found but not read; each (path, reason) is sent once. Returns
        the new ones."""
        added = []
        with self._lock:
            for problem in problems:
                key = (problem.path, problem.reason)
                if key not in self._problems_seen:
                    self._problems_seen.add(key)
                    self._problems.append(problem)
                    added.append(problem)
        return added

    def has_work(self) -> bool:
        return bool(self._urgent or self._dirty or self._problems)

    def _pop(self) -> tuple[FileTail, bool] | None:
        with self._lock:
            for queue in (self._urgent, self._dirty):
                if queue:
                    tail = next(iter(queue))
                    del queue[tail]
                    return tail, queue is self._urgent
        return None

    # -- reading -----------------------------------------------------------------------------

    def next_batch(self) -> Batch | None:
        """Read dirty files into one batch; None when nothing new was found. Blocking."""
        self._reading = True
        try:
            return self._fill()
        finally:
            self._reading = False

    def _fill(self) -> Batch | None:
        chunks: list[Chunk] = []
        lines = size = 0
        while lines < self.batch_lines and size < self.batch_bytes:
            popped = self._pop()
            if popped is None:
                break
            tail, urgent = popped
            chunk = tail.read(self.batch_lines - lines, self.batch_bytes - size, self.final)
            if not tail.at_eof and not tail.missing:
                # The batch filled up first: continue with this file (its read-ahead is in
                # memory) before starting another one. A file inside a line too long to hold
                # waits behind the others instead: reading past it must not hold them up.
                self._mark(tail, urgent, first=not tail.skipping)
            if tail.problem is not None:
                self.report([tail.problem])
            if tail.skipping:
                size += tail.skipped
            if chunk is not None:
                chunks.append(chunk)
                lines += chunk.lines
                size += chunk.bytes_read
        with self._lock:
            problems, self._problems = self._problems, []
        if not chunks and not problems:
            return None
        self.lines_read += lines
        sent = [_Sent(c.tail, c.generation, c.offset, c.line_count, c.reset, c.session_id,
                      c.tail_sha256) for c in chunks]
        with self._lock:
            batch_id = next(self._ids)
            self._in_flight[batch_id] = _InFlight(sent, problems)
        return Batch(batch_id, chunks, problems)

    # -- acknowledgements --------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def acknowledge(self, batch_id: int) -> bool:
        """The store committed this batch. Returns False for a batch not in flight."""
        with self._lock:
            entry = self._in_flight.get(batch_id)
            if entry is None:
                return False
            entry.acked = True
            # Offsets move only over a prefix of committed batches (acks may come out of order).
            ready: list[_InFlight] = []
            while self._in_flight:
                first = next(iter(self._in_flight.values()))
                if not first.acked:
                    break
                self._in_flight.popitem(last=False)
                ready.append(first)
        for done in ready:
            for s in done.sent:
                s.tail.acknowledge(s.generation, s.offset, s.line_count, s.reset, s.session_id,
                                   s.tail_sha256)
        return True

    def rewind(self) -> None:
        """Drop every unacknowledged batch and read again from the durable offsets."""
        with self._lock:
            unsent = [p for entry in self._in_flight.values() for p in entry.problems]
            self._problems[:0] = unsent
            self._in_flight.clear()
        for tail in self.files.values():
            if tail.offset != tail.durable_offset or tail.reset_unacked:
                tail.rewind()
                self._mark(tail, False)

    # -- status ------------------------------------------------------------------------------

    def idle(self, sizes: dict[str, int] | None = None) -> bool:
        """Every file read to its end and every byte read acknowledged."""
        if self._reading or self._in_flight or self.has_work():
            return False
        for tail in list(self.files.values()):
            size = None if sizes is None else sizes.get(tail.path)
            if not tail.fully_read(size) or not tail.durable():
                return False
        return True

    def status(self, roots: Iterable[str], ready: bool = True) -> Status:
        """A snapshot, with each file's current size (blocking: stats every file)."""
        files = []
        sizes: dict[str, int] = {}
        for tail in list(self.files.values()):
            if tail.missing:
                continue
            try:
                size = os.stat(tail.path).st_size
            except OSError:
                continue
            sizes[tail.path] = size
            files.append(FileStatus(tail.source(), size, tail.offset, tail.durable_offset))
        return Status(list(roots), files, self.lines_read, self.in_flight,
                      ready and self.idle(sizes))
