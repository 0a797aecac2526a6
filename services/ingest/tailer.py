"""Reading one transcript file line by line, from where it was left, complete lines only.

A `FileTail` remembers how far a file has been read (`offset`, `line_count`) and how far the
store has committed it (`durable_offset`), and recognises when the file it reads is no longer
the file it read before:

- truncated: the file is shorter than what was read;
- replaced: another inode at the same path, or its first bytes (`head_sha256` over
  `head_length` <= 1024 bytes) changed;
- rewritten past where it was read: the bytes just before the read offset (`tail_sha256`
  over up to 1024 bytes, kept with the offsets and committed with them) changed. A file
  truncated and written again beyond the old offset between two reads keeps its inode, its
  head and a larger size; only these bytes tell.

Either way reading starts again from byte 0 and the next chunk says `reset`, which is safe
because the store dedupes messages by key.

Records that name no session (file-history-snapshot, summary, ...) get the session of the
last record before them in the same file that named one (`session_id`, kept with the offsets
and committed with them), so a reader that resumes mid-file decides exactly as one that read
the file from the start.

A line is parsed only once its newline has arrived: the bytes of a half-written last line stay
unconsumed (kept in memory so a long line is not read again on every append), unless the
caller says the file is `final` (import mode) or the file has been quiet (unmodified) for
`quiet_seconds`: then the unterminated tail is parsed if it is valid JSON and reported as
`truncated_tail` otherwise, once for as long as it does not grow. Either way the offset stays
at the start of that line: if the file does grow after all, the completed line is read then,
with the same bytes at the same offset, so the store keeps the record once (same key). A tail
that grows into a different line (more bytes before its newline) is read as that line; what
was reported of it before stays stored.

A line longer than `max_line_bytes` is not held in memory: once that many bytes of it are
read without a newline, it is scanned block by block for its end (`_LongLine`, a bounded
amount per read so other files are read in between) and becomes one `line_too_long` error
with its position and length. A JSON document over the limit is one such error too.

A JSON document (`*.json`: Gemini CLI's legacy chats, rewritten whole on every change and
often pretty-printed over many lines) is read whole instead, and parsed only once the whole
file parses; until then (a rewrite in progress) nothing is consumed, and in import mode the
file is reported once as a bad line. Its head is the whole document, so any rewrite reads as
"replaced" and the document is read again from byte 0; its messages come back with the same
raw bytes, hence the same storage keys, so nothing is stored twice.

Blocking file I/O: call from a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from services.ingest.discovery import DOCUMENT_SUFFIX, UNREADABLE, Problem
from services.ingest.parser import EXCERPT_BYTES, line_too_long, parse_line, truncated_tail
from threadline.domain.records import LineError, Position, Record

log = logging.getLogger(__name__)

HEAD_BYTES = 1024
TAIL_BYTES = 1024
BLOCK_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024
# Reasons for which an unterminated last line is judged "cut off" rather than bad content.
_NOT_JSON = frozenset({"invalid_json", "invalid_utf8"})


@dataclass(frozen=True, slots=True)
class Source:
    """A transcript file as it was read: enough to recognise it again."""

    path: str
    identity: str
    project_key: str
    format: str
    head_sha256: str
    head_length: int


@dataclass(frozen=True, slots=True)
class Durable:
    """How far the store has committed a source."""

    source: Source
    offset: int
    line_count: int
    session_id: str = ""
    # sha256 of the bytes just before `offset` ("" at 0, or when not known).
    tail_sha256: str = ""


@dataclass(slots=True)
class Chunk:
    """The lines read from one file by one `FileTail.read`."""

    tail: FileTail
    source: Source
    generation: int
    # Just past the last consumed line, and the number of lines before it.
    offset: int
    line_count: int
    records: list[Record] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    reset: bool = False
    bytes_read: int = 0
    # The session in effect at `offset` (see the module docstring).
    session_id: str = ""
    tail_sha256: str = ""

    @property
    def lines(self) -> int:
        return len(self.records) + len(self.errors)


@dataclass(slots=True)
class _LongLine:
    """A line over the length limit, being read past: where it starts, how far it is known
    to hold no newline, and its first bytes (the error's excerpt)."""

    start: int
    line_number: int
    scanned: int
    excerpt: bytes


class FileTail:
    """Read position and identity of one transcript file."""

    def __init__(self, path: str, project_key: str, format: str,
                 lock: threading.Lock | None = None, max_line_bytes: int = MAX_LINE_BYTES,
                 quiet_seconds: float | None = None, follow_link: bool = False):
        # Acknowledgements arrive on the event loop while a worker thread may be resetting
        # this file: both touch the durable fields under this lock.
        self.lock = lock or threading.Lock()
        self.path = path
        self.project_key = project_key
        self.format = format
        # Read whole, as one JSON document (see the module docstring).
        self.document = path.endswith(DOCUMENT_SUFFIX)
        self.identity = ""
        self.head_sha256 = ""
        self.head_length = 0
        self.offset = 0
        self.line_count = 0
        self.durable_offset = 0
        self.durable_line_count = 0
        # Session of the last record before `offset` (and `durable_offset`) that named one.
        self.session_id = ""
        self.durable_session_id = ""
        # sha256 of the bytes just before `offset` (and `durable_offset`), and those bytes
        # themselves while they are known (None: only the hash is, after a resume or rewind).
        self.tail_sha256 = ""
        self.durable_tail_sha256 = ""
        self._recent: bytes | None = b""
        # Bumped by every reset, so acknowledgements of the old content are recognised.
        self.generation = 0
        # A reset must reach the store: pending until a chunk saying so is acknowledged.
        self.reset_to_send = False
        self.reset_unacked = False
        self.size = 0
        self.at_eof = False
        self.missing = False
        # Bytes from `offset` on already read but not consumed (a half-written line, or lines
        # left over when a batch filled up).
        self._pending = b""
        # Import mode reports an unterminated last line once, without consuming it.
        self.tail_reported = False
        # (offset, length) of the unterminated tail last reported: reported again once it grew.
        self._reported_tail = (0, 0)
        self.max_line_bytes = max(1, max_line_bytes)
        # Live mode: an unterminated last line this long unmodified is read anyway.
        self.quiet_seconds = quiet_seconds
        self._long: _LongLine | None = None
        # Bytes of a long line scanned by the last read (they count towards a batch's size).
        self.skipped = 0
        # An unterminated last line is waiting for its newline or for the file to be quiet.
        self.tail_waiting = False
        # A path below a root that turned into a symbolic link is not followed (see
        # discovery); only a root named as a file may be one.
        self.follow_link = follow_link
        # Why the file could not be opened on the last read, if it could not.
        self.problem: Problem | None = None

    def source(self) -> Source:
        return Source(self.path, self.identity, self.project_key, self.format, self.head_sha256,
                      self.head_length)

    def resume(self, durable: Durable) -> None:
        """Continue from what the store committed; the next read checks it is the same file."""
        src = durable.source
        self.identity = src.identity
        self.head_sha256 = src.head_sha256
        self.head_length = src.head_length
        self.offset = self.durable_offset = durable.offset
        self.line_count = self.durable_line_count = durable.line_count
        self.session_id = self.durable_session_id = durable.session_id
        self.tail_sha256 = self.durable_tail_sha256 = durable.tail_sha256
        self._recent = None if durable.offset else b""
        self._pending = b""
        self._long = None

    def acknowledge(self, generation: int, offset: int, line_count: int, reset: bool,
                    session_id: str, tail_sha256: str = "") -> None:
        """The store committed everything before `offset` (of content `generation`)."""
        with self.lock:
            if generation != self.generation:
                return  # the file was reset since: this was about its old content
            self.durable_offset = offset
            self.durable_line_count = line_count
            self.durable_session_id = session_id
            self.durable_tail_sha256 = tail_sha256
            if reset:
                self.reset_unacked = False

    def rewind(self) -> None:
        """Forget what was read but not committed (the stream to the store broke)."""
        self.offset = self.durable_offset
        self.line_count = self.durable_line_count
        self.session_id = self.durable_session_id
        self.tail_sha256 = self.durable_tail_sha256
        self._recent = None if self.offset else b""
        self.tail_reported = False
        self.reset_to_send = self.reset_unacked
        self._pending = b""
        self._long = None
        self.at_eof = False

    @property
    def skipping(self) -> bool:
        """Inside a line over the length limit (see `_LongLine`)."""
        return self._long is not None

    def fully_read(self, size: int | None = None) -> bool:
        if self.missing:
            return True
        return self.at_eof and (size is None or size == self.size)

    def durable(self) -> bool:
        return self.durable_offset == self.offset and not self.reset_unacked

    def read(self, max_lines: int, max_bytes: int, final: bool = False) -> Chunk | None:
        """Read and parse complete lines from the read offset on.

        Stops after `max_lines` lines or `max_bytes` bytes (always taking at least one line).
        Returns None when there was nothing new to report. Raises nothing for a vanished file:
        it is marked `missing`.
        """
        flags = os.O_RDONLY | (0 if self.follow_link else os.O_NOFOLLOW)
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            # Gone, unreadable, or no longer a file: nothing to read now. A rescan or the
            # watcher brings it back when that changes.
            if not isinstance(exc, FileNotFoundError):
                detail = ("became a symbolic link: not followed" if os.path.islink(self.path)
                          else f"cannot open the file: {exc.strerror or exc}")
                problem = Problem(self.path, UNREADABLE, detail, self.project_key)
                # A lasting problem is met on every rescan: say it once.
                level = logging.DEBUG if problem == self.problem else logging.WARNING
                log.log(level, "cannot read %s: %s", self.path, detail)
                self.problem = problem
            self.missing = True
            self.at_eof = True
            return None
        try:
            self.problem = None
            self.missing = False
            return self._read(fd, max_lines, max_bytes, final)
        except OSError as exc:  # an I/O error mid-read: try again on the next change
            log.warning("reading %s failed: %s", self.path, exc.strerror or exc)
            self._pending = b""
            self.at_eof = True
            return None
        finally:
            os.close(fd)

    def _read(self, fd: int, max_lines: int, max_bytes: int, final: bool) -> Chunk | None:
        st = os.fstat(fd)
        self._check_same_file(fd, f"{st.st_dev}:{st.st_ino}", st.st_size)
        if self.document:
            return self._read_document(fd, st.st_size, final)
        # Live mode: a file nobody wrote to for a while will not finish its last line soon.
        final = final or (self.quiet_seconds is not None
                          and time.time() - st.st_mtime >= self.quiet_seconds)
        self.skipped = 0
        path = self.path
        hint = self.format
        keep = _Keeper(self.project_key, self.session_id)
        records, errors = keep.records, keep.errors
        data = self._pending
        base = self.offset  # file offset of data[0]
        pos = 0
        line_number = self.line_count
        taken = 0
        eof = False
        start = self.offset
        recent = self._recent or b""  # the last consumed bytes, before data[0]
        limit = self.max_line_bytes
        while taken < max_lines:
            if self._long is not None:
                long = self._long
                end = self._pass_long_line(fd, max(1, max_bytes - self.skipped))
                if end is None:  # not through it yet
                    eof = self.at_eof
                    if eof and final and not self.tail_reported:
                        keep(line_too_long(long.excerpt, Position(
                            path, long.start, long.line_number, long.scanned - long.start),
                            limit, complete=False))
                        self.tail_reported = True
                    break
                keep(line_too_long(long.excerpt, Position(
                    path, long.start, long.line_number, end - 1 - long.start), limit))
                self._long = None
                self.tail_reported = False
                taken += 1
                line_number = long.line_number
                length = min(TAIL_BYTES, end)
                recent = os.pread(fd, length, end - length)
                data, base, pos = b"", end, 0
                if end - start + self.skipped >= max_bytes:
                    break
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                end = base + len(data)
                rest = len(data) - pos
                if rest > limit:
                    recent = _last(recent, data, pos)
                    self._long = _LongLine(base + pos, line_number + 1, end,
                                           bytes(data[pos:pos + EXCERPT_BYTES]))
                    data, base, pos = b"", base + pos, 0
                    continue
                # Inside a long line, read at least as much again: linear, not quadratic
                # (but not much past the limit).
                block = os.pread(fd, max(BLOCK_BYTES, min(rest, limit + 1 - rest)), end)
                if not block:
                    eof = True
                    break
                recent = _last(recent, data, pos)
                data = data[pos:] + block
                base += pos
                pos = 0
                continue
            line = data[pos:newline]
            line_number += 1
            # Blank (empty or whitespace-only) lines are skipped but still counted in line
            # numbers. isspace() stops at the first other byte: a JSON line costs one byte.
            if line and not line.isspace():
                keep(parse_line(line, Position(path, base + pos, line_number, len(line)), hint))
                taken += 1
            pos = newline + 1
            if base + pos - start >= max_bytes:
                break
        session_id = keep.session_id  # in effect at the new offset, before any tail
        tail = (base + pos, len(data) - pos)
        if self.tail_reported and tail != self._reported_tail and self._long is None:
            self.tail_reported = False  # the tail grew since it was reported
        self.tail_waiting = (eof and tail[1] > 0 and not self.tail_reported
                             and not data[pos:].isspace()) or (
            self._long is not None and eof and not self.tail_reported)
        if eof and final and pos < len(data) and not self.tail_reported:
            # Reported once, but not consumed (see the module docstring).
            line = data[pos:]
            self.tail_waiting = False
            self._reported_tail = tail
            if not line.isspace():
                position = Position(path, base + pos, line_number + 1, len(line))
                result = parse_line(line, position, hint)
                if isinstance(result, LineError) and result.reason in _NOT_JSON:
                    result = truncated_tail(line, position)
                keep(result)
                self.tail_reported = True
        consumed = base + pos - start
        self._pending = data[pos:]
        self.at_eof = eof
        self.size = max(st.st_size, base + len(data))
        if consumed == 0 and not self.reset_to_send and not records and not errors:
            return None
        self.offset = base + pos
        self.line_count = line_number
        self.session_id = session_id
        if consumed:
            self._recent = recent = _last(recent, data, pos)
            self.tail_sha256 = hashlib.sha256(recent).hexdigest()
        chunk = Chunk(self, self.source(), self.generation, self.offset, self.line_count,
                      records, errors, self.reset_to_send, consumed, self.session_id,
                      self.tail_sha256)
        self.reset_to_send = False
        return chunk

    def _read_document(self, fd: int, size: int, final: bool) -> Chunk | None:
        """The whole file as one JSON document (see the module docstring)."""
        self.at_eof = True
        self.size = size
        if self.offset and self.offset >= size and not self.reset_to_send:
            return None  # unchanged: its head, the whole document, still matches
        keep = _Keeper(self.project_key, self.session_id)
        if size > self.max_line_bytes:
            # Not held in memory either: one error, until it is rewritten within the limit.
            data = b""
            if not self.tail_reported:
                keep(line_too_long(os.pread(fd, EXCERPT_BYTES, 0),
                                   Position(self.path, 0, 1, size), self.max_line_bytes))
                self.tail_reported = True
        else:
            data = _read_all(fd, size)
            self.size = len(data)
        start = self.offset
        if data and not data.isspace():
            result = parse_line(data, Position(self.path, 0, 1, len(data)), self.format)
            if isinstance(result, LineError):
                if final and not self.tail_reported:
                    keep(result)
                    self.tail_reported = True
                # Otherwise being rewritten (or broken for good): wait for the next change.
            else:
                keep(result)
                self.offset = len(data)
                self.line_count = data.count(b"\n") + (not data.endswith(b"\n"))
                self.session_id = keep.session_id
                self.head_sha256 = hashlib.sha256(data).hexdigest()
                self.head_length = len(data)
        consumed = self.offset - start
        if not consumed and not self.reset_to_send and not keep.records and not keep.errors:
            return None
        chunk = Chunk(self, self.source(), self.generation, self.offset, self.line_count,
                      keep.records, keep.errors, self.reset_to_send, max(consumed, 0),
                      self.session_id)
        self.reset_to_send = False
        return chunk

    def _check_same_file(self, fd: int, identity: str, size: int) -> None:
        replaced = bool(self.identity) and identity != self.identity
        # A half-written last line kept from the previous read must still be in the file: one
        # cut back inside it and written again would otherwise glue old bytes to new ones into
        # a forged line. (Read-ahead left by a full batch is not checked again: it was read
        # moments ago and re-reading it would double the cost of a bulk import.)
        if not replaced and self._pending and self.at_eof:
            replaced = os.pread(fd, len(self._pending), self.offset) != self._pending
        if not replaced and size < self.offset:
            replaced = True
        if not replaced and self.offset and not self.document:
            replaced = not self._same_tail(fd)
        if not replaced and self.head_length:
            head = os.pread(fd, self.head_length, 0)
            replaced = (len(head) < self.head_length
                        or hashlib.sha256(head).hexdigest() != self.head_sha256)
        if replaced:
            self._restart()
        self.identity = identity
        if self.head_length < HEAD_BYTES and size > self.head_length:
            head = os.pread(fd, HEAD_BYTES, 0)
            self.head_sha256 = hashlib.sha256(head).hexdigest()
            self.head_length = len(head)

    def _pass_long_line(self, fd: int, budget: int) -> int | None:
        """Scan a too-long line for its newline, a block at a time, for up to `budget` bytes.

        Returns the offset just past its newline, or None (then `at_eof` says whether the
        file ended before it)."""
        long = self._long
        assert long is not None
        self.at_eof = False
        while self.skipped < budget:
            block = os.pread(fd, BLOCK_BYTES, long.scanned)
            if not block:
                self.at_eof = True
                return None
            newline = block.find(b"\n")
            if newline >= 0:
                self.skipped += newline + 1
                return long.scanned + newline + 1
            long.scanned += len(block)
            self.skipped += len(block)
        return None

    def _same_tail(self, fd: int) -> bool:
        """Whether the bytes just before the read offset are still the ones read there."""
        length = min(TAIL_BYTES, self.offset)
        before = os.pread(fd, length, self.offset - length)
        if self._recent is not None:
            return before == self._recent
        if self.tail_sha256 and hashlib.sha256(before).hexdigest() != self.tail_sha256:
            return False
        # Matches (or an offset committed before these hashes were kept): trust it from now on.
        self._recent = before
        return True

    def _restart(self) -> None:
        with self.lock:
            self.generation += 1
            self.durable_offset = self.durable_line_count = 0
            self.reset_unacked = True
        self.offset = self.line_count = 0
        self.session_id = ""
        self.tail_sha256 = ""
        self._recent = b""
        self._long = None
        self.tail_reported = False
        self.head_sha256 = ""
        self.head_length = 0
        self.reset_to_send = True
        self._pending = b""


def _last(recent: bytes, data: bytes, end: int) -> bytes:
    """The last TAIL_BYTES bytes of `recent` followed by `data[:end]`."""
    if end >= TAIL_BYTES:
        return data[end - TAIL_BYTES:end]
    return (recent + data[:end])[-TAIL_BYTES:]


def _read_all(fd: int, size: int) -> bytes:
    parts = []
    at = 0
    while True:
        block = os.pread(fd, max(BLOCK_BYTES, size - at), at)
        if not block:
            return b"".join(parts)
        parts.append(block)
        at += len(block)


class _Keeper:
    """Sorts parse results into records and errors, giving records without a session id the
    session in effect (see the module docstring). A result may be a list of records (the
    messages of a JSON chat document)."""

    def __init__(self, project_key: str, session_id: str):
        self.project_key = project_key
        self.session_id = session_id
        self.records: list[Record] = []
        self.errors: list[LineError] = []

    def __call__(self, result: Record | LineError | list[Record]) -> None:
        if isinstance(result, list):
            for record in result:
                self(record)
            return
        result.project_key = self.project_key
        if isinstance(result, Record):
            if result.session_id:
                self.session_id = result.session_id
            else:
                result.session_id = self.session_id
            self.records.append(result)
        else:
            self.errors.append(result)
