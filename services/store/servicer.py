"""StoreService over gRPC: maps protobuf to the store's plain rows and back, nothing else.

Errors: every `StoreError` becomes a gRPC status through `STATUS_CODES`, the one place where
the store's exceptions meet status codes; anything unexpected is INTERNAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from services.store import rows
from services.store.changefeed import ChangeFeed, Condition, replay_then_follow
from services.store.reader import ReadPool
from services.store.writer import WriteBatch, Writer, WriteResult, WriteStream
from threadline import telemetry
from threadline.storage import accounting, names, search
from threadline.storage.changes import CHANGES_PAGE, change_heads_since, changes_since
from threadline.storage.errors import (
    DatabaseMissing,
    EarlierBatchFailed,
    InvalidArgument,
    NotFound,
    StaleAnalysis,
    StoreClosed,
    StoreError,
    SubscriberTooSlow,
    WriteFailed,
)
from threadline.storage.messages import session_messages
from threadline.storage.parse_errors import parse_errors
from threadline.storage.sessions import list_projects, list_sessions
from threadline.storage.sources import offsets
from threadline.storage.stats import stats
from threadline.storage.usage import usage
from threadline.v1 import common_pb2, store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[StoreError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    StoreClosed: grpc.StatusCode.UNAVAILABLE,
    EarlierBatchFailed: grpc.StatusCode.ABORTED,
    StaleAnalysis: grpc.StatusCode.ABORTED,
    SubscriberTooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DatabaseMissing: grpc.StatusCode.FAILED_PRECONDITION,
    # Transient: the sender keeps the batch and sends it again (ingest backs off and retries).
    WriteFailed: grpc.StatusCode.UNAVAILABLE,
    search.SearchUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
}
# Batches of one Write stream being committed at once (ingest bounds it further).
WRITE_WINDOW = 64


def status_code(exc: BaseException) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    code = status_code(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("store request failed", exc_info=exc)
    await context.abort(code, str(exc) or type(exc).__name__)


def _ignore_outcome(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def _mapped(method: Callable) -> Callable:
    """Unary handlers: turn exceptions into statuses."""
    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)
    return wrapper


class StoreServicer(store_pb2_grpc.StoreServiceServicer):
    def __init__(self, writer: Writer, feed: ChangeFeed, reads: ReadPool,
                 pricing_file: Path | None = None):
        self._writer = writer
        self._feed = feed
        self._reads = reads
        self._pricing_file = pricing_file
        self._tracer = telemetry.tracer("store")
        self._write_readers: set[asyncio.Task] = set()

    # --- writes ------------------------------------------------------------------------------

    def on_commit(self, batch: WriteBatch, result: WriteResult) -> None:
        """Writer hook, on the event loop in commit order: publish live changes."""
        if self._feed.has_subscribers and (result.new_messages or result.new_errors
                                          or result.new_analysis):
            self._feed.publish(rows.live_changes(batch, result, self._feed.wants_payloads))

    async def _commit(self, batch: common_pb2.Batch, stream: WriteStream) -> WriteResult:
        with telemetry.span_from(self._tracer, "store.write", batch.trace_context,
                                 **{"threadline.batch_id": batch.batch_id}) as span:
            # Changes name this span as their parent (or carry the batch's own context when
            # tracing is off), so the trace continues to the stream service.
            carrier: dict[str, str] = {}
            telemetry.inject(carrier)
            write = rows.write_batch(batch, carrier or dict(batch.trace_context))
            write.stream = stream
            result = await self._writer.submit(write)
            span.set_attribute("threadline.new_messages", len(result.new_messages))
            return result

    async def Write(self, request_iterator, context) -> AsyncIterator[common_pb2.BatchAck]:
        # Batches are read (and queued to the writer) while earlier ones commit, so the writer
        # can group them; acks go back in order, each only after its commit. Once one fails,
        # the writer fails the rest of the stream (see WriteStream) and the stream ends.
        pending: asyncio.Queue[asyncio.Task | None] = asyncio.Queue()
        window = asyncio.Semaphore(WRITE_WINDOW)
        stream = WriteStream()

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    await window.acquire()
                    pending.put_nowait(asyncio.ensure_future(self._commit(batch, stream)))
            finally:
                pending.put_nowait(None)

        reader = asyncio.create_task(read())
        self._write_readers.add(reader)
        try:
            while (task := await pending.get()) is not None:
                result = await task
                window.release()
                yield rows.ack_pb(result)
            # The request stream ended: normally, cancelled by end_writes(), or broken.
            (outcome,) = await asyncio.gather(reader, return_exceptions=True)
            if isinstance(outcome, Exception):
                raise outcome
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)
        finally:
            self._write_readers.discard(reader)
            reader.cancel()
            # After a failure nobody awaits the later batches (they fail as well).
            while not pending.empty():
                if (task := pending.get_nowait()) is not None:
                    task.add_done_callback(_ignore_outcome)

    def end_writes(self) -> None:
        """Stop reading Write streams: they ack what they already took, then end."""
        for reader in list(self._write_readers):
            reader.cancel()

    # --- change feed -------------------------------------------------------------------------

    async def Changes(self, request, context) -> AsyncIterator[common_pb2.ChangeBatch]:
        project, session = request.project_key, request.session_id
        heads_only = request.heads_only

        def page(conn, after: int) -> list[tuple[int, common_pb2.Change]]:
            if heads_only:
                return [(c["seq"], rows.change_head_pb(c))
                        for c in change_heads_since(conn, after, CHANGES_PAGE)]
            return [(c["seq"], rows.change_pb(c)) for c in
                    changes_since(conn, after, project, session, CHANGES_PAGE)]

        async def read_page(after: int) -> list[tuple[int, common_pb2.Change]]:
            return await self._reads.call(page, after)

        try:
            if request.since_sequence < 0:
                raise InvalidArgument("since_sequence must be >= 0")
            if heads_only and (project or session):
                raise InvalidArgument("heads_only follows the whole store: no project or "
                                      "session filter")
            if project or session:  # the names a user gives: resolved once, for the replay
                # and the live changes alike
                project, session = await self._reads.call(
                    names.resolve_names, project, session)
            # aclosing: a cancelled call must drop its subscription now, not at GC time.
            async with contextlib.aclosing(replay_then_follow(
                    self._feed, read_page, request.since_sequence, request.follow,
                    project, session, CHANGES_PAGE, heads_only)) as changes:
                async for batch in changes:
                    if isinstance(batch[0], Condition):
                        yield common_pb2.ChangeBatch(condition=common_pb2.StoreCondition(
                            write_error=batch[0].write_error))
                        batch = batch[1:]
                        if not batch:
                            continue
                    if heads_only:
                        # The last change's head. Live changes carry payloads while another
                        # subscriber wants them; otherwise only the last of a commit has one.
                        last = next(c for c in reversed(batch) if c is not None)
                        batch = [rows.head_of(last) if last.HasField("payload") else last]
                    yield common_pb2.ChangeBatch(changes=batch)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)

    # --- queries -----------------------------------------------------------------------------

    @_mapped
    async def ResolveNames(self, request, context):
        project, session = await self._reads.call(names.resolve_names, request.project,
                                                  request.session)
        return store_pb2.ResolveNamesResponse(project_key=project, session_id=session)

    @_mapped
    async def ListProjects(self, request, context):
        found = await self._reads.call(list_projects)
        return store_pb2.ListProjectsResponse(projects=[rows.project_pb(p) for p in found])

    @_mapped
    async def ListSessions(self, request, context):
        found = await self._reads.call(list_sessions, request.project_key)
        return store_pb2.ListSessionsResponse(sessions=[rows.session_pb(s) for s in found])

    @_mapped
    async def GetSessionMessages(self, request, context):
        def run(conn) -> store_pb2.GetSessionMessagesResponse:
            found, next_after = session_messages(
                conn, request.session_id, request.after_sequence, request.limit,
                request.include_raw)
            return store_pb2.GetSessionMessagesResponse(
                messages=[store_pb2.StoredMessage(sequence=m["seq"], message=rows.message_pb(m))
                          for m in found],
                next_after_sequence=next_after)

        return await self._reads.call(run)

    @_mapped
    async def GetOffsets(self, request, context):
        found = await self._reads.call(offsets)
        return store_pb2.GetOffsetsResponse(offsets=[rows.offset_pb(o) for o in found])

    @_mapped
    async def ListParseErrors(self, request, context):
        found = await self._reads.call(parse_errors, request.limit)
        return store_pb2.ListParseErrorsResponse(errors=[rows.error_pb(e) for e in found])

    @_mapped
    async def GetStats(self, request, context):
        return store_pb2.StoreStats(**await self._reads.call(stats),
                                    write_error=self._writer.write_error)

    @_mapped
    async def GetUsage(self, request, context):
        # UTC by default: the server's local zone means nothing to a remote client.
        query = accounting.usage_query(request.by or "day", request.since, request.until,
                                       request.timezone or "UTC", request.agent)
        found = await self._reads.call(usage, query, self._pricing_file)
        return store_pb2.GetUsageResponse(
            rows=[store_pb2.UsageRow(**r) for r in found.rows],
            total=store_pb2.UsageRow(**found.total), pricing_date=found.pricing_date)

    @_mapped
    async def Search(self, request, context):
        found = await self._reads.call(search.search, request.query,
                                       request.limit or search.DEFAULT_LIMIT)
        return store_pb2.SearchResponse(
            hits=[store_pb2.SearchHit(
                sequence=h.seq, key=h.key, uuid=h.uuid, session_id=h.session_id,
                project_key=h.project_key, timestamp=h.timestamp, role=h.role, type=h.type,
                model=h.model, ordinal=h.ordinal, score=h.score, columns=h.columns,
                snippet=[store_pb2.SnippetPart(text=t, highlighted=lit) for t, lit in h.snippet])
                for h in found.hits],
            more=found.more, expression=found.expression, recent_only=found.recent_only)
