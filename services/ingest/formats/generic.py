"""Plain chat lines: what is left when a line is no Claude Code, Codex or Gemini record.

- `{role, content, timestamp?, model?, id|uuid?, session_id|sessionId?}` (the chat-API shape);
- `{type: "user"|"assistant", content}` without a Claude envelope (no `message` object);
- legacy content-only lines `{content}` (role "");
- OpenAI tool traffic: a `{role: "tool", tool_call_id, content}` line is a tool_result; an
  assistant line's `tool_calls[{id, function{name, arguments}}]` are tool_use blocks.

Content is a string or a list of blocks: Anthropic blocks (read as Claude's are) and OpenAI
parts (`text`, `image_url`). When `content` is missing, a string `text` or `message` is the
content. `Record.type` is the line's `type`, else its role, else "message".

Storage key: only a `uuid` field, or an `id` that is globally unique by its look (a UUID, or
an API message id such as `chatcmpl-...`/`msg_...`, at least `GLOBAL_ID_LENGTH` characters),
becomes `Record.uuid`. Any other `id` (1, 2, 3... numbered per file) is kept as
`api_message_id` only, and the key falls back to the line's hash: such ids repeat across
files, and the store keeps one record per uuid.

A conversation line `{messages: [{role, content, ...}, ...], ...}` (OpenAI chat and
fine-tuning files) that is no Gemini chat becomes one record per message, as a Gemini
document does: each message's `raw` is its own JSON (`orjson.dumps`), all with the line's
position, and the line's `session_id`/`sessionId` as their session. A message repeated
verbatim within one line gets one trailing space per earlier copy in its `raw` (the same
JSON, other bytes): the storage key hashes the raw bytes, and a repeat is a message of its
own. An empty `messages` list is one record of the whole line, type "message".

Drift: a `type` that is neither a role nor "message" -> "unknown_type"; a line with none of
role, content, text, message or tool fields is no chat line: type "unknown" (or its `type`),
drift "unknown_type", kept with its raw bytes all the same. So is a `messages` item that is
not an object (type: its JSON type's name).
"""

from __future__ import annotations

import re

from services.ingest.formats import claude
from services.ingest.formats.fields import (
    ROLES,
    image_from_url,
    json_string_bytes,
    json_text,
    text,
    text_block,
)
from threadline.domain.records import GENERIC, Block, Position, Record

TYPES = ROLES | {"message"}
# Keys that make a line without a known `type` a chat line.
CHAT_KEYS = ("role", "content", "tool_call_id", "tool_calls")
GLOBAL_ID_LENGTH = 16
# Prefixes of provider message ids that are unique beyond one file (OpenAI chat completions
# and responses, Anthropic messages).
GLOBAL_ID_PREFIXES = ("chatcmpl-", "msg_", "resp_")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}")


def is_chat(obj: dict) -> bool:
    return any(name in obj for name in CHAT_KEYS)


def is_conversation(obj: dict) -> bool:
    """A line holding a whole chat as a `messages` list (and no message of its own)."""
    return isinstance(obj.get("messages"), list) and not is_chat(obj)


def is_global_id(value: object) -> bool:
    """Whether an `id` is unique beyond its file (see the module docstring)."""
    return (isinstance(value, str) and len(value) >= GLOBAL_ID_LENGTH
            and (_UUID.fullmatch(value) is not None or value.startswith(GLOBAL_ID_PREFIXES)))


def parse(obj: dict, raw: bytes, position: Position) -> Record | list[Record]:
    """A chat line, or a conversation line as one record per message."""
    if is_conversation(obj):
        return conversation(obj, raw, position)
    return message(obj, raw, position)


def conversation(obj: dict, raw: bytes, position: Position) -> list[Record]:
    session = text(obj.get("session_id") or obj.get("sessionId"))
    if not obj["messages"]:
        rec = Record(text(obj.get("type")) or "message", position, raw, GENERIC)
        rec.drift = "" if rec.type in TYPES else "unknown_type"
        rec.session_id = session
        return [rec]
    out = []
    seen: dict[bytes, int] = {}
    for item in obj["messages"]:
        body = json_text(item)
        copies = seen.get(body, 0)
        seen[body] = copies + 1
        own = body + b" " * copies
        if isinstance(item, dict):
            rec = message(item, own, position)
        else:
            rec = Record(type(item).__name__, position, own, GENERIC, drift="unknown_type")
        rec.session_id = rec.session_id or session
        out.append(rec)
    return out


def message(obj: dict, raw: bytes, position: Position) -> Record:
    """One chat line (or one message of a conversation line)."""
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
    ident = get("id")
    if ident is not None:
        rec.api_message_id = text(ident)
    rec.uuid = text(get("uuid")) or (ident if is_global_id(ident) else "")
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
