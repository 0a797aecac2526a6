"""AnalysisService: batches in from ingest, threaded batches out to the store, acks back;
and the queries about threads, sessions and tools.

The servicer only maps protobuf to the plain values `normalize` and `FileThreading` work on.
Each Process stream opens its own Write stream to the store and relays the store's
acknowledgements: analysis holds nothing that is not yet durable, so when either side breaks,
the stream ends with UNAVAILABLE and ingest resends every unacknowledged batch. The threading
state is dropped then too and rebuilt from what the store committed, so a resent batch is
threaded as the first time (services/analysis/sessions.py). The session analysis proper runs
in the follower (follower.py), on committed records.

Threading runs in one worker thread (in batch order): it may read the database to rebuild a
file's threader, which must not block the event loop relaying acknowledgements.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import json_format

from services.analysis import normalize, tool_patterns, tool_wire, views
from services.analysis.reply_inference import AGENT_TOOLS, COMPACTION, FIRST, SIDE_CHAIN
from services.analysis.sessions import FileThreading
from services.analysis.store_access import StoreReader
from threadline import convert, telemetry
from threadline.convert import BLOCK_FROM_PB, FORMAT_FROM_PB, ROLE_FROM_PB
from threadline.domain.records import CLAUDE_CODE, Block, Position, Record
from threadline.storage.errors import StoreError
from threadline.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2, store_pb2_grpc

log = logging.getLogger(__name__)
_tracer = telemetry.tracer("analysis")
TOOL_USE = common_pb2.BLOCK_KIND_TOOL_USE
TOOL_RESULT = common_pb2.BLOCK_KIND_TOOL_RESULT
OTHER = common_pb2.BLOCK_KIND_OTHER


NEW_ROOTS = frozenset({FIRST, COMPACTION, SIDE_CHAIN})


def thread_view(m: common_pb2.Message) -> Record:
    """What threading reads of a message, without converting all of it (this runs on every
    record in the pipeline's path): the envelope with its timestamp and response id, the
    tool blocks (a Task/Agent call's input, for the subagent prompt), the tool call a
    progress or hook attachment line reports on, and a user record's text (matched against
    those prompts, caveats and local commands)."""
    blocks = [Block(BLOCK_FROM_PB[b.kind], tool_use_id=b.tool_use_id, tool_name=b.tool_name,
                    tool_input_json=b.tool_input_json if b.tool_name in AGENT_TOOLS else b"")
              for b in m.content if b.kind == TOOL_USE or b.kind == TOOL_RESULT]
    if (m.type == "progress" or m.type == "attachment") and m.content \
            and m.content[0].kind == OTHER:
        blocks.insert(0, Block("other", tool_use_id=m.content[0].tool_use_id))
    src = m.source
    return Record(type=m.type, source=Position(src.path, src.byte_offset, src.line_number,
                                               src.byte_length),
                  raw=b"", format=FORMAT_FROM_PB.get(m.format, CLAUDE_CODE), uuid=m.uuid,
                  parent_uuid=m.parent_uuid, session_id=m.session_id, subtype=m.subtype,
                  role=ROLE_FROM_PB.get(m.role, ""), version=m.version,
                  timestamp=m.timestamp, api_message_id=m.api_message_id, is_meta=m.is_meta,
                  is_sidechain=m.is_sidechain, agent_id=m.agent_id,
                  text=m.text if m.type == "user" else "", content=blocks, key=m.key,
                  project_key=m.project_key)


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    def __init__(self, store: store_pb2_grpc.StoreServiceStub, threading_reader: StoreReader,
                 reader: StoreReader, analyse: bool = True, pricing_file=None):
        self._store = store
        self._pricing_file = pricing_file
        self._analyse = analyse
        self._reader = reader
        self._threading_reader = threading_reader
        self.threading = FileThreading(threading_reader.file_records)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis")
        self._queries = ThreadPoolExecutor(max_workers=2, thread_name_prefix="analysis-query")

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._queries.shutdown(wait=True, cancel_futures=True)
        self._reader.close()
        self._threading_reader.close()

    # --- queries: read the store's database in a thread, answer with the views' dicts -------

    async def _query(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._queries, lambda: self._reader.run(fn, *args, default=None))

    async def _session_view(self, fn, session_id: str, response, context):
        if not session_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        try:
            found = await self._query(fn, session_id)
        except StoreError as exc:  # an ambiguous or too short session id prefix
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        return json_format.ParseDict(found, response, ignore_unknown_fields=True)

    async def GetThreads(self, request, context):
        return await self._session_view(
            lambda conn, session: views.threads(conn, session, self._pricing_file),
            request.session_id, analysis_pb2.GetThreadsResponse(), context)

    async def GetSessionAnalysis(self, request, context):
        return await self._session_view(views.analysis, request.session_id,
                                        analysis_pb2.SessionAnalysis(), context)

    async def _tool_report(self, request, context):
        try:
            report = await self._query(views.tool_report, request.project_key, request.session_id,
                                       request.since, request.until, request.timezone,
                                       request.by or "tool", self._pricing_file)
        except (ValueError, StoreError) as exc:  # a bad date, time zone or grouping
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if report is None:
            report = tool_patterns.summarise([], by=request.by or "tool",
                                             timezone=request.timezone or "UTC")
        return report

    async def GetToolStats(self, request, context):
        return tool_wire.report_to_pb(await self._tool_report(request, context))

    async def GetRecommendations(self, request, context):
        report = await self._tool_report(request, context)
        return tool_wire.recommendations_to_pb(report.recommendations)

    def analyse(self, batch: common_pb2.Batch) -> common_pb2.Batch:
        """Normalise, then give each chunk's records their thread links, in place. Each
        session whose reply tree gained a root gets a thread update (with the session it
        resumes, when a file shows one); the rest of the analysis follows the committed
        records (follower.py), off the pipeline's path."""
        self.normalise(batch)
        if not self._analyse:
            return batch
        grown: dict[str, str] = {}  # session -> project
        resumed: dict[str, str] = {}
        for chunk in batch.chunks:
            if not chunk.messages:
                continue
            links, found = self.threading.thread([thread_view(m) for m in chunk.messages],
                                                 restart=chunk.reset)
            resumed.update(found)
            for m, thread in zip(chunk.messages, links, strict=True):
                if thread.rule in NEW_ROOTS or m.session_id in found:
                    # A new root: a session's first record, a compaction, an inline subagent.
                    # A record that only extends a chain needs no event of its own: its
                    # message event carries its parent.
                    grown.setdefault(m.session_id, m.project_key)
                if thread.source:
                    m.thread_parent_uuid = thread.parent_uuid
                    m.thread_parent_source = thread.source
                    m.thread_relation = thread.relation
                    m.thread_confidence = thread.confidence
        for session_id, project in grown.items():
            batch.analysis.add(session_id=session_id, project_key=project, thread_changed=True,
                               resumed_from=resumed.get(session_id, ""))
        return batch

    def normalise(self, batch: common_pb2.Batch) -> common_pb2.Batch:
        """Fill in keys and session ids and collect tool calls, in place."""
        calls = []
        for chunk in batch.chunks:
            for m in chunk.messages:
                source = m.source
                m.session_id = normalize.session_of(source.path, m.session_id)
                m.key = normalize.message_key(m.uuid, m.project_key, source.path,
                                              source.byte_offset, m.raw,
                                              FORMAT_FROM_PB.get(m.format, ""), m.session_id)
                for b in m.content:
                    if b.kind == TOOL_USE and b.tool_use_id:
                        calls.append(normalize.tool_use(b.tool_use_id, m.session_id, b.tool_name,
                                                        b.tool_input_json, m.key, m.timestamp))
                    elif b.kind == TOOL_RESULT and b.tool_use_id:
                        calls.append(normalize.tool_result(b.tool_use_id, m.session_id,
                                                           b.is_error, m.key, m.timestamp,
                                                           b.agent_id))
        batch.tool_calls.extend(convert.tool_call_to_pb(c) for c in calls)
        return batch

    async def Process(self, request_iterator, context: grpc.aio.ServicerContext):
        call = self._store.Write()
        loop = asyncio.get_running_loop()

        async def forward() -> None:
            async for batch in request_iterator:
                with telemetry.span_from(_tracer, "analysis.batch", batch.trace_context,
                                         batch_id=batch.batch_id):
                    await loop.run_in_executor(self._worker, self.analyse, batch)
                    batch.trace_context.clear()
                    telemetry.inject(batch.trace_context)
                await call.write(batch)
            await call.done_writing()

        forwarding = asyncio.create_task(forward())

        def stop_relay_if_failed(task: asyncio.Task) -> None:
            # Ingest went away mid-stream: end the store stream too; ingest will resend.
            if not task.cancelled() and task.exception() is not None:
                call.cancel()

        forwarding.add_done_callback(stop_relay_if_failed)
        completed = False
        try:
            async for ack in call:
                yield ack
            await forwarding
            completed = True
        except grpc.aio.AioRpcError as exc:
            log.warning("store stream ended: %s", exc.code())
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc.details()}")
        finally:
            forwarding.cancel()
            call.cancel()
            if not completed:
                # Unacknowledged batches will be resent: forget what they taught us.
                try:
                    self._worker.submit(self.threading.reset)
                except RuntimeError:  # shutting down: the state goes with the process
                    pass
