"""Plain chat lines: what is left when a line is no Claude Code, Codex or Gemini record.

- `{role, content, timestamp?, model?, id|uuid?, session_id|sessionId?}` (the chat-API shape);
- `{type: "user"|"assistant", content}` without a Claude envelope (no `message` object);
- legacy content-only lines `{content}` (role "");
- OpenAI tool traffic: a `{role: "tool", tool_call_id, content}` line is a tool_result; an
  assistant line's `tool_calls[{id, function{name, arguments}}]` are tool_use blocks.

Content is a string or a list of blocks: Anthropic blocks (read as Claude's are) and OpenAI
parts (`text`, `image_url`). When `content` is missing, a string `text` or `message` is the
content. `Record.type` is the line's `type`, else its role, else "message".

Drift: a `type` that is neither a role nor "message" -> "unknown_type"; a line with none of
role, content, text, message or tool fields is no chat line: type "unknown" (or its `type`),
drift "unknown_type", kept with its raw bytes all the same.
"""

from __future__ import annotations

from services.ingest.formats import claude
from services.ingest.formats.fields import (
    ROLES,
    image_from_url,
    json_string_bytes,
    text,
    text_block,
)
from threadline.records import GENERIC, Block, Position, Record

TYPES = ROLES | {"message"}
# Keys that make a line without a known `type` a chat line.
CHAT_KEYS = ("role", "content", "tool_call_id", "tool_calls")


def is_chat(obj: dict) -> bool:
    return any(name in obj for name in CHAT_KEYS)


def parse(obj: dict, raw: bytes, position: Position) -> Record:
    get = obj.get
    kind = get("type")
    role = get("role")
    if not (isinstance(role, str) and role in ROLES):
        role = kind if isinstance(kind, str) and kind in ROLES else ""
    if is_chat(obj) or "text" in obj or "message" in obj:
        rec = Record(text(kind) or role or "message", position, raw, GENERIC)
        if kind is not None and rec.type not in TYPES:
            rec.drift = "unknown_type"
    else:
        rec = Record(text(kind) or "unknown", position, raw, GENERIC, drift="unknown_type")
    rec.role = role
    rec.uuid = text(get("uuid") or get("id"))
    rec.session_id = text(get("session_id") or get("sessionId"))
    rec.timestamp = text(get("timestamp"))
    rec.model = text(get("model"))
    content = get("content")
    if content is None:
        for name in ("text", "message"):
            if isinstance(get(name), str):
                content = get(name)
                break
    if get("tool_call_id"):
        rec.role = "tool"
        body, image, drift = claude.result_content(content) if not isinstance(content, str) \
            else (content, None, "")
        rec.content = [Block("tool_result", text=body, tool_use_id=text(get("tool_call_id")),
                             image=image, raw_type="tool_result")]
        rec.drift = rec.drift or drift
    else:
        rec.content, drift = _content(content)
        rec.drift = rec.drift or drift
    calls = get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                function = call.get("function")
                function = function if isinstance(function, dict) else {}
                rec.content.append(Block(
                    "tool_use", tool_use_id=text(call.get("id")),
                    tool_name=text(function.get("name")),
                    tool_input_json=json_string_bytes(function.get("arguments", "{}")),
                    raw_type=text(call.get("type")) or "tool_call"))
    rec.text = "\n".join(b.text for b in rec.content if b.kind == "text" and b.text)
    return rec


def _content(content: object) -> tuple[list[Block], str]:
    if isinstance(content, str):
        return ([text_block(content)] if content else []), ""
    if not isinstance(content, list):
        return [], ""
    out: list[Block] = []
    drift = ""
    for item in content:
        if isinstance(item, dict) and item.get("type") == "image_url":
            out.append(Block("image", image=image_from_url(item.get("image_url")),
                             raw_type="image_url"))
            continue
        blocks, _, inner = claude.blocks([item])
        out.extend(blocks)
        drift = drift or inner
    return out, drift
