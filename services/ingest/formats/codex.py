"""Codex CLI rollouts: `~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl`.

Every line is `{timestamp, type, payload}`. `Record.type` is the line's `type`, `subtype` the
payload's `type` (none for `session_meta`/`turn_context`/`compacted`).

- `session_meta`: the session id (`payload.id`), cwd, CLI version, git branch. Later lines
  name no session; ingest carries this one over to them.
- `turn_context`: `model` (and cwd). Token counts name no model: accounting takes it from
  the latest `turn_context` before them in the same session, as ccusage does.
- `response_item`: `message` (roles user/assistant/developer; developer maps to role
  "system"; blocks input_text/output_text/input_image), `reasoning` (its summary texts as
  thinking blocks), `function_call`/`custom_tool_call` (a tool_use block: `call_id`, `name`,
  and `arguments` JSON text, or a custom tool's free-form `input` as a JSON string),
  `function_call_output`/`custom_tool_call_output` (a tool_result block, role "tool"; its
  text, `is_error` and run time read from the output's shape by `codex_output`: the exit
  code and duration of an exec output, Codex's failure messages, `success: false`),
  `local_shell_call`
  (a tool_use named "local_shell" with its `action`), `web_search_call` (a server_tool_use
  named "web_search"), `compaction`.
- `event_msg`: `user_message`/`agent_message` (text), `agent_reasoning` (thinking),
  `token_count` (usage), and the turn and tool lifecycle events (`EVENT_TYPES`).
- `compacted`: the compaction summary as text. `token_usage_record` (compaction request
  usage) is known but carries no `usage`: it only counts when a matching `compacted` record
  shows the request was not already counted by a `token_count` (ccusage's rule), which is
  not a property of one line.

Usage (`token_count`): `payload.info.last_token_usage`, the tokens of the one model call
that event reports, mapped from OpenAI's semantics (input includes cached input; output
includes reasoning) to ours, as ccusage's Codex adapter prices them:
`input_tokens` = input - cached (the non-cached input), `cache_read_input_tokens` = cached
(never more than input), `output_tokens` = output (reasoning already inside),
`reasoning_output_tokens` = reasoning (informational). Field aliases ccusage accepts
(`prompt_tokens`, `cached_tokens`, `completion_tokens`, `reasoning_tokens`, ...) are read
too. `info: null` (Codex's first, empty count) carries no usage. A `token_count` without
`info` but with a `usage` object (an older shape) uses that. Repeated counts whose
`total_token_usage` did not advance are a session-level question left to accounting.
Known gap: older Codex versions write `info.total_token_usage` without
`last_token_usage`; such counts carry no usage here. ccusage derives the call's tokens from
the change in the running total since the previous count, which needs the session's
previous line: not something a per-line parser can do and stay correct when reading
resumes mid-file, so those tokens are not counted yet.
The model of a token_count is its own `model`/`info.model` when present, else "".

Drift: a line `type` outside `TYPES` -> "unknown_type"; a payload type outside
`RESPONSE_ITEM_TYPES`/`EVENT_TYPES` -> "unknown_codex_payload:<x>".
"""

from __future__ import annotations

from services.ingest.formats import codex_output
from services.ingest.formats.fields import (
    count,
    image_from_url,
    joined_text,
    json_string_bytes,
    json_text,
    text,
    text_block,
    thinking_block,
)
from threadline.domain.records import CODEX, Block, Position, Record, Usage

TYPES = frozenset({"session_meta", "response_item", "event_msg", "turn_context", "compacted",
                   "token_usage_record"})
RESPONSE_ITEM_TYPES = frozenset({
    "message", "reasoning", "function_call", "function_call_output", "custom_tool_call",
    "custom_tool_call_output", "local_shell_call", "web_search_call", "compaction", "other",
})
EVENT_TYPES = frozenset({
    "user_message", "agent_message", "agent_reasoning", "agent_reasoning_raw_content",
    "agent_reasoning_section_break", "token_count", "turn_aborted", "task_started",
    "task_complete", "turn_started", "turn_complete", "patch_apply_begin", "patch_apply_end",
    "exec_command_begin", "exec_command_end", "exec_command_output_delta",
    "exec_approval_request", "apply_patch_approval_request", "mcp_tool_call_begin",
    "mcp_tool_call_end", "web_search_begin", "web_search_end", "view_image_tool_call",
    "context_compacted", "thread_rolled_back", "thread_settings_applied", "turn_diff",
    "plan_update", "background_event", "stream_error", "error", "warning",
    "entered_review_mode", "exited_review_mode", "session_configured", "shutdown_complete",
    "undo_started", "undo_completed", "item_started", "item_completed",
})
MESSAGE_PARTS = frozenset({"input_text", "output_text", "text", "input_image", "refusal",
                           "reasoning_text", "summary_text"})
# Codex roles onto ours: a developer message is instructions, like a system prompt.
ROLES = {"user": "user", "assistant": "assistant", "developer": "system", "system": "system",
         "tool": "tool"}


def parse(obj: dict, kind: str, raw: bytes, position: Position) -> Record:
    rec = Record(kind, position, raw, CODEX)
    rec.timestamp = text(obj.get("timestamp"))
    if kind not in TYPES:
        rec.drift = "unknown_type"
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        return rec
    if kind == "session_meta":
        _session_meta(payload, rec)
    elif kind == "turn_context":
        rec.cwd = text(payload.get("cwd"))
        rec.model = model_of(payload)
    elif kind == "response_item":
        rec.subtype = text(payload.get("type"))
        _response_item(payload, rec)
    elif kind == "event_msg":
        rec.subtype = text(payload.get("type"))
        _event(payload, rec)
    elif kind == "compacted":
        rec.text = text(payload.get("message"))
    elif kind == "token_usage_record":
        rec.model = model_of(payload)
    return rec


def model_of(payload: dict) -> str:
    for name in ("model", "model_name"):
        value = payload.get(name)
        if isinstance(value, str) and value.strip():
            return value
    metadata = payload.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("model"), str):
        return metadata["model"]
    return ""


def _session_meta(payload: dict, rec: Record) -> None:
    rec.session_id = text(payload.get("id"))
    rec.cwd = text(payload.get("cwd"))
    rec.version = text(payload.get("cli_version"))
    rec.timestamp = text(payload.get("timestamp")) or rec.timestamp
    git = payload.get("git")
    if isinstance(git, dict):
        rec.git_branch = text(git.get("branch"))


def _response_item(payload: dict, rec: Record) -> None:
    kind = rec.subtype
    if kind not in RESPONSE_ITEM_TYPES:
        rec.drift = "unknown_codex_payload:" + kind
        return
    rec.role = "assistant"
    if kind == "message":
        rec.role = ROLES.get(text(payload.get("role")), "")
        rec.content, drift = message_parts(payload.get("content"))
        rec.drift = drift
        rec.api_message_id = text(payload.get("id"))
    elif kind == "reasoning":
        for source in (payload.get("summary"), payload.get("content")):
            if isinstance(source, list):
                rec.content.extend(thinking_block(text(p.get("text")), text(p.get("type")))
                                   for p in source if isinstance(p, dict))
    elif kind == "function_call":
        rec.content = [Block("tool_use", tool_use_id=text(payload.get("call_id")),
                             tool_name=text(payload.get("name")),
                             tool_input_json=json_string_bytes(payload.get("arguments")),
                             raw_type=kind)]
    elif kind == "custom_tool_call":
        # A custom tool's input is free text (an apply_patch body), kept as a JSON string.
        value = payload.get("input")
        rec.content = [Block("tool_use", tool_use_id=text(payload.get("call_id")),
                             tool_name=text(payload.get("name")),
                             tool_input_json=json_text(value if value is not None else ""),
                             raw_type=kind)]
    elif kind in ("function_call_output", "custom_tool_call_output"):
        rec.role = "tool"
        body, is_error, seconds = _output(payload.get("output"))
        rec.content = [Block("tool_result", text=body, tool_use_id=text(payload.get("call_id")),
                             is_error=is_error, raw_type=kind, duration_seconds=seconds)]
    elif kind == "local_shell_call":
        rec.content = [Block("tool_use", tool_use_id=text(payload.get("call_id")
                                                          or payload.get("id")),
                             tool_name="local_shell",
                             tool_input_json=json_text(payload.get("action")), raw_type=kind)]
    elif kind == "web_search_call":
        rec.content = [Block("server_tool_use", tool_use_id=text(payload.get("id")),
                             tool_name="web_search",
                             tool_input_json=json_text(payload.get("action")), raw_type=kind)]
    rec.text = joined_text(rec.content)


def message_parts(content: object) -> tuple[list[Block], str]:
    """A Codex message's content list -> (blocks, drift)."""
    if isinstance(content, str):
        return ([text_block(content)] if content else []), ""
    if not isinstance(content, list):
        return [], ""
    out = []
    drift = ""
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = text(part.get("type"))
        if kind == "input_image":
            out.append(Block("image", image=image_from_url(part.get("image_url")),
                             raw_type=kind))
        elif kind in MESSAGE_PARTS:
            out.append(text_block(text(part.get("text") or part.get("refusal")), kind))
        else:
            out.append(Block("other", raw_type=kind))
            drift = drift or "unknown_block:" + kind
    return out, drift


def _output(output: object) -> tuple[str, bool, float | None]:
    """A tool call's output (text, is_error, run time): a string in one of the shapes
    codex_output reads, or an object/list of content items."""
    if isinstance(output, str):
        return codex_output.read(output)
    if isinstance(output, dict):
        found = codex_output.structured(output)
        if found is not None:
            return found
        body = output.get("content", output.get("output"))
        if isinstance(body, list):
            return joined_text(message_parts(body)[0]), output.get("success") is False, None
        body, is_error, seconds = codex_output.read(text(body))
        return body, is_error or output.get("success") is False, seconds
    if isinstance(output, list):
        return joined_text(message_parts(output)[0]), False, None
    return text(output), False, None


def _event(payload: dict, rec: Record) -> None:
    kind = rec.subtype
    if kind not in EVENT_TYPES:
        rec.drift = "unknown_codex_payload:" + kind
        return
    if kind == "user_message":
        rec.role = "user"
        _text(payload.get("message"), rec)
    elif kind == "agent_message":
        rec.role = "assistant"
        _text(payload.get("message"), rec)
    elif kind in ("agent_reasoning", "agent_reasoning_raw_content"):
        rec.role = "assistant"
        rec.content = [thinking_block(text(payload.get("text")), kind)]
    elif kind == "token_count":
        info = payload.get("info")
        if isinstance(info, dict):
            rec.usage = usage(info.get("last_token_usage"))
            rec.model = model_of(payload) or model_of(info)
        elif "info" not in payload:
            rec.usage = usage(payload.get("usage"))
            rec.model = model_of(payload)
    elif kind == "task_complete":
        rec.text = text(payload.get("last_agent_message"))
    elif kind in ("turn_aborted", "error", "stream_error", "warning", "background_event"):
        rec.text = text(payload.get("reason") or payload.get("message"))


def _text(value: object, rec: Record) -> None:
    value = text(value)
    if value:
        rec.content = [text_block(value)]
        rec.text = value


def _first(u: dict, names: tuple[str, ...]) -> int:
    for name in names:
        if name in u:
            return count(u[name])
    return 0


def usage(u: object) -> Usage | None:
    """OpenAI-style token counts -> `Usage` (see the module docstring)."""
    if not isinstance(u, dict):
        return None
    inp = max(0, _first(u, ("input_tokens", "prompt_tokens", "input")))
    cached = max(0, _first(u, ("cached_input_tokens", "cache_read_input_tokens",
                                "cached_tokens")))
    details = u.get("prompt_tokens_details")
    if not cached and isinstance(details, dict):
        cached = max(0, count(details.get("cached_tokens")))
    cached = min(cached, inp)
    reasoning = max(0, _first(u, ("reasoning_output_tokens", "reasoning_tokens")))
    return Usage(input_tokens=inp - cached,
                 output_tokens=max(0, _first(u, ("output_tokens", "completion_tokens",
                                                 "output"))),
                 cache_read_input_tokens=cached, reasoning_output_tokens=reasoning)
