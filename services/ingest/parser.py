"""Turn one transcript line into a `Record` or a `LineError`. Never raises on bad input.

Formats are recognised per line (see docs/transcript-format.md in the shared notes):
Claude Code records (envelope + `message`), Codex CLI rollout lines (`{timestamp, type,
payload}`), and generic chat lines (`role`/`content`). A line of a type this parser does not
model is still a record: its `type` and raw bytes are kept, so nothing is lost and a later
parser can read it again.
"""

from __future__ import annotations

import hashlib

import orjson

from threadline.records import (
    CODEX,
    GENERIC,
    Block,
    Image,
    LineError,
    Position,
    Record,
    Usage,
)

EXCERPT_BYTES = 200
CODEX_TYPES = frozenset(
    {"session_meta", "response_item", "event_msg", "turn_context", "compacted"}
)
_ROLES = frozenset({"user", "assistant", "system", "tool"})


def _str(value: object) -> str:
    """A field that should be a string; anything else is kept as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return orjson.dumps(value).decode()


_INT64 = (-(2**63), 2**63 - 1)


def _int(value: object) -> int:
    """A count as a 64-bit integer; anything else (or out of range) counts as 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return 0


def _json(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return b"null"


def _image(source: object) -> Image:
    if not isinstance(source, dict):
        return Image()
    data = source.get("data")
    size = 0
    digest = ""
    if isinstance(data, str):
        # Decoded size from the base64 length; the payload itself stays only in the raw line.
        size = len(data) * 3 // 4 - data[-2:].count("=")
        digest = hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
    return Image(_str(source.get("media_type")), _str(source.get("type")), size, digest)


def _text_of(content: object) -> str:
    """Plain text of a tool_result's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            _str(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _blocks(content: object) -> list[Block]:
    if isinstance(content, str):
        return [Block("text", text=content, raw_type="text")] if content else []
    if not isinstance(content, list):
        return []
    blocks = []
    for item in content:
        if isinstance(item, str):
            blocks.append(Block("text", text=item, raw_type="text"))
            continue
        if not isinstance(item, dict):
            continue
        kind = _str(item.get("type"))
        if kind in ("text", "input_text", "output_text"):
            blocks.append(Block("text", text=_str(item.get("text")), raw_type=kind))
        elif kind == "thinking":
            blocks.append(Block("thinking", text=_str(item.get("thinking")), raw_type=kind))
        elif kind in ("tool_use", "server_tool_use"):
            blocks.append(Block(kind, tool_use_id=_str(item.get("id")),
                                tool_name=_str(item.get("name")),
                                tool_input_json=_json(item.get("input")), raw_type=kind))
        elif kind == "tool_result":
            blocks.append(Block("tool_result", text=_text_of(item.get("content")),
                                tool_use_id=_str(item.get("tool_use_id")),
                                is_error=item.get("is_error") is True, raw_type=kind))
        elif kind in ("image", "input_image"):
            blocks.append(Block("image", image=_image(item.get("source")), raw_type=kind))
        else:
            blocks.append(Block("other", raw_type=kind))
    return blocks


def _usage(usage: object) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    creation = usage.get("cache_creation")
    creation = creation if isinstance(creation, dict) else {}
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_creation_input_tokens=_int(usage.get("cache_creation_input_tokens")),
        cache_creation_5m_tokens=_int(creation.get("ephemeral_5m_input_tokens")),
        cache_creation_1h_tokens=_int(creation.get("ephemeral_1h_input_tokens")),
        cache_read_input_tokens=_int(usage.get("cache_read_input_tokens")),
        service_tier=_str(usage.get("service_tier")),
    )


def _plain_text(blocks: list[Block]) -> str:
    return "\n".join(b.text for b in blocks if b.kind == "text" and b.text)


def _claude(obj: dict, rec: Record) -> None:
    rec.uuid = _str(obj.get("uuid"))
    rec.parent_uuid = _str(obj.get("parentUuid"))
    rec.logical_parent_uuid = _str(obj.get("logicalParentUuid"))
    rec.session_id = _str(obj.get("sessionId"))
    rec.agent_id = _str(obj.get("agentId"))
    rec.is_sidechain = obj.get("isSidechain") is True
    rec.subtype = _str(obj.get("subtype"))
    rec.timestamp = _str(obj.get("timestamp"))
    rec.cwd = _str(obj.get("cwd"))
    rec.git_branch = _str(obj.get("gitBranch"))
    rec.version = _str(obj.get("version"))
    rec.request_id = _str(obj.get("requestId"))
    rec.is_meta = obj.get("isMeta") is True
    message = obj.get("message")
    if isinstance(message, dict):
        role = _str(message.get("role"))
        rec.role = role if role in _ROLES else ""
        rec.model = _str(message.get("model"))
        rec.api_message_id = _str(message.get("id"))
        rec.stop_reason = _str(message.get("stop_reason"))
        rec.content = _blocks(message.get("content"))
        rec.usage = _usage(message.get("usage"))
    elif rec.type == "system":
        rec.role = "system"
        rec.content = _blocks(obj.get("content"))
    elif rec.type == "summary":
        rec.content = _blocks(obj.get("summary"))
    rec.text = _plain_text(rec.content)


def _codex(obj: dict, rec: Record) -> None:
    rec.format = CODEX
    rec.timestamp = _str(obj.get("timestamp"))
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        return
    rec.subtype = _str(payload.get("type"))
    if rec.type == "session_meta":
        rec.session_id = _str(payload.get("id"))
        rec.cwd = _str(payload.get("cwd"))
        rec.version = _str(payload.get("cli_version"))
        git = payload.get("git")
        if isinstance(git, dict):
            rec.git_branch = _str(git.get("branch"))
    elif rec.type == "turn_context":
        rec.cwd = _str(payload.get("cwd"))
        rec.model = _str(payload.get("model"))
    elif rec.type == "response_item":
        role = _str(payload.get("role"))
        rec.role = role if role in _ROLES else ("assistant" if rec.subtype else "")
        if rec.subtype == "message":
            rec.content = _blocks(payload.get("content"))
        elif rec.subtype in ("function_call", "custom_tool_call"):
            arguments = payload.get("arguments", payload.get("input"))
            rec.content = [Block("tool_use", tool_use_id=_str(payload.get("call_id")),
                                 tool_name=_str(payload.get("name")),
                                 tool_input_json=arguments.encode("utf-8", "surrogatepass")
                                 if isinstance(arguments, str) else _json(arguments),
                                 raw_type=rec.subtype)]
        elif rec.subtype in ("function_call_output", "custom_tool_call_output"):
            rec.role = "tool"
            output = payload.get("output")
            rec.content = [Block("tool_result", text=_str(output),
                                 tool_use_id=_str(payload.get("call_id")), raw_type=rec.subtype)]
    rec.text = _plain_text(rec.content)


def _generic(obj: dict, rec: Record) -> None:
    rec.format = GENERIC
    role = _str(obj.get("role"))
    rec.role = role if role in _ROLES else ""
    rec.uuid = _str(obj.get("uuid") or obj.get("id"))
    rec.session_id = _str(obj.get("session_id") or obj.get("sessionId"))
    rec.timestamp = _str(obj.get("timestamp"))
    rec.model = _str(obj.get("model"))
    rec.content = _blocks(obj.get("content"))
    if obj.get("tool_call_id"):
        rec.role = "tool"
        rec.content = [Block("tool_result", text=_text_of(obj.get("content")),
                             tool_use_id=_str(obj.get("tool_call_id")), raw_type="tool_result")]
    rec.text = _plain_text(rec.content)


def parse_line(raw: bytes, position: Position) -> Record | LineError:
    """Parse one line (without its newline)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error(raw, position, _decode_reason(raw, exc), str(exc))
    except RecursionError as exc:  # orjson refuses very deep nesting; be safe regardless.
        return _error(raw, position, "too_deep", str(exc))
    if not isinstance(obj, dict):
        return _error(raw, position, "not_an_object", f"top-level JSON {type(obj).__name__}")
    kind = obj.get("type")
    rec = Record(type=_str(kind), source=position, raw=raw)
    try:
        if isinstance(kind, str) and kind in CODEX_TYPES and "payload" in obj:
            _codex(obj, rec)
        elif isinstance(kind, str) and kind:
            _claude(obj, rec)
        elif "role" in obj or "content" in obj:
            rec.type = _str(obj.get("role")) or "message"
            _generic(obj, rec)
        else:
            rec.type = "unknown"
    except (RecursionError, ValueError, TypeError) as exc:
        return _error(raw, position, "unreadable_fields", repr(exc))
    return rec


def _decode_reason(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    if "recursion" in str(exc).lower():
        return "too_deep"
    return "invalid_json"


def _error(raw: bytes, position: Position, reason: str, detail: str) -> LineError:
    return LineError(position, reason, detail[:500], bytes(raw[:EXCERPT_BYTES]))


def truncated_tail(raw: bytes, position: Position) -> LineError:
    """The unterminated end of a file that will not grow any more (a copy made mid-write)."""
    return _error(raw, position, "truncated_tail", "last line has no newline and is not valid JSON")


__all__ = ["parse_line", "truncated_tail"]
