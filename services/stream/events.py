"""One change as the stream service carries it, and its JSON form for WebSocket clients.

A change is encoded to JSON once, on first use, and the bytes are shared by every client:
each frame is `head + subscription id + tail`, so only the subscription id differs. The frame
for each subscription id is built once too: ids count from 1 on every connection, so with
hundreds of clients holding one subscription each, they all send the very same bytes. Encoding
never raises: tool input that orjson reads but cannot write back (nested deeper than it
allows) is sent as its text instead, so one odd change cannot stop delivery. The
mapping from protobuf is written by hand because it is several times faster than json_format
and lets the JSON use plain names ("user", "text") instead of enum constants.
"""

from __future__ import annotations

import orjson
from google.protobuf import json_format

from threadline.convert import BLOCK_FROM_PB, FORMAT_FROM_PB, ROLE_FROM_PB
from threadline.v1 import common_pb2 as pb


class Event:
    """A committed change: the protobuf for gRPC subscribers, JSON bytes for WebSockets."""

    __slots__ = ("sequence", "project", "session", "change", "_head", "_tail", "_frames")

    def __init__(self, change: pb.Change):
        self.sequence = change.sequence
        self.project = change.project_key
        self.session = change.session_id
        self.change = change
        self._head: bytes | None = None
        self._tail = b""
        self._frames: dict[int, bytes] = {}

    def size(self) -> int:
        """Bytes of the encoded change (shared by every frame; excludes the subscription id)."""
        if self._head is None:
            self._head, self._tail = _encode(self.change)
        return len(self._head) + len(self._tail)

    def frame(self, subscription: int) -> bytes:
        """The WebSocket frame of this change for one subscription."""
        frame = self._frames.get(subscription)
        if frame is None:
            if self._head is None:
                self._head, self._tail = _encode(self.change)
            frame = self._frames[subscription] = (self._head + str(subscription).encode()
                                                  + self._tail)
        return frame


_ANALYSIS_TYPES = {pb.CHANGE_KIND_THREAD_UPDATED: "thread_updated",
                   pb.CHANGE_KIND_ANALYSIS_UPDATED: "analysis_updated"}


def _encode(change: pb.Change) -> tuple[bytes, bytes]:
    if change.kind in _ANALYSIS_TYPES:
        # Few and small (one per session per batch): the generic mapping is fast enough.
        kind, field = _ANALYSIS_TYPES[change.kind], b"analysis"
        body = orjson.dumps(json_format.MessageToDict(
            change.analysis, preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True))
    elif change.kind == pb.CHANGE_KIND_PARSE_ERROR or change.WhichOneof("payload") == "parse_error":
        kind, field = "parse_error", b"error"
        body = orjson.dumps(parse_error_dict(change.parse_error))
    else:
        kind, field = "message", b"message"
        try:
            body = orjson.dumps(message_dict(change.message))
        except orjson.JSONEncodeError:  # e.g. tool input nested deeper than orjson writes
            body = orjson.dumps(message_dict(change.message, parse_input=False))
    head = orjson.dumps({"type": kind, "sequence": change.sequence,
                         "project": change.project_key, "session": change.session_id})
    return head[:-1] + b',"subscription":', b',"' + field + b'":' + body + b"}"


def _source(s: pb.SourcePosition) -> dict:
    return {"path": s.path, "byte_offset": s.byte_offset, "line_number": s.line_number,
            "byte_length": s.byte_length}


def _json_value(data: bytes) -> object:
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Never forward bytes that would break the client's JSON: keep them as text.
        return data.decode("utf-8", "replace")


def _block(b: pb.ContentBlock, parse_input: bool) -> dict:
    out: dict = {"kind": BLOCK_FROM_PB.get(b.kind, "other"), "text": b.text}
    if b.raw_type:
        out["raw_type"] = b.raw_type
    if b.tool_use_id:
        out["tool_use_id"] = b.tool_use_id
    if b.tool_name:
        out["tool_name"] = b.tool_name
    if b.tool_input_json:
        out["input"] = (_json_value(b.tool_input_json) if parse_input
                        else b.tool_input_json.decode("utf-8", "replace"))
    if b.is_error:
        out["is_error"] = True
    if b.agent_id:
        out["agent_id"] = b.agent_id
    if b.HasField("duration_seconds"):
        out["duration_seconds"] = b.duration_seconds
    if b.HasField("image"):
        i = b.image
        out["image"] = {"media_type": i.media_type, "source_type": i.source_type,
                        "size_bytes": i.size_bytes, "sha256": i.sha256}
    return out


def message_dict(m: pb.Message, parse_input: bool = True) -> dict:
    usage = None
    if m.HasField("usage"):
        u = m.usage
        usage = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                 "cache_creation_input_tokens": u.cache_creation_input_tokens,
                 "cache_creation_5m_tokens": u.cache_creation_5m_tokens,
                 "cache_creation_1h_tokens": u.cache_creation_1h_tokens,
                 "cache_read_input_tokens": u.cache_read_input_tokens,
                 "service_tier": u.service_tier}
    return {
        "uuid": m.uuid, "parent_uuid": m.parent_uuid,
        "logical_parent_uuid": m.logical_parent_uuid, "session_id": m.session_id,
        "project_key": m.project_key, "key": m.key, "type": m.type, "subtype": m.subtype,
        "role": ROLE_FROM_PB.get(m.role, ""), "timestamp": m.timestamp, "text": m.text,
        "model": m.model, "agent_id": m.agent_id, "is_sidechain": m.is_sidechain,
        "is_meta": m.is_meta, "format": FORMAT_FROM_PB.get(m.format, ""), "cwd": m.cwd,
        "git_branch": m.git_branch, "version": m.version, "request_id": m.request_id,
        "api_message_id": m.api_message_id, "stop_reason": m.stop_reason,
        "content": [_block(b, parse_input) for b in m.content], "usage": usage,
        "source": _source(m.source),
        "thread_parent_uuid": m.thread_parent_uuid,
        "thread_parent_source": m.thread_parent_source,
        "thread_relation": m.thread_relation, "thread_confidence": m.thread_confidence,
    }


def parse_error_dict(e: pb.ParseError) -> dict:
    s = e.source
    return {"path": s.path, "line_number": s.line_number, "byte_offset": s.byte_offset,
            "byte_length": s.byte_length, "reason": e.reason, "detail": e.detail,
            "excerpt": e.excerpt.decode("utf-8", "replace"), "project_key": e.project_key}
