"""Mapping between the domain objects (`threadline.domain.records`) and the protobuf contract.

The only place that knows both sides; servicers and clients call these functions.
"""

from __future__ import annotations

from threadline.domain import records as r
from threadline.v1 import common_pb2 as pb

FORMAT_TO_PB = {
    r.CLAUDE_CODE: pb.SOURCE_FORMAT_CLAUDE_CODE,
    r.CODEX: pb.SOURCE_FORMAT_CODEX,
    r.GEMINI: pb.SOURCE_FORMAT_GEMINI,
    r.GENERIC: pb.SOURCE_FORMAT_GENERIC,
}
FORMAT_FROM_PB = {v: k for k, v in FORMAT_TO_PB.items()}
ROLE_TO_PB = {
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "system": pb.ROLE_SYSTEM,
    "tool": pb.ROLE_TOOL,
}
ROLE_FROM_PB = {v: k for k, v in ROLE_TO_PB.items()}
BLOCK_TO_PB = {
    "text": pb.BLOCK_KIND_TEXT,
    "thinking": pb.BLOCK_KIND_THINKING,
    "tool_use": pb.BLOCK_KIND_TOOL_USE,
    "tool_result": pb.BLOCK_KIND_TOOL_RESULT,
    "image": pb.BLOCK_KIND_IMAGE,
    "server_tool_use": pb.BLOCK_KIND_SERVER_TOOL_USE,
    "other": pb.BLOCK_KIND_OTHER,
}
BLOCK_FROM_PB = {v: k for k, v in BLOCK_TO_PB.items()}


def position_to_pb(p: r.Position) -> pb.SourcePosition:
    return pb.SourcePosition(path=p.path, byte_offset=p.byte_offset, line_number=p.line_number,
                             byte_length=p.byte_length)


def position_from_pb(p: pb.SourcePosition) -> r.Position:
    return r.Position(p.path, p.byte_offset, p.line_number, p.byte_length)


def _block_to_pb(b: r.Block) -> pb.ContentBlock:
    out = pb.ContentBlock(kind=BLOCK_TO_PB.get(b.kind, pb.BLOCK_KIND_OTHER), text=b.text,
                          tool_use_id=b.tool_use_id, tool_name=b.tool_name,
                          tool_input_json=b.tool_input_json, is_error=b.is_error,
                          raw_type=b.raw_type, agent_id=b.agent_id,
                          persisted_output_path=b.persisted_output_path,
                          duration_seconds=b.duration_seconds)
    if b.image is not None:
        out.image.CopyFrom(pb.ImageRef(media_type=b.image.media_type,
                                       source_type=b.image.source_type,
                                       size_bytes=b.image.size_bytes, sha256=b.image.sha256))
    return out


def _block_from_pb(b: pb.ContentBlock) -> r.Block:
    image = None
    if b.HasField("image"):
        i = b.image
        image = r.Image(i.media_type, i.source_type, i.size_bytes, i.sha256)
    return r.Block(BLOCK_FROM_PB.get(b.kind, "other"), b.text, b.tool_use_id, b.tool_name,
                   b.tool_input_json, b.is_error, image, b.raw_type, b.agent_id,
                   b.persisted_output_path,
                   b.duration_seconds if b.HasField("duration_seconds") else None)


def message_to_pb(m: r.Record, include_raw: bool = True) -> pb.Message:
    out = pb.Message(
        uuid=m.uuid, parent_uuid=m.parent_uuid, session_id=m.session_id, type=m.type,
        role=ROLE_TO_PB.get(m.role, pb.ROLE_UNSPECIFIED), timestamp=m.timestamp,
        content=[_block_to_pb(b) for b in m.content], source=position_to_pb(m.source),
        key=m.key, project_key=m.project_key,
        format=FORMAT_TO_PB.get(m.format, pb.SOURCE_FORMAT_UNSPECIFIED), subtype=m.subtype,
        agent_id=m.agent_id, is_sidechain=m.is_sidechain, model=m.model,
        logical_parent_uuid=m.logical_parent_uuid, cwd=m.cwd, git_branch=m.git_branch,
        version=m.version, request_id=m.request_id, api_message_id=m.api_message_id,
        stop_reason=m.stop_reason, is_meta=m.is_meta, raw=m.raw if include_raw else b"",
        text=m.text, drift=m.drift,
    )
    if m.usage is not None:
        u = m.usage
        out.usage.CopyFrom(pb.TokenUsage(
            input_tokens=u.input_tokens, output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens,
            cache_creation_5m_tokens=u.cache_creation_5m_tokens,
            cache_creation_1h_tokens=u.cache_creation_1h_tokens,
            cache_read_input_tokens=u.cache_read_input_tokens, service_tier=u.service_tier,
            reasoning_output_tokens=u.reasoning_output_tokens))
    return out


def message_from_pb(m: pb.Message) -> r.Record:
    usage = None
    if m.HasField("usage"):
        u = m.usage
        usage = r.Usage(u.input_tokens, u.output_tokens, u.cache_creation_input_tokens,
                        u.cache_creation_5m_tokens, u.cache_creation_1h_tokens,
                        u.cache_read_input_tokens, u.service_tier, u.reasoning_output_tokens)
    return r.Record(
        type=m.type, source=position_from_pb(m.source), raw=m.raw,
        format=FORMAT_FROM_PB.get(m.format, r.CLAUDE_CODE), uuid=m.uuid,
        parent_uuid=m.parent_uuid, logical_parent_uuid=m.logical_parent_uuid,
        session_id=m.session_id, agent_id=m.agent_id, is_sidechain=m.is_sidechain,
        subtype=m.subtype, role=ROLE_FROM_PB.get(m.role, ""), timestamp=m.timestamp, cwd=m.cwd,
        git_branch=m.git_branch, version=m.version, model=m.model,
        content=[_block_from_pb(b) for b in m.content], usage=usage, request_id=m.request_id,
        api_message_id=m.api_message_id, stop_reason=m.stop_reason, is_meta=m.is_meta,
        text=m.text, key=m.key, project_key=m.project_key, drift=m.drift,
    )


def error_to_pb(e: r.LineError) -> pb.ParseError:
    return pb.ParseError(source=position_to_pb(e.source), reason=e.reason, detail=e.detail,
                         excerpt=e.excerpt, project_key=e.project_key)


def error_from_pb(e: pb.ParseError) -> r.LineError:
    return r.LineError(position_from_pb(e.source), e.reason, e.detail, e.excerpt, e.project_key)


def tool_call_to_pb(t: r.ToolCall) -> pb.ToolCall:
    return pb.ToolCall(tool_use_id=t.tool_use_id, session_id=t.session_id, name=t.name,
                       use_message_key=t.use_message_key,
                       result_message_key=t.result_message_key, input_json=t.input_json,
                       is_error=t.is_error, started_at=t.started_at, finished_at=t.finished_at,
                       has_use=t.has_use, has_result=t.has_result, agent_id=t.agent_id)


def tool_call_from_pb(t: pb.ToolCall) -> r.ToolCall:
    return r.ToolCall(t.tool_use_id, t.session_id, t.name, t.use_message_key,
                      t.result_message_key, t.input_json, t.is_error, t.started_at,
                      t.finished_at, t.has_use, t.has_result, t.agent_id)
