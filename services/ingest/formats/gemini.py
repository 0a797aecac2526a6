"""Gemini CLI chats: `~/.gemini/tmp/<project hash>/chats/`.

Two layouts:

- Legacy: one JSON document per session, `session-<time>-<id8>.json` =
  `{sessionId, projectHash, startTime, lastUpdated, messages[], summary?}`, rewritten whole on
  every change (often pretty-printed over many lines; ingest reads such a file as one
  document). `document()` returns a "metadata" record (its `raw` is the document's JSON
  without `messages` and `lastUpdated`), then one record per message, whose `raw` is that
  message's own JSON (`orjson.dumps`), all with the document's source position: a rewritten
  file gives unchanged messages (and unchanged metadata) the same bytes and the same storage
  key, and an empty chat is still one record.
- JSONL (gemini-cli 2026-04 on): a metadata line `{sessionId, projectHash, startTime, ...}`
  (record type "metadata"), then message records; the same message `id` may be appended
  again as it changes (the last one wins), `{"$set": {...}}` patches the metadata (record
  type "$set"; a `sessionId` in it switches the session), `{"$rewindTo": "<id>"}` drops the
  messages from that id on (record type "$rewindTo", the id is its text). Subagent chats are
  `chats/<parent sessionId>/<sessionId>.jsonl`.

A message `{id, timestamp, type, content, displayContent?, toolCalls?, thoughts?, tokens?,
model?}` becomes one record: `type` as written (user, gemini, info, error, warning), role
user / assistant (gemini) / system (info, error, warning), `api_message_id` = the message id
and `uuid` = "" (so the storage key is the line's hash and every appended version is kept;
accounting takes the last version per session and id). Blocks: thinking (each thought,
"subject: description"), text (content), then per tool call a tool_use (`id`, `name`, `args`)
and, once it has a result or a final status, a tool_result (the function response's output
or error, else `resultDisplay`; `is_error` when `status` is "error"; `agent_id` = the call's
`agentId`).

Usage from `tokens {input, output, cached, thoughts, tool, total}`, as ccusage's Gemini
adapter reads it: Gemini's input count includes the cached part, so when `total` equals
input + output + thoughts + tool (cached inside input), `input_tokens` = input - cached,
otherwise input as written; plus `tool` (tool-use prompt tokens are input);
`cache_read_input_tokens` = cached; `output_tokens` = output + thoughts (thinking is billed
as output); `reasoning_output_tokens` = thoughts.

Drift: a message type outside `MESSAGE_TYPES` -> "unknown_type"; a content part of no known
kind -> "unknown_block:<first key>".
"""

from __future__ import annotations

from services.ingest.formats.fields import (
    count,
    image_from_base64,
    joined_text,
    json_text,
    text,
    text_block,
    thinking_block,
)
from threadline.domain.records import GEMINI, Block, Position, Record, Usage

MESSAGE_TYPES = {"user": "user", "gemini": "assistant", "info": "system", "error": "system",
                 "warning": "system"}
METADATA = "metadata"
SET = "$set"
REWIND = "$rewindTo"
# Content part kinds (a part is an object with one of these keys).
PART_KINDS = ("text", "functionCall", "functionResponse", "inlineData", "fileData",
              "executableCode", "codeExecutionResult", "thought", "thoughtSignature",
              "videoMetadata")
FINAL_STATUS = frozenset({"success", "error", "cancelled"})
# Left out of a legacy document's metadata record: the messages (records of their own) and
# `lastUpdated`, which changes on every save and would make each rewrite a new record.
_NOT_METADATA = frozenset({"messages", "lastUpdated"})


def is_record(obj: dict) -> bool:
    """Whether a line without a Claude/Codex `type` is a Gemini chat line. A `messages` list
    alone is not enough: OpenAI chat files hold conversations that way too; a Gemini chat
    document also names its `sessionId` or `projectHash` (or is in a Gemini file, which the
    parser's hint settles)."""
    return ((isinstance(obj.get("messages"), list)
             and ("sessionId" in obj or "projectHash" in obj))
            or REWIND in obj or SET in obj or ("sessionId" in obj and "projectHash" in obj))


def parse(obj: dict, raw: bytes, position: Position) -> Record | list[Record]:
    """Any Gemini chat line, or a whole legacy document."""
    if isinstance(obj.get("messages"), list):
        return document(obj, position)
    if isinstance(obj.get(REWIND), str):
        rec = Record(REWIND, position, raw, GEMINI)
        rec.text = obj[REWIND]
        return rec
    if isinstance(obj.get("id"), str) or "type" in obj:
        return message(obj, raw, position)
    if isinstance(obj.get(SET), dict):
        patch = obj[SET]
        rec = Record(SET, position, raw, GEMINI)
        rec.session_id = text(patch.get("sessionId"))
        rec.timestamp = text(patch.get("lastUpdated"))
        rec.text = patch["summary"] if isinstance(patch.get("summary"), str) else ""
        return rec
    return _metadata(obj, raw, position)


def _metadata(obj: dict, raw: bytes, position: Position) -> Record:
    rec = Record(METADATA, position, raw, GEMINI)
    rec.session_id = text(obj.get("sessionId"))
    rec.timestamp = text(obj.get("startTime"))
    rec.text = obj["summary"] if isinstance(obj.get("summary"), str) else ""
    if not (isinstance(obj.get("sessionId"), str) and isinstance(obj.get("projectHash"), str)):
        rec.drift = "unknown_type"
    return rec


def document(obj: dict, position: Position) -> list[Record]:
    """A legacy chat document: its metadata, then one record per message (see the module
    docstring)."""
    session = text(obj.get("sessionId"))
    head = {name: value for name, value in obj.items() if name not in _NOT_METADATA}
    out = [_metadata(head, json_text(head), position)]
    for item in obj["messages"]:
        raw = json_text(item)
        if isinstance(item, dict):
            rec = message(item, raw, position)
        else:
            rec = Record(type(item).__name__, position, raw, GEMINI, drift="unknown_type")
        rec.session_id = session
        out.append(rec)
    return out


def message(obj: dict, raw: bytes, position: Position) -> Record:
    get = obj.get
    kind = text(get("type"))
    rec = Record(kind, position, raw, GEMINI)
    rec.api_message_id = text(get("id"))
    rec.timestamp = text(get("timestamp"))
    rec.model = text(get("model"))
    role = MESSAGE_TYPES.get(kind)
    if role is None:
        rec.drift = "unknown_type"
    rec.role = role or ""
    content = rec.content
    thoughts = get("thoughts")
    if isinstance(thoughts, list):
        content.extend(thinking_block(_thought(t), "thought") for t in thoughts
                       if isinstance(t, dict))
    rec.drift = rec.drift or _parts(get("content"), content)
    calls = get("toolCalls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                _tool_call(call, content)
    rec.usage = usage(get("tokens"))
    rec.text = joined_text(content)
    return rec


def _thought(t: dict) -> str:
    subject, description = t.get("subject"), t.get("description")
    if isinstance(subject, str) and isinstance(description, str):
        return f"{subject}: {description}" if subject else description
    for name in ("description", "subject", "summary", "text"):
        if isinstance(t.get(name), str):
            return t[name]
    return ""


def _parts(value: object, out: list[Block]) -> str:
    """Content (`PartListUnion`: a string, a part, or a list of either) into blocks."""
    if isinstance(value, str):
        if value:
            out.append(text_block(value))
        return ""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return ""
    drift = ""
    for part in value:
        if isinstance(part, str):
            out.append(text_block(part))
        elif isinstance(part, dict):
            drift = _part(part, out) or drift
    return drift


def _part(part: dict, out: list[Block]) -> str:
    if isinstance(part.get("text"), str):
        if part.get("thought") is True:
            out.append(thinking_block(part["text"], "thought"))
        else:
            out.append(text_block(part["text"]))
    elif isinstance(part.get("inlineData"), dict):
        data = part["inlineData"]
        body = data.get("data")
        image = image_from_base64(text(data.get("mimeType")), body if isinstance(body, str) else "")
        out.append(Block("image", image=image, raw_type="inlineData"))
    elif isinstance(part.get("functionCall"), dict):
        call = part["functionCall"]
        out.append(Block("other", tool_use_id=text(call.get("id")),
                         tool_name=text(call.get("name")), raw_type="functionCall"))
    elif isinstance(part.get("functionResponse"), dict):
        response = part["functionResponse"]
        out.append(Block("other", text=_response_text(response),
                         tool_use_id=text(response.get("id")),
                         tool_name=text(response.get("name")), raw_type="functionResponse"))
    elif any(name in part for name in PART_KINDS):
        out.append(Block("other", raw_type=next(n for n in PART_KINDS if n in part)))
    else:
        name = next(iter(part), "")
        out.append(Block("other", raw_type=name))
        return "unknown_block:" + name
    return ""


def _response_text(response: dict) -> str:
    body = response.get("response")
    if isinstance(body, dict):
        for name in ("output", "error", "content", "llmContent"):
            if isinstance(body.get(name), str):
                return body[name]
        return text(body)
    return text(body)


def _tool_call(call: dict, out: list[Block]) -> None:
    call_id = text(call.get("id"))
    out.append(Block("tool_use", tool_use_id=call_id, tool_name=text(call.get("name")),
                     tool_input_json=json_text(call.get("args")), raw_type="toolCall"))
    result = call.get("result")
    status = call.get("status")
    if result is None and status not in FINAL_STATUS:
        return
    texts = []
    if isinstance(result, str):
        texts.append(result)
    elif isinstance(result, list | dict):
        for part in result if isinstance(result, list) else [result]:
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                texts.append(_response_text(part["functionResponse"]))
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
    body = "\n".join(t for t in texts if t)
    if not body and isinstance(call.get("resultDisplay"), str):
        body = call["resultDisplay"]
    out.append(Block("tool_result", text=body, tool_use_id=call_id, is_error=status == "error",
                     raw_type="toolCall", agent_id=text(call.get("agentId"))))


def _first(tokens: dict, names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in tokens:
            return max(0, count(tokens[name]))
    return None


def usage(tokens: object) -> Usage | None:
    """`tokens` -> `Usage` (see the module docstring)."""
    if not isinstance(tokens, dict):
        return None
    inp = _first(tokens, ("input", "prompt", "input_tokens", "prompt_tokens")) or 0
    out = _first(tokens, ("output", "candidates", "output_tokens", "candidates_tokens")) or 0
    cached = _first(tokens, ("cached", "cached_tokens")) or 0
    thoughts = _first(tokens, ("thoughts", "reasoning", "thoughts_tokens",
                               "reasoning_tokens")) or 0
    tool = _first(tokens, ("tool", "tool_tokens")) or 0
    total = _first(tokens, ("total", "total_tokens"))
    inclusive = inp + out + thoughts + tool
    non_cached = inp
    if cached and total == inclusive and total != inclusive + cached:
        non_cached = inp - min(inp, cached)
    return Usage(input_tokens=non_cached + tool, output_tokens=out + thoughts,
                 cache_read_input_tokens=cached, reasoning_output_tokens=thoughts)
