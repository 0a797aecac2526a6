"""Protobuf <-> the plain row dicts the store's domain code reads and writes.

The only module of the store that knows both sides (the servicer calls it). Rows use the
column names of `schema.py`; enumerations travel as their names ("user", "claude_code").
Building a row touches each field once and encodes the content blocks with orjson: this runs
for every message written, so it does nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from services.store.changefeed import LiveChange
from services.store.writer import WriteBatch, WriteResult
from threadline.convert import (
    BLOCK_FROM_PB,
    BLOCK_TO_PB,
    FORMAT_FROM_PB,
    FORMAT_TO_PB,
    ROLE_FROM_PB,
    ROLE_TO_PB,
)
from threadline.v1 import analysis_types_pb2 as apb
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2

_BLOCK_NAMES = {**BLOCK_FROM_PB, pb.BLOCK_KIND_UNSPECIFIED: "unspecified"}
_BLOCK_KINDS = {**BLOCK_TO_PB, "unspecified": pb.BLOCK_KIND_UNSPECIFIED}
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_creation_5m_tokens", "cache_creation_1h_tokens",
                 "cache_read_input_tokens", "reasoning_output_tokens")


def _block_dict(b: pb.ContentBlock) -> dict:
    """A content block as a plain dict holding only its non-default fields."""
    d: dict = {"kind": _BLOCK_NAMES.get(b.kind, "other")}
    if b.text:
        d["text"] = b.text
    if b.tool_use_id:
        d["tool_use_id"] = b.tool_use_id
    if b.tool_name:
        d["tool_name"] = b.tool_name
    if b.tool_input_json:
        # Kept as text, not parsed: it is only ever handed back as bytes.
        d["tool_input_json"] = b.tool_input_json.decode("utf-8", "replace")
    if b.is_error:
        d["is_error"] = True
    if b.HasField("image"):
        i = b.image
        d["image"] = {"media_type": i.media_type, "source_type": i.source_type,
                      "size_bytes": i.size_bytes, "sha256": i.sha256}
    if b.raw_type:
        d["raw_type"] = b.raw_type
    if b.agent_id:
        d["agent_id"] = b.agent_id
    if b.persisted_output_path:
        d["persisted_output_path"] = b.persisted_output_path
    if b.HasField("duration_seconds"):
        d["duration_seconds"] = b.duration_seconds
    return d


def message_row(m: pb.Message) -> dict:
    src = m.source
    row = {
        "seq": 0,  # assigned by the writer
        "key": m.key or f"{src.path}:{src.byte_offset}",
        "uuid": m.uuid, "parent_uuid": m.parent_uuid,
        "logical_parent_uuid": m.logical_parent_uuid, "session_id": m.session_id,
        "project_key": m.project_key, "agent_id": m.agent_id, "is_sidechain": m.is_sidechain,
        "type": m.type, "subtype": m.subtype, "role": ROLE_FROM_PB.get(m.role, ""),
        "timestamp": m.timestamp, "format": FORMAT_FROM_PB.get(m.format, ""), "model": m.model,
        "cwd": m.cwd, "git_branch": m.git_branch, "version": m.version,
        "request_id": m.request_id, "api_message_id": m.api_message_id,
        "stop_reason": m.stop_reason, "is_meta": m.is_meta, "text": m.text, "drift": m.drift,
        "thread_parent_uuid": m.thread_parent_uuid,
        "thread_parent_source": m.thread_parent_source,
        "thread_relation": m.thread_relation, "thread_confidence": m.thread_confidence,
        "content_json": orjson.dumps([_block_dict(b) for b in m.content]),
        "source_path": src.path, "source_byte_offset": src.byte_offset,
        "source_line_number": src.line_number, "source_byte_length": src.byte_length,
        "raw": m.raw,
    }
    if m.HasField("usage"):
        u = m.usage
        row.update(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                   cache_creation_input_tokens=u.cache_creation_input_tokens,
                   cache_creation_5m_tokens=u.cache_creation_5m_tokens,
                   cache_creation_1h_tokens=u.cache_creation_1h_tokens,
                   cache_read_input_tokens=u.cache_read_input_tokens,
                   service_tier=u.service_tier,
                   reasoning_output_tokens=u.reasoning_output_tokens)
    else:
        row.update(input_tokens=None, output_tokens=None, cache_creation_input_tokens=None,
                   cache_creation_5m_tokens=None, cache_creation_1h_tokens=None,
                   cache_read_input_tokens=None, service_tier=None,
                   reasoning_output_tokens=None)
    return row


def segment_row(g: apb.Segment) -> dict:
    return {"session_id": g.session_id, "idx": g.index, "start_key": g.start_key,
            "end_key": g.end_key, "first_timestamp": g.first_timestamp,
            "last_timestamp": g.last_timestamp, "title": g.title,
            "keywords_json": orjson.dumps(list(g.keywords)).decode(),
            "message_count": g.message_count, "prompt_count": g.prompt_count,
            "tool_call_count": g.tool_call_count, "boundary_reason": g.boundary_reason,
            "boundary_score": g.boundary_score, "coherence": g.coherence}


def turn_row(t: apb.TurnAnalysis) -> dict:
    return {"key": t.key, "session_id": t.session_id, "timestamp": t.timestamp,
            "intent": t.intent, "intent_confidence": t.intent_confidence,
            "intent_evidence": t.intent_evidence, "sentiment": t.sentiment, "urgency": t.urgency,
            "clarity": t.clarity, "complexity": t.complexity,
            "similarity_previous": t.similarity_previous, "word_count": t.word_count,
            "segment_index": t.segment_index, "excerpt": t.excerpt}


def relationship_row(r: apb.Relationship) -> dict:
    return {"source_key": r.source_key, "target_key": r.target_key, "kind": r.kind,
            "session_id": r.session_id, "confidence": r.confidence, "evidence": r.evidence}


_SUMMARY_FIELDS = [f.name for f in apb.SessionSummary.DESCRIPTOR.fields]


def summary_row(s: apb.SessionSummary) -> dict:
    return {name: getattr(s, name) for name in _SUMMARY_FIELDS}


def analysis_row(u: apb.AnalysisUpdate) -> dict:
    """One session's AnalysisUpdate as the rows `writer.write_analysis` stores."""
    return {
        "session_id": u.session_id, "project_key": u.summary.project_key or u.project_key,
        "segments": [segment_row(g) for g in u.segments if not g.merged],
        "merged": [g.index for g in u.segments if g.merged],
        "turns": [turn_row(t) for t in u.turns],
        "relationships": [relationship_row(r) for r in u.relationships],
        "summary": summary_row(u.summary) if u.HasField("summary") else None,
        "thread_changed": u.thread_changed,
        "resumed_from": u.resumed_from,
    }


def segment_pb(row: Mapping) -> apb.Segment:
    return apb.Segment(
        session_id=row["session_id"], index=row["idx"], start_key=row["start_key"],
        end_key=row["end_key"], first_timestamp=row["first_timestamp"],
        last_timestamp=row["last_timestamp"], title=row["title"],
        keywords=orjson.loads(row["keywords_json"]), message_count=row["message_count"],
        prompt_count=row["prompt_count"], tool_call_count=row["tool_call_count"],
        boundary_reason=row["boundary_reason"], boundary_score=row["boundary_score"],
        coherence=row["coherence"])


def turn_pb(row: Mapping) -> apb.TurnAnalysis:
    return apb.TurnAnalysis(**{k: row[k] for k in (
        "key", "session_id", "timestamp", "intent", "intent_confidence", "intent_evidence",
        "sentiment", "urgency", "clarity", "complexity", "similarity_previous", "word_count",
        "segment_index", "excerpt")})


def relationship_pb(row: Mapping) -> apb.Relationship:
    return apb.Relationship(**{k: row[k] for k in (
        "source_key", "target_key", "kind", "confidence", "evidence", "session_id")})


def summary_pb(row: Mapping) -> apb.SessionSummary:
    return apb.SessionSummary(**{name: row[name] for name in _SUMMARY_FIELDS})


def error_row(e: pb.ParseError) -> dict:
    s = e.source
    return {"seq": 0, "path": s.path, "byte_offset": s.byte_offset,
            "line_number": s.line_number, "byte_length": s.byte_length, "reason": e.reason,
            "detail": e.detail, "excerpt": e.excerpt, "project_key": e.project_key}


def tool_call_row(t: pb.ToolCall) -> dict:
    return {"tool_use_id": t.tool_use_id, "session_id": t.session_id, "name": t.name,
            "use_message_key": t.use_message_key, "result_message_key": t.result_message_key,
            "input_json": t.input_json, "is_error": t.is_error, "started_at": t.started_at,
            "finished_at": t.finished_at, "has_use": t.has_use, "has_result": t.has_result,
            "agent_id": t.agent_id}


def offset_row(o: pb.SourceOffset, reset: bool = False) -> dict:
    s = o.source
    return {"path": s.path, "identity": s.identity, "project_key": s.project_key,
            "format": FORMAT_FROM_PB.get(s.format, ""), "head_sha256": s.head_sha256,
            "head_length": s.head_length, "offset": o.offset, "line_count": o.line_count,
            "session_id": o.session_id, "tail_sha256": o.tail_sha256,
            "reset": reset}


# --- rows back to protobuf -------------------------------------------------------------------

def _block_pb(d: Mapping) -> pb.ContentBlock:
    b = pb.ContentBlock(kind=_BLOCK_KINDS.get(d.get("kind", ""), pb.BLOCK_KIND_OTHER),
                        text=d.get("text", ""), tool_use_id=d.get("tool_use_id", ""),
                        tool_name=d.get("tool_name", ""),
                        tool_input_json=d.get("tool_input_json", "").encode(),
                        is_error=d.get("is_error", False), raw_type=d.get("raw_type", ""),
                        agent_id=d.get("agent_id", ""),
                        persisted_output_path=d.get("persisted_output_path", ""),
                        duration_seconds=d.get("duration_seconds"))
    image = d.get("image")
    if image is not None:
        b.image.CopyFrom(pb.ImageRef(**image))
    return b


def message_pb(row: Mapping) -> pb.Message:
    """A stored message row as a Message; `raw` only when the row has it."""
    m = pb.Message(
        uuid=row["uuid"], parent_uuid=row["parent_uuid"], session_id=row["session_id"],
        type=row["type"], role=ROLE_TO_PB.get(row["role"], pb.ROLE_UNSPECIFIED),
        timestamp=row["timestamp"],
        content=[_block_pb(d) for d in orjson.loads(row["content_json"])],
        source=pb.SourcePosition(path=row["source_path"], byte_offset=row["source_byte_offset"],
                                 line_number=row["source_line_number"],
                                 byte_length=row["source_byte_length"]),
        key=row["key"], project_key=row["project_key"],
        format=FORMAT_TO_PB.get(row["format"], pb.SOURCE_FORMAT_UNSPECIFIED),
        subtype=row["subtype"], agent_id=row["agent_id"], is_sidechain=bool(row["is_sidechain"]),
        model=row["model"], logical_parent_uuid=row["logical_parent_uuid"], cwd=row["cwd"],
        git_branch=row["git_branch"], version=row["version"], request_id=row["request_id"],
        api_message_id=row["api_message_id"], stop_reason=row["stop_reason"],
        is_meta=bool(row["is_meta"]), text=row["text"], raw=row.get("raw") or b"",
        drift=row.get("drift") or "", thread_parent_uuid=row.get("thread_parent_uuid") or "",
        thread_parent_source=row.get("thread_parent_source") or "",
        thread_relation=row.get("thread_relation") or "",
        thread_confidence=row.get("thread_confidence") or 0.0,
    )
    if row["input_tokens"] is not None:
        m.usage.CopyFrom(pb.TokenUsage(service_tier=row["service_tier"] or "",
                                       **{f: row[f] or 0 for f in _USAGE_FIELDS}))
    return m


def error_pb(row: Mapping) -> pb.ParseError:
    return pb.ParseError(
        source=pb.SourcePosition(path=row["path"], byte_offset=row["byte_offset"],
                                 line_number=row["line_number"], byte_length=row["byte_length"]),
        reason=row["reason"], detail=row["detail"], excerpt=row["excerpt"],
        project_key=row["project_key"])


def offset_pb(row: Mapping) -> pb.SourceOffset:
    return pb.SourceOffset(
        source=pb.Source(path=row["path"], identity=row["identity"],
                         project_key=row["project_key"],
                         format=FORMAT_TO_PB.get(row["format"], pb.SOURCE_FORMAT_UNSPECIFIED),
                         head_sha256=row["head_sha256"], head_length=row["head_length"]),
        offset=row["offset"], line_count=row["line_count"], session_id=row["session_id"],
        tail_sha256=row["tail_sha256"])


def project_pb(row: Mapping) -> store_pb2.Project:
    return store_pb2.Project(key=row["key"], cwd=row["cwd"], session_count=row["session_count"],
                             message_count=row["message_count"],
                             first_timestamp=row["first_timestamp"] or "",
                             last_timestamp=row["last_timestamp"] or "",
                             name=row.get("name", ""), aliases=row.get("aliases", ()))


def session_pb(row: Mapping) -> store_pb2.Session:
    return store_pb2.Session(
        session_id=row["session_id"], project_key=row["project_key"], cwd=row["cwd"],
        git_branch=row["git_branch"], version=row["version"],
        message_count=row["message_count"], first_timestamp=row["first_timestamp"] or "",
        last_timestamp=row["last_timestamp"] or "",
        format=FORMAT_TO_PB.get(row["format"], pb.SOURCE_FORMAT_UNSPECIFIED),
        title=row.get("title", ""), project_name=row.get("project_name", ""))


_ANALYSIS_KINDS = {"thread_updated": pb.CHANGE_KIND_THREAD_UPDATED,
                   "analysis_updated": pb.CHANGE_KIND_ANALYSIS_UPDATED}


def change_pb(c: Mapping) -> pb.Change:
    """A change read back from the database (messages without their raw bytes).

    An analysis change read back carries the session's summary as it is now (what changed
    in that one batch is not kept), with `thread_changed` set for a thread change."""
    kind = _ANALYSIS_KINDS.get(c["kind"])
    if kind is not None:
        update = apb.AnalysisUpdate(session_id=c["session_id"],
                                    thread_changed=kind == pb.CHANGE_KIND_THREAD_UPDATED)
        if c.get("summary") is not None:
            update.summary.CopyFrom(summary_pb(c["summary"]))
        return pb.Change(sequence=c["seq"], kind=kind, project_key=c["project_key"],
                         session_id=c["session_id"], analysis=update)
    if c["message"] is not None:
        return pb.Change(sequence=c["seq"], kind=pb.CHANGE_KIND_MESSAGE,
                         project_key=c["project_key"], session_id=c["session_id"],
                         message=message_pb(c["message"]))
    return pb.Change(sequence=c["seq"], kind=pb.CHANGE_KIND_PARSE_ERROR,
                     project_key=c["project_key"], session_id=c["session_id"],
                     parse_error=error_pb(c["error"]))


_CHANGE_KINDS = {"message": pb.CHANGE_KIND_MESSAGE, "parse_error": pb.CHANGE_KIND_PARSE_ERROR,
                 **_ANALYSIS_KINDS}


def change_head_pb(c: Mapping) -> pb.Change:
    """A change without its payload, from a change-log row."""
    return pb.Change(sequence=c["seq"], kind=_CHANGE_KINDS[c["kind"]],
                     project_key=c["project_key"], session_id=c["session_id"])


def head_of(change: pb.Change) -> pb.Change:
    """`change` without its payload (nor its trace context)."""
    return pb.Change(sequence=change.sequence, kind=change.kind,
                     project_key=change.project_key, session_id=change.session_id)


# --- a Batch on its way in, and the live changes it produces ---------------------------------

def write_batch(batch: pb.Batch, trace_context: dict[str, str]) -> WriteBatch:
    """The rows of a Batch; the protobuf messages ride along to build live changes."""
    out = WriteBatch(batch.batch_id)
    message_pbs: list[pb.Message] = []
    error_pbs: list[pb.ParseError] = []
    for chunk in batch.chunks:
        for m in chunk.messages:
            out.messages.append(message_row(m))
            message_pbs.append(m)
        for e in chunk.errors:
            out.errors.append(error_row(e))
            error_pbs.append(e)
        if chunk.HasField("position"):
            out.offsets.append(offset_row(chunk.position, chunk.reset))
    out.tool_calls = [tool_call_row(t) for t in batch.tool_calls]
    out.analysis = [analysis_row(u) for u in batch.analysis]
    out.analysed_through = batch.analysed_through
    out.analysed_after = batch.analysed_after
    out.context = (message_pbs, error_pbs, trace_context, list(batch.analysis))
    return out


def live_changes(batch: WriteBatch, result: WriteResult,
                 payloads: bool = True) -> list[LiveChange]:
    """Change events for what a committed batch stored, raw bytes left out; without
    `payloads`, their heads only (sequence, kind and keys: see ChangeFeed.wants_payloads)."""
    message_pbs, error_pbs, trace_context, updates = batch.context
    if not payloads:
        return _live_heads(batch, result)
    out = []
    for i, seq in result.new_messages:
        m = message_pbs[i]
        m.ClearField("raw")  # the row already holds the bytes; don't copy them into the event
        m.key = batch.messages[i]["key"]  # as stored (and replayed), even when sent empty
        m.project_key = batch.messages[i]["project_key"]  # its session's, not its folder's
        out.append(LiveChange(seq, m.project_key, m.session_id, pb.Change(
            sequence=seq, kind=pb.CHANGE_KIND_MESSAGE, project_key=m.project_key,
            session_id=m.session_id, message=m, trace_context=trace_context)))
    if result.new_errors:
        for i, seq in result.new_errors:
            e = error_pbs[i]
            e.project_key = batch.errors[i]["project_key"]
            out.append(LiveChange(seq, e.project_key, "", pb.Change(
                sequence=seq, kind=pb.CHANGE_KIND_PARSE_ERROR, project_key=e.project_key,
                parse_error=e, trace_context=trace_context)))
    for i, seq, kind in result.new_analysis:
        u = updates[i]
        if u.resumed_from and not batch.analysis[i]["resumed_from"]:
            # The store refused the resumption (it would close a cycle): not told either.
            u = apb.AnalysisUpdate()
            u.CopyFrom(updates[i])
            u.resumed_from = ""
        u.project_key = batch.analysis[i]["project_key"]  # as stored (the session's)
        if u.HasField("summary"):
            u.summary.project_key = u.project_key
        if kind == "thread_updated" and u.HasField("summary"):
            # The thread event names what changed; the segments and turns ride on the other.
            u = apb.AnalysisUpdate(session_id=u.session_id, project_key=u.project_key,
                                   summary=u.summary, thread_changed=True,
                                   resumed_from=u.resumed_from)
        project = u.summary.project_key or u.project_key
        out.append(LiveChange(seq, project, u.session_id, pb.Change(
            sequence=seq, kind=_ANALYSIS_KINDS[kind], project_key=project,
            session_id=u.session_id, analysis=u, trace_context=trace_context)))
    if result.new_errors or result.new_analysis:
        out.sort(key=lambda c: c.seq)
    return out


def _live_heads(batch: WriteBatch, result: WriteResult) -> list[LiveChange]:
    """The changes of a commit with no payload, but for the last one's head (heads-only
    subscribers take only that: see ChangesRequest.heads_only)."""
    message_pbs, _error_pbs, _trace_context, updates = batch.context
    out = [LiveChange(seq, batch.messages[i]["project_key"], message_pbs[i].session_id, None)
           for i, seq in result.new_messages]
    kind = pb.CHANGE_KIND_MESSAGE
    if result.new_errors or result.new_analysis:
        kinds = {seq: pb.CHANGE_KIND_MESSAGE for _, seq in result.new_messages}
        for i, seq in result.new_errors:
            out.append(LiveChange(seq, batch.errors[i]["project_key"], "", None))
            kinds[seq] = pb.CHANGE_KIND_PARSE_ERROR
        for i, seq, name in result.new_analysis:
            u = updates[i]
            out.append(LiveChange(seq, batch.analysis[i]["project_key"], u.session_id, None))
            kinds[seq] = _ANALYSIS_KINDS[name]
        out.sort(key=lambda c: c.seq)
        kind = kinds[out[-1].seq] if out else kind
    if out:
        last = out[-1]
        out[-1] = LiveChange(last.seq, last.project_key, last.session_id, pb.Change(
            sequence=last.seq, kind=kind, project_key=last.project_key,
            session_id=last.session_id))
    return out


def ack_pb(result: WriteResult) -> pb.BatchAck:
    return pb.BatchAck(batch_id=result.batch_id, offsets=[offset_pb(o) for o in result.offsets],
                       last_sequence=result.last_sequence,
                       new_messages=len(result.new_messages))
