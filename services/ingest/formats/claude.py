"""Claude Code session records, 1.0 to 2.1.x (see the shared transcript-format notes).

Files: `<project>/<sessionId>.jsonl`; subagents inline (1.0.x, `isSidechain`), in flat
`agent-<id>.jsonl` files beside the session (2.0.x), or in `<sessionId>/subagents/` and
`<sessionId>/subagents/workflows/wf_<id>/` (2.1.x), whose `journal.jsonl` lines
(`{"type": "started"|"result", "key", "agentId", "result"}`) are records too. Subagent records
share the parent's sessionId; a record in an `agent-<id>.jsonl` file that names no agentId
gets `<id>` from the file name.

How fields map onto `Record` where the mapping is a choice:

- `summary` lines: the summary is the text; `leafUuid` (the last message of the conversation
  summarised, usually in another file) goes to `logical_parent_uuid`, not `parent_uuid`: it
  is not this record's parent in the conversation tree. `last-prompt`'s `leafUuid` likewise.
- `isMeta` -> `is_meta`. User lines with `isCompactSummary` (the summary a compaction starts
  the new context with) get `subtype` "compact_summary" and `is_meta` (not human input).
  Assistant lines with `isApiErrorMessage` get `subtype` "api_error_message".
- `system`: `subtype` as written ("" for the subtype-less 1.0.x lines); `content` is the text.
- `progress`: `subtype` is `data.type`. The first block is an "other" block whose
  `raw_type` is `data.type`, `tool_use_id` the `parentToolUseID` (else `toolUseID`) and
  `agent_id` the `data.agentId`. `agent_progress` also carries the embedded subagent
  message: its role, model and blocks, with tool_use/tool_result blocks kept as "other"
  blocks (same ids, `raw_type` as written; the subagent's own file records those calls) and
  no `usage`: its tokens are left to accounting (`threadline/storage/accounting.py`), which reads
  them from the raw line and counts each response once, collapsing the embedded copy with
  the subagent file's own line.
- `attachment`: `subtype` is `attachment.type`; its main text (content, prompt, stdout, ...)
  is the record's text. A hook attachment's `toolUseID` (the tool call a PreToolUse or
  PostToolUse hook ran for; other hooks write their event name or an id of their own) is
  kept as for progress: a first "other" block with that `tool_use_id` and `raw_type` the
  attachment type.
- Small metadata records (`last-prompt`, `ai-title`, `custom-title`, ...): their value
  (`lastPrompt`, `aiTitle`, ...) is the text; `queue-operation`: `subtype` is the operation,
  the queued content the text.
- `toolUseResult` (object, string or list, never trusted to be any of them): an object's
  `agentId` goes to the line's tool_result block (`Block.agent_id`) when the line has exactly
  one, linking a Task/Agent call to its subagent. `is_error` comes only from the block.
- `<persisted-output>` stubs (a tool_result whose text starts with `<persisted-output>`): when
  `tool-results/<tool_use_id>.txt` exists in the session's folder (`<dir>/<sessionId>/` beside
  the session file, or the folder above `subagents/` for a subagent file), or at the path the
  stub names if that path is inside the same project folder, `Block.persisted_output_path`
  is that file. The only filesystem access of the parser, and only for such stubs.
- Images: a reference (media type, decoded size, sha256 of the base64 text); the bytes stay
  only in the raw line.

Drift: a `type` outside `TYPES` -> "unknown_type"; a `system` subtype outside
`SYSTEM_SUBTYPES` or a `progress` data type outside `PROGRESS_TYPES` ->
"unknown_subtype:<x>"; an attachment type outside `ATTACHMENT_TYPES` ->
"unknown_attachment:<x>"; a content block type outside the block lists -> "unknown_block:<x>".
"""

from __future__ import annotations

import os
from operator import itemgetter

import orjson

from services.ingest.formats.fields import (
    INT64_MAX,
    ROLES,
    count,
    image_from_source,
    json_text,
    text,
    text_block,
)
from threadline.domain.records import CLAUDE_CODE, Block, Position, Record, Usage

# --- what this module knows ---------------------------------------------------------------

MESSAGE_TYPES = frozenset({"user", "assistant"})
# Small records of one value each: type -> the field holding that value.
METADATA_TYPES = {
    "last-prompt": "lastPrompt",
    "custom-title": "customTitle",
    "ai-title": "aiTitle",
    "agent-name": "agentName",
    "permission-mode": "permissionMode",
    "mode": "mode",
    "pr-link": "prUrl",
    "agent-setting": "agentSetting",
    "bridge-session": "bridgeSessionId",
    "worktree-state": "worktreeSession",
}
# Workflow journal lines (`subagents/workflows/wf_<id>/journal.jsonl`), recognised by `key`.
JOURNAL_TYPES = frozenset({"started", "result"})
TYPES = (MESSAGE_TYPES | frozenset(METADATA_TYPES) | JOURNAL_TYPES
         | frozenset({"system", "progress", "attachment", "summary", "file-history-snapshot",
                      "queue-operation"}))
SYSTEM_SUBTYPES = frozenset({
    "",  # 1.0.x system lines (hook output, model fallback notices) have none
    "local_command", "api_error", "turn_duration", "stop_hook_summary", "compact_boundary",
    "microcompact_boundary", "away_summary", "informational", "bridge_status",
    "scheduled_task_fire",
})
PROGRESS_TYPES = frozenset({
    "hook_progress", "bash_progress", "agent_progress", "mcp_progress", "waiting_for_task",
    "query_update", "search_results_received",
})
ATTACHMENT_TYPES = frozenset({
    "agent_listing_delta", "agent_mention", "async_hook_response", "auto_mode",
    "auto_mode_exit", "budget_usd", "command_permissions", "compact_file_reference",
    "date_change", "deferred_tools_delta", "directory", "edited_text_file", "file",
    "goal_status", "hook_additional_context", "hook_blocking_error", "hook_cancelled",
    "hook_deferred_tool", "hook_error_during_execution", "hook_non_blocking_error",
    "hook_permission_decision", "hook_stopped_continuation", "hook_success",
    "hook_system_message", "invoked_skills", "max_turns_reached", "mcp_instructions_delta",
    "nested_memory", "output_style", "plan_file_reference", "plan_mode", "plan_mode_exit",
    "plan_mode_reentry", "queued_command", "relevant_memories", "skill_listing",
    "structured_output", "task_reminder", "task_status", "todo_reminder",
})
# Fields that hold an attachment's main text, in order of preference.
ATTACHMENT_TEXT = ("content", "prompt", "stdout", "stderr", "blockingError", "message",
                   "snippet", "displayText", "description", "planContent", "newDate")
# Content blocks beyond text/thinking/tool_use/tool_result/image:
# tool calls the API ran itself (kind server_tool_use) ...
SERVER_TOOL_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use"})
# ... their results (kind "other": no tool_use block of ours answers to them) ...
SERVER_RESULT_BLOCKS = frozenset({
    "advisor_tool_result", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "tool_search_tool_result", "mcp_tool_result",
})
# ... and the rest, kept as "other" blocks with their text.
OTHER_BLOCKS = frozenset({"redacted_thinking", "document", "search_result", "tool_reference",
                          "container_upload"})
# Block types inside a tool_result's content list.
RESULT_PARTS = frozenset({"text", "image", "tool_reference", "search_result", "document"})

_PERSISTED = "<persisted-output>"
_TOOL_KINDS = frozenset({"tool_use", "tool_result", "server_tool_use"})


# --- the hot path: user and assistant lines -------------------------------------------------

# The envelope fields every user/assistant line of 1.0.x-2.1.x carries, read in one C call;
# a line missing one (hand-made files, early versions) or holding a non-string (a null
# parentUuid at a root) takes the field-by-field path.
_ENVELOPE = itemgetter("uuid", "parentUuid", "sessionId", "timestamp", "cwd", "version")
_USAGE = itemgetter("input_tokens", "output_tokens", "cache_creation_input_tokens",
                    "cache_read_input_tokens")
_S = str
_I = int
_dumps = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError


def _envelope_slow(get) -> tuple[str, str, str, str, str, str]:
    return (text(get("uuid")), text(get("parentUuid")), text(get("sessionId")),
            text(get("timestamp")), text(get("cwd")), text(get("version")))


def envelope(obj: dict, position: Position) -> tuple[str, str, str, str, str, str, str, str]:
    """The envelope every Claude record may carry: uuid, parentUuid, sessionId, timestamp,
    cwd, version, gitBranch and agentId (from the file name when the line has none), each a
    string ("" when absent or of another type). One itemgetter call on the common path."""
    get = obj.get
    try:
        uuid, parent, session, timestamp, cwd, version = _ENVELOPE(obj)
    except KeyError:
        uuid, parent, session, timestamp, cwd, version = _envelope_slow(get)
    else:
        if not (uuid.__class__ is _S and parent.__class__ is _S and session.__class__ is _S
                and timestamp.__class__ is _S and cwd.__class__ is _S
                and version.__class__ is _S):
            uuid, parent, session, timestamp, cwd, version = _envelope_slow(get)
    branch = get("gitBranch", "")
    if branch.__class__ is not _S:
        branch = text(branch)
    agent = get("agentId", "")
    if agent.__class__ is not _S:
        agent = text(agent)
    if not agent and "agent-" in position.path:
        agent = agent_of_file(position.path)
    return uuid, parent, session, timestamp, cwd, version, branch, agent


def message_record(obj: dict, kind: str, message: dict, raw: bytes,
                   position: Position) -> Record:
    """A `user` or `assistant` line with its message (the bulk of every file); kept lean on
    purpose: this is most of the parser's time."""
    get = obj.get
    uuid, parent, session, timestamp, cwd, version, branch, agent = envelope(obj, position)
    is_meta = get("isMeta") is True
    subtype = model = message_id = stop = request_id = body = drift = ""
    usage = None
    content: list[Block] = []
    mget = message.get
    role = mget("role", "")
    if role.__class__ is not _S or role not in ROLES:
        role = ""
    value = mget("content")
    if value.__class__ is list:
        content, body, drift = blocks(value)
    elif value.__class__ is _S:
        if value:
            content = [Block("text", value, "", "", b"", False, None, "text", "", "")]
            body = value
    if kind == "assistant":
        model = mget("model", "")
        if model.__class__ is not _S:
            model = text(model)
        message_id = mget("id", "")
        if message_id.__class__ is not _S:
            message_id = text(message_id)
        stop = mget("stop_reason", "")
        if stop.__class__ is not _S:
            stop = text(stop)
        value = mget("usage")
        if value.__class__ is dict:
            usage = claude_usage(value)
        request_id = get("requestId", "")
        if request_id.__class__ is not _S:
            request_id = text(request_id)
        if get("isApiErrorMessage") is True:
            subtype = "api_error_message"
    else:
        if content and content[0].kind == "tool_result" or len(content) > 1:
            _link_results(content, get("toolUseResult"), session, position.path)
        if get("isCompactSummary") is True:
            subtype = "compact_summary"
            is_meta = True
    return Record(kind, position, raw, CLAUDE_CODE, uuid, parent, "", session, agent,
                  get("isSidechain") is True, subtype, role, timestamp, cwd, branch, version,
                  model, content, usage, request_id, message_id, stop, is_meta, body, drift)


def claude_usage(u: dict) -> Usage:
    try:
        inp, out, creation, read = _USAGE(u)
    except KeyError:
        inp, out, creation, read = (u.get("input_tokens"), u.get("output_tokens"),
                                    u.get("cache_creation_input_tokens"),
                                    u.get("cache_read_input_tokens"))
    if inp.__class__ is not _I or inp > INT64_MAX:
        inp = count(inp)
    if out.__class__ is not _I or out > INT64_MAX:
        out = count(out)
    if creation.__class__ is not _I or creation > INT64_MAX:
        creation = count(creation)
    if read.__class__ is not _I or read > INT64_MAX:
        read = count(read)
    five = hour = 0
    split = u.get("cache_creation")
    if split.__class__ is dict:
        five = split.get("ephemeral_5m_input_tokens", 0)
        if five.__class__ is not _I or five > INT64_MAX:
            five = count(five)
        hour = split.get("ephemeral_1h_input_tokens", 0)
        if hour.__class__ is not _I or hour > INT64_MAX:
            hour = count(hour)
    tier = u.get("service_tier", "")
    if tier.__class__ is not _S:
        tier = text(tier)
    return Usage(inp, out, creation, five, hour, read, tier, 0)


def blocks(items: list) -> tuple[list[Block], str, str]:
    """Anthropic content blocks -> (blocks, plain text of the text blocks, drift)."""
    out: list[Block] = []
    body = drift = ""
    for item in items:
        if item.__class__ is not dict:
            if item.__class__ is str:  # seen in hand-edited files: a bare string is text
                out.append(text_block(item))
                if item:
                    body = body + "\n" + item if body else item
            else:
                drift = drift or "unknown_block:" + type(item).__name__
            continue
        get = item.get
        kind = get("type")
        if kind == "text":
            value = get("text", "")
            if value.__class__ is not str:
                value = text(value)
            out.append(Block("text", value, "", "", b"", False, None, "text", "", ""))
            if value:
                body = body + "\n" + value if body else value
        elif kind == "tool_use":
            ident = get("id", "")
            if ident.__class__ is not _S:
                ident = text(ident)
            name = get("name", "")
            if name.__class__ is not _S:
                name = text(name)
            try:
                arguments = _dumps(get("input"))
            except (TypeError, _JSONEncodeError):  # integers beyond 64 bits, deep nesting
                arguments = b"null"
            out.append(Block("tool_use", "", ident, name, arguments, False, None, "tool_use",
                             "", ""))
        elif kind == "tool_result":
            value = get("content")
            image = None
            if value.__class__ is not _S:
                value, image, inner = result_content(value)
                drift = drift or inner
            ident = get("tool_use_id", "")
            if ident.__class__ is not _S:
                ident = text(ident)
            out.append(Block("tool_result", value, ident, "", b"", get("is_error") is True,
                             image, "tool_result", "", ""))
        elif kind == "thinking":
            value = get("thinking", "")
            if value.__class__ is not str:
                value = text(value)
            out.append(Block("thinking", value, "", "", b"", False, None, "thinking", "", ""))
        elif kind == "image":
            out.append(Block("image", "", "", "", b"", False, image_from_source(get("source")),
                             "image", "", ""))
        elif kind.__class__ is str and kind in SERVER_TOOL_BLOCKS:
            out.append(Block("server_tool_use", "", _id(get("id", "")), _id(get("name", "")),
                             json_text(get("input")), False, None, kind, "", ""))
        elif kind.__class__ is str and kind in SERVER_RESULT_BLOCKS:
            value, image, inner = result_content(get("content"))
            out.append(Block("other", value, _id(get("tool_use_id", "")), "", b"",
                             get("is_error") is True, image, kind, "", ""))
        elif kind.__class__ is str and kind in OTHER_BLOCKS:
            out.append(Block("other", _part_text(item), "", _id(get("tool_name", "")), b"",
                             False, None, kind, "", ""))
        else:
            name = text(kind)
            out.append(Block("other", "", "", "", b"", False, None, name, "", ""))
            drift = drift or "unknown_block:" + name
    return out, body, drift


def result_content(value: object) -> tuple[str, object, str]:
    """A tool result's content that is not a plain string: (text, first image, drift)."""
    if value is None:
        return "", None, ""
    if value.__class__ is dict:  # server tool results: one object
        return _part_text(value), None, ""
    if value.__class__ is not list:
        return text(value), None, ""
    parts = []
    image = None
    drift = ""
    for part in value:
        if part.__class__ is str:
            parts.append(part)
            continue
        if part.__class__ is not dict:
            drift = drift or "unknown_block:" + type(part).__name__
            continue
        kind = part.get("type")
        if kind == "image":
            if image is None:
                image = image_from_source(part.get("source"))
            continue
        if not (kind.__class__ is str and kind in RESULT_PARTS):
            drift = drift or "unknown_block:" + text(kind)
        piece = _part_text(part)
        if piece:
            parts.append(piece)
    return "\n".join(parts), image, drift


def _part_text(part: dict) -> str:
    for name in ("text", "tool_name", "title", "content"):
        value = part.get(name)
        if value.__class__ is str:
            return value
    return ""


def _id(value: object) -> str:
    return value if value.__class__ is str else text(value)


def _link_results(content: list[Block], tool_use_result: object, session: str,
                  path: str) -> None:
    """Subagent links and persisted outputs of a user line's tool_result blocks."""
    if len(content) == 1:  # the usual tool_result line: one block, known to be a result
        b = content[0]
        if _PERSISTED in b.text[:64]:
            b.persisted_output_path = persisted_output(b.text, b.tool_use_id, session, path)
        if tool_use_result.__class__ is dict:
            agent = tool_use_result.get("agentId")
            if agent.__class__ is _S:
                b.agent_id = agent
        return
    results = [b for b in content if b.kind == "tool_result"]
    if not results:
        return
    for b in results:
        if _PERSISTED in b.text[:64]:
            b.persisted_output_path = persisted_output(b.text, b.tool_use_id, session, path)
    if len(results) == 1 and tool_use_result.__class__ is dict:
        agent = tool_use_result.get("agentId")
        if agent.__class__ is str:
            results[0].agent_id = agent


def agent_of_file(path: str) -> str:
    """`<id>` of an `agent-<id>.jsonl` file, else ""."""
    name = os.path.basename(path)
    if name.startswith("agent-") and name.endswith(".jsonl"):
        return name[6:-6]
    return ""


def persisted_output(stub: str, tool_use_id: str, session: str, path: str) -> str:
    """The existing `tool-results/<id>.txt` file a `<persisted-output>` stub stands for."""
    if not path:
        return ""
    folder = os.path.dirname(os.path.abspath(path))
    parts = folder.split(os.sep)
    if "subagents" in parts:  # <project>/<session>/subagents/[workflows/wf_x/]agent-*.jsonl
        at = len(parts) - 1 - parts[::-1].index("subagents")
        session_folder = os.sep.join(parts[:at])
        project = os.path.dirname(session_folder)
    else:
        session_folder = os.path.join(folder, session) if _safe_name(session) else ""
        project = folder
    candidates = []
    if session_folder and _safe_name(tool_use_id):
        candidates.append(os.path.join(session_folder, "tool-results", tool_use_id + ".txt"))
    named = _named_path(stub)
    if named and os.path.isabs(named):
        named = os.path.normpath(named)
        if named.startswith(project + os.sep):
            candidates.append(named)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return ""


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def _named_path(stub: str) -> str:
    head = stub[:4096]
    at = head.find("saved to: ")
    if at < 0:
        return ""
    end = head.find("\n", at)
    return head[at + 10:end if end >= 0 else len(head)].strip()


# --- every other Claude record -------------------------------------------------------------

def other_record(obj: dict, kind: str, raw: bytes, position: Position) -> Record:
    """Any Claude record but a user/assistant line with a message (`kind` may be unknown)."""
    get = obj.get
    uuid, parent, session, timestamp, cwd, version, branch, agent = envelope(obj, position)
    rec = Record(kind, position, raw, CLAUDE_CODE, uuid, parent, "", session, agent,
                 get("isSidechain") is True, "", "", timestamp, cwd, branch, version, "", [],
                 None, "", "", "", get("isMeta") is True, "", "")
    if kind in MESSAGE_TYPES:  # a user/assistant line without a message object
        rec.role = kind
        _content_text(get("message") if isinstance(get("message"), str) else None, rec)
    elif kind == "progress":
        _progress(get, rec)
    elif kind == "system":
        rec.role = "system"
        rec.logical_parent_uuid = text(get("logicalParentUuid"))
        rec.subtype = text(get("subtype"))
        if rec.subtype not in SYSTEM_SUBTYPES:
            rec.drift = "unknown_subtype:" + rec.subtype
        _content_text(get("content"), rec)
    elif kind == "attachment":
        _attachment(get("attachment"), rec)
    elif kind == "summary":
        rec.logical_parent_uuid = text(get("leafUuid"))
        _content_text(get("summary"), rec)
    elif kind == "file-history-snapshot":
        snapshot = get("snapshot")
        if isinstance(snapshot, dict) and not rec.timestamp:
            rec.timestamp = text(snapshot.get("timestamp"))
    elif kind == "queue-operation":
        rec.subtype = text(get("operation"))
        value = get("content")
        rec.text = blocks(value)[1] if isinstance(value, list) else text(value)
    elif kind in METADATA_TYPES:
        value = get(METADATA_TYPES[kind])
        rec.text = value if isinstance(value, str) else ""
        if kind == "last-prompt":
            rec.logical_parent_uuid = text(get("leafUuid"))
    elif kind in JOURNAL_TYPES:
        rec.text = text(get("result"))
    else:
        rec.drift = "unknown_type"
    return rec


def _content_text(value: object, rec: Record) -> None:
    if isinstance(value, list):
        rec.content, rec.text, drift = blocks(value)
        rec.drift = rec.drift or drift
    elif value is not None:
        value = text(value)
        if value:
            rec.content = [text_block(value)]
            rec.text = value


def _progress(get, rec: Record) -> None:
    data = get("data")
    data = data if isinstance(data, dict) else {}
    kind = text(data.get("type"))
    rec.subtype = kind
    if kind not in PROGRESS_TYPES:
        rec.drift = "unknown_subtype:" + kind
    link = get("parentToolUseID")
    if not isinstance(link, str) or not link:
        link = get("toolUseID")
    rec.content = [Block("other", "", text(link), "", b"", False, None, kind,
                         text(data.get("agentId")), "")]
    message = data.get("message")
    inner = message.get("message") if isinstance(message, dict) else None
    if not isinstance(inner, dict):
        return
    value = inner.get("role")
    rec.role = value if isinstance(value, str) and value in ROLES else ""
    rec.model = text(inner.get("model"))
    value = inner.get("content")
    if isinstance(value, list):
        embedded, rec.text, _ = blocks(value)
        for b in embedded:
            if b.kind in _TOOL_KINDS:
                b.kind = "other"
        rec.content.extend(embedded)
    elif isinstance(value, str) and value:
        rec.content.append(text_block(value))
        rec.text = value


def _attachment(attachment: object, rec: Record) -> None:
    if not isinstance(attachment, dict):
        rec.drift = "unknown_attachment:"
        return
    kind = text(attachment.get("type"))
    rec.subtype = kind
    if kind not in ATTACHMENT_TYPES:
        rec.drift = "unknown_attachment:" + kind
    link = attachment.get("toolUseID")
    if isinstance(link, str) and link:  # a hook's tool call (reply_inference.py, rule 5)
        rec.content = [Block("other", "", link, "", b"", False, None, kind, "", "")]
    for name in ATTACHMENT_TEXT:
        value = attachment.get(name)
        if isinstance(value, str) and value:
            rec.text = value
            return
        if isinstance(value, list):
            body = blocks(value)[1]
            if body:
                rec.text = body
                return
