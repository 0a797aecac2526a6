"""Mapping between ingest's domain objects and the protobuf contract (the only place that does)."""

from __future__ import annotations

from services.ingest.discovery import Problem
from services.ingest.ingestor import Batch, Status
from services.ingest.parser import excerpt
from services.ingest.tailer import Durable, Source
from threadline import convert
from threadline.domain.records import CLAUDE_CODE, LineError, Position
from threadline.v1 import common_pb2, ingest_pb2


def source_to_pb(s: Source) -> common_pb2.Source:
    return common_pb2.Source(
        path=s.path, identity=s.identity, project_key=s.project_key,
        format=convert.FORMAT_TO_PB.get(s.format, common_pb2.SOURCE_FORMAT_UNSPECIFIED),
        head_sha256=s.head_sha256, head_length=s.head_length)


def durable_from_pb(o: common_pb2.SourceOffset) -> Durable:
    s = o.source
    source = Source(s.path, s.identity, s.project_key,
                    convert.FORMAT_FROM_PB.get(s.format, CLAUDE_CODE), s.head_sha256,
                    s.head_length)
    return Durable(source, o.offset, o.line_count, o.session_id, o.tail_sha256)


def batch_to_pb(b: Batch) -> common_pb2.Batch:
    # Filled in place: protobuf copies a message each time it is put into another one.
    out = common_pb2.Batch(batch_id=b.batch_id)
    for c in b.chunks:
        chunk = out.chunks.add()
        chunk.reset = c.reset
        position = chunk.position
        position.source.CopyFrom(source_to_pb(c.source))
        position.offset = c.offset
        position.line_count = c.line_count
        position.session_id = c.session_id
        position.tail_sha256 = c.tail_sha256
        for record in c.records:
            try:
                chunk.messages.append(convert.message_to_pb(record))
            except (ValueError, TypeError) as exc:
                # The parser keeps values within the contract's types; should one slip
                # through, that line becomes a parse error instead of stopping ingest.
                chunk.errors.append(convert.error_to_pb(LineError(
                    record.source, "unrepresentable", repr(exc)[:500],
                    excerpt(record.raw), record.project_key)))
        chunk.errors.extend([convert.error_to_pb(e) for e in c.errors])
    if b.problems:
        # Not a position in any file: a chunk without one, whose errors the store keeps
        # (deduplicated by path and offset -1) and streams like parse errors.
        chunk = out.chunks.add()
        chunk.errors.extend([convert.error_to_pb(problem_error(p)) for p in b.problems])
    return out


def problem_error(p: Problem) -> LineError:
    """A file or folder not read, as a parse error at offset -1 (no line of it was read)."""
    return LineError(Position(p.path, -1, 0, 0), p.reason, p.detail, b"", p.project_key)


def status_to_pb(s: Status) -> ingest_pb2.IngestStatus:
    return ingest_pb2.IngestStatus(
        roots=s.roots,
        files=[ingest_pb2.TrackedFile(source=source_to_pb(f.source), size=f.size,
                                      read_offset=f.read_offset, durable_offset=f.durable_offset)
               for f in s.files],
        lines_read=s.lines_read, batches_in_flight=s.batches_in_flight, idle=s.idle)
