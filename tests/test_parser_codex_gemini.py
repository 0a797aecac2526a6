"""Codex CLI rollouts, Gemini CLI chats (legacy JSON and JSONL) and generic chat lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.analysis.normalize import message_key, session_of
from services.ingest.formats import codex
from services.ingest.parser import parse_line, reparse_line
from threadline import convert
from threadline.domain.records import CODEX, GEMINI, GENERIC, Position, Record

ROLLOUT = "rollout-2025-09-24T19-22-20-01997e76-d124-7592-9cac-2ec05abbca08"
CODEX_POS = Position(f"/c/sessions/2025/09/24/{ROLLOUT}.jsonl", 0, 1, 0)
CHAT_POS = Position("/g/.gemini/tmp/abc/chats/session-2026-01-30T06-08-7befeae5.jsonl", 0, 1, 0)


def parse(obj: dict | bytes, position: Position = CODEX_POS, hint: str = ""):
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    result = parse_line(raw, position, hint)
    for rec in result if isinstance(result, list) else [result]:
        assert isinstance(rec, Record), rec
        convert.message_to_pb(rec)
    return result


def line(kind: str, payload: dict) -> dict:
    return {"timestamp": "2025-09-25T01:22:20.084Z", "type": kind, "payload": payload}


def item(payload: dict) -> dict:
    return line("response_item", payload)


def event(payload: dict) -> dict:
    return line("event_msg", payload)


# --- Codex --------------------------------------------------------------------------------------

def test_session_meta_and_turn_context():
    meta = parse(line("session_meta", {
        "id": "01997e76-d124-7592-9cac-2ec05abbca08", "timestamp": "2025-09-25T01:22:20.068Z",
        "cwd": "/work", "originator": "codex_cli", "cli_version": "0.40.0",
        "git": {"commit_hash": "9d3", "branch": "fix/x", "repository_url": "git@h:r.git"}}))
    assert (meta.format, meta.session_id, meta.cwd, meta.version, meta.git_branch) == (
        CODEX, "01997e76-d124-7592-9cac-2ec05abbca08", "/work", "0.40.0", "fix/x")
    assert meta.drift == ""
    turn = parse(line("turn_context", {"cwd": "/work", "approval_policy": "on-request",
                                       "model": "gpt-5-codex", "effort": "high"}))
    assert (turn.model, turn.cwd, turn.drift) == ("gpt-5-codex", "/work", "")


def test_messages_of_every_role_and_part():
    dev = parse(item({"type": "message", "role": "developer",
                      "content": [{"type": "input_text", "text": "be careful"}]}))
    assert (dev.role, dev.text, dev.subtype) == ("system", "be careful", "message")
    user = parse(item({"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}))
    assert user.role == "user" and user.content[1].kind == "image"
    assert (user.content[1].image.media_type, user.content[1].image.size_bytes) == (
        "image/png", 8)
    answer = parse(item({"type": "message", "role": "assistant", "id": "msg_1",
                         "content": [{"type": "output_text", "text": "done"}]}))
    assert (answer.role, answer.text, answer.drift) == ("assistant", "done", "")


def test_reasoning_summaries_are_thinking():
    rec = parse(item({"type": "reasoning", "summary": [
        {"type": "summary_text", "text": "**Assessing**"}], "content": None,
        "encrypted_content": "gAAAA"}))
    assert [(b.kind, b.text) for b in rec.content] == [("thinking", "**Assessing**")]


def test_tool_calls_and_their_outputs():
    call = parse(item({"type": "function_call", "name": "shell", "call_id": "call_1",
                       "arguments": "{\"command\":[\"ls\"]}"}))
    use = call.content[0]
    assert (use.kind, use.tool_use_id, use.tool_name) == ("tool_use", "call_1", "shell")
    assert orjson.loads(use.tool_input_json) == {"command": ["ls"]}
    broken = parse(item({"type": "function_call", "name": "x", "call_id": "c",
                         "arguments": "{not json"}))
    assert orjson.loads(broken.content[0].tool_input_json) == "{not json"
    custom = parse(item({"type": "custom_tool_call", "name": "apply_patch", "call_id": "c2",
                         "input": "*** Begin Patch"}))
    assert orjson.loads(custom.content[0].tool_input_json) == "*** Begin Patch"
    output = parse(item({"type": "function_call_output", "call_id": "call_1",
                         "output": "{\"output\":\"a\\nb\"}"}))
    result = output.content[0]
    assert (output.role, result.kind, result.tool_use_id, result.is_error) == (
        "tool", "tool_result", "call_1", False)
    failed = parse(item({"type": "custom_tool_call_output", "call_id": "c2",
                         "output": {"content": [{"type": "input_text", "text": "no"}],
                                    "success": False}}))
    assert failed.content[0].is_error and failed.content[0].text == "no"


def test_other_response_items_are_known():
    shell = parse(item({"type": "local_shell_call", "call_id": "s1", "status": "completed",
                        "action": {"type": "exec", "command": ["ls"]}}))
    assert (shell.content[0].tool_name, shell.drift) == ("local_shell", "")
    search = parse(item({"type": "web_search_call", "id": "ws_1", "status": "completed",
                         "action": {"type": "search", "query": "q"}}))
    assert (search.content[0].kind, search.drift) == ("server_tool_use", "")
    assert parse(item({"type": "compaction", "encrypted_content": "x"})).drift == ""


@pytest.mark.parametrize("kind", sorted(codex.EVENT_TYPES))
def test_every_known_event(kind):
    rec = parse(event({"type": kind, "message": "m", "text": "t", "reason": "interrupted"}))
    assert (rec.subtype, rec.drift) == (kind, "")


def test_token_count_usage_in_our_semantics():
    rec = parse(event({"type": "token_count", "info": {
        "total_token_usage": {"input_tokens": 9000, "cached_input_tokens": 5000,
                              "output_tokens": 900, "reasoning_output_tokens": 700,
                              "total_tokens": 9900},
        "last_token_usage": {"input_tokens": 2895, "cached_input_tokens": 2560,
                             "output_tokens": 246, "reasoning_output_tokens": 192,
                             "total_tokens": 3141},
        "model_context_window": 272000}, "rate_limits": {"primary_used_percent": 0.0}}))
    u = rec.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.output_tokens,
            u.reasoning_output_tokens, u.cache_creation_input_tokens) == (335, 2560, 246, 192, 0)
    assert rec.model == ""  # the preceding turn_context names it
    assert parse(event({"type": "token_count", "info": None})).usage is None
    odd = parse(event({"type": "token_count", "model": "gpt-5", "info": {"last_token_usage": {
        "prompt_tokens": 10, "cached_tokens": 50, "completion_tokens": 4}}}))
    assert (odd.usage.input_tokens, odd.usage.cache_read_input_tokens,
            odd.usage.output_tokens, odd.model) == (0, 10, 4, "gpt-5")
    older = parse(event({"type": "token_count", "usage": {"prompt_tokens": 100,
                                                         "completion_tokens": 50}}))
    assert (older.usage.input_tokens, older.usage.output_tokens) == (100, 50)


def test_text_events_and_compaction():
    said = parse(event({"type": "user_message", "message": "fix it", "images": []}))
    assert (said.role, said.text) == ("user", "fix it")
    answered = parse(event({"type": "agent_message", "message": "fixed"}))
    assert (answered.role, answered.text) == ("assistant", "fixed")
    thought = parse(event({"type": "agent_reasoning", "text": "**Planning**"}))
    assert thought.content[0].kind == "thinking"
    compacted = parse(line("compacted", {"message": "summary so far",
                                         "replacement_history": []}))
    assert (compacted.text, compacted.drift) == ("summary so far", "")
    record = parse(line("token_usage_record", {"response_id": "r", "usage": {
        "input_tokens": 5}}))
    assert record.drift == "" and record.usage is None


def test_unknown_codex_lines_are_kept_and_marked():
    assert parse(item({"type": "hologram_call"})).drift == "unknown_codex_payload:hologram_call"
    assert parse(event({"type": "hologram"})).drift == "unknown_codex_payload:hologram"
    rec = parse(line("thread_spawned", {"x": 1}), hint=CODEX)
    assert (rec.format, rec.type, rec.drift) == (CODEX, "thread_spawned", "unknown_type")


def test_codex_session_of_a_rollout_and_reparse():
    assert session_of(CODEX_POS.path, "") == "01997e76-d124-7592-9cac-2ec05abbca08"
    raw = orjson.dumps(item({"type": "function_call", "name": "shell", "call_id": "c",
                             "arguments": "{}"}))
    assert reparse_line(raw, CODEX_POS, CODEX) == parse_line(raw, CODEX_POS)


# --- Gemini -------------------------------------------------------------------------------------

def gemini_message(**fields) -> dict:
    return {"id": "4a01400c", "timestamp": "2026-01-30T06:08:57.215Z", "type": "gemini",
            "content": "", "model": "gemini-3-pro-preview",
            "thoughts": [{"subject": "Planning", "description": "list first",
                          "timestamp": "2026-01-30T06:08:55.980Z"}],
            "tokens": {"input": 14046, "output": 25, "cached": 0, "thoughts": 251, "tool": 0,
                       "total": 14322},
            "toolCalls": [
                {"id": "activate_skill-1", "name": "activate_skill", "args": {"name": "f"},
                 "result": [{"functionResponse": {"id": "activate_skill-1",
                                                  "name": "activate_skill",
                                                  "response": {"error": "Skill not found"}}}],
                 "status": "error", "resultDisplay": "Skill not found"},
                {"id": "list_directory-2", "name": "list_directory", "args": {"dir_path": "."},
                 "result": [{"functionResponse": {"id": "list_directory-2",
                                                  "name": "list_directory",
                                                  "response": {"output": "[DIR] .gemini"}}}],
                 "status": "success", "agentId": "sub-1"},
                {"id": "pending-3", "name": "run", "args": {}, "status": "executing"}]} | fields


DOCUMENT = {"sessionId": "7befeae5-6b85", "projectHash": "f360e83f",
            "startTime": "2026-01-30T06:08:50Z", "lastUpdated": "2026-01-30T06:17:50Z",
            "messages": [
                {"id": "2de87284", "timestamp": "2026-01-30T06:08:50Z", "type": "user",
                 "content": "Write the frontend"},
                gemini_message(),
                {"id": "i1", "timestamp": "2026-01-30T06:09:00Z", "type": "info",
                 "content": "Request cancelled."}]}


def test_a_legacy_document_is_one_record_per_message():
    raw = orjson.dumps(DOCUMENT)
    position = Position("/g/.gemini/tmp/f360/chats/session-2026-01-30T06-08-7befeae5.json",
                        0, 1, len(raw))
    records = parse(raw, position)
    assert isinstance(records, list) and len(records) == 4
    metadata, prompt, answer, info = records
    assert (metadata.type, metadata.session_id, metadata.timestamp, metadata.drift) == (
        "metadata", "7befeae5-6b85", "2026-01-30T06:08:50Z", "")
    assert orjson.loads(metadata.raw) == {"sessionId": "7befeae5-6b85", "projectHash": "f360e83f",
                                          "startTime": "2026-01-30T06:08:50Z"}
    for rec, message in zip(records[1:], DOCUMENT["messages"], strict=True):
        assert rec.raw == orjson.dumps(message) and rec.source is position
        assert (rec.format, rec.session_id, rec.uuid) == (GEMINI, "7befeae5-6b85", "")
        assert rec.api_message_id == message["id"] and rec.drift == ""
    assert (prompt.role, prompt.text) == ("user", "Write the frontend")
    assert (info.role, info.text) == ("system", "Request cancelled.")
    assert (answer.role, answer.model) == ("assistant", "gemini-3-pro-preview")
    kinds = [(b.kind, b.tool_use_id) for b in answer.content]
    assert kinds == [("thinking", ""), ("tool_use", "activate_skill-1"),
                     ("tool_result", "activate_skill-1"), ("tool_use", "list_directory-2"),
                     ("tool_result", "list_directory-2"), ("tool_use", "pending-3")]
    assert answer.content[0].text == "Planning: list first"
    failed, listed = answer.content[2], answer.content[4]
    assert (failed.text, failed.is_error) == ("Skill not found", True)
    assert (listed.text, listed.is_error, listed.agent_id) == ("[DIR] .gemini", False, "sub-1")
    u = answer.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
            u.reasoning_output_tokens) == (14046, 276, 0, 251)


def test_gemini_usage_follows_ccusage():
    def usage(tokens):
        return parse(gemini_message(tokens=tokens, toolCalls=[]), CHAT_POS).usage

    # total = input + output + thoughts + tool: the cached part is inside input.
    inside = usage({"input": 1000, "output": 10, "cached": 600, "thoughts": 5, "tool": 20,
                    "total": 1035})
    assert (inside.input_tokens, inside.cache_read_input_tokens, inside.output_tokens,
            inside.reasoning_output_tokens) == (420, 600, 15, 5)
    # A total that counts cached on top: input is already without it.
    apart = usage({"input": 400, "output": 10, "cached": 600, "total": 1010})
    assert (apart.input_tokens, apart.cache_read_input_tokens) == (400, 600)
    assert parse(gemini_message(tokens=None, toolCalls=[]), CHAT_POS).usage is None


def test_the_jsonl_chat_format():
    metadata = parse({"sessionId": "s-1", "projectHash": "abc", "startTime": "2026-04-10T10:00Z",
                      "lastUpdated": "2026-04-10T10:00Z", "kind": "main"}, CHAT_POS)
    assert (metadata.type, metadata.session_id, metadata.drift) == ("metadata", "s-1", "")
    prompt = parse({"id": "m1", "timestamp": "t", "type": "user",
                    "content": [{"text": "hi"}, {"text": "there"}]}, CHAT_POS, GEMINI)
    assert (prompt.format, prompt.role, prompt.text) == (GEMINI, "user", "hi\nthere")
    first = parse(gemini_message(content="draft", toolCalls=[]), CHAT_POS, GEMINI)
    again = parse(gemini_message(content="final", toolCalls=[]), CHAT_POS, GEMINI)
    assert first.api_message_id == again.api_message_id and first.raw != again.raw
    keys = {message_key(r.uuid, "p", CHAT_POS.path, offset, r.raw)
            for offset, r in ((10, first), (20, again))}
    assert len(keys) == 2  # every appended version is stored
    patch = parse({"$set": {"sessionId": "s-2", "lastUpdated": "2026-04-10T11:00Z",
                            "summary": "Frontend work"}}, CHAT_POS)
    assert (patch.type, patch.session_id, patch.text, patch.drift) == (
        "$set", "s-2", "Frontend work", "")
    rewind = parse({"$rewindTo": "m1"}, CHAT_POS)
    assert (rewind.type, rewind.text, rewind.drift, rewind.api_message_id) == (
        "$rewindTo", "m1", "", "")


def test_gemini_parts_and_unknown_types():
    rec = parse({"id": "m", "type": "user", "content": [
        {"text": "see"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"thought": True, "text": "secret"}, {"hologram": {}}]}, CHAT_POS, GEMINI)
    assert [b.kind for b in rec.content] == ["text", "image", "thinking", "other"]
    assert rec.drift == "unknown_block:hologram"
    odd = parse({"id": "m", "type": "narration", "content": "x"}, CHAT_POS, GEMINI)
    assert (odd.format, odd.drift) == (GEMINI, "unknown_type")


def test_a_stored_document_message_reparses_as_gemini():
    records = parse(orjson.dumps(DOCUMENT), CHAT_POS)
    for rec in records:
        again = reparse_line(rec.raw, rec.source, GEMINI)
        assert again.format == GEMINI
        if rec.type != "metadata":
            assert again.session_id == ""  # named by the document: the store keeps its own
            again.session_id = rec.session_id
        assert again == rec
    empty = parse(orjson.dumps({**DOCUMENT, "messages": [], "summary": "Nothing yet"}), CHAT_POS)
    assert [(r.type, r.text) for r in empty] == [("metadata", "Nothing yet")]
    # Without the stored format, a message that lacks an id reads as a generic user line.
    raw = orjson.dumps({"timestamp": "t", "type": "user", "content": "hi"})
    assert parse_line(raw, CHAT_POS).format == GENERIC
    assert reparse_line(raw, CHAT_POS, GEMINI).format == GEMINI


# --- generic chat lines -------------------------------------------------------------------------

def test_generic_chat_lines():
    said = parse({"role": "user", "content": "hi", "timestamp": "t", "model": "m", "id": "g1"})
    assert (said.format, said.type, said.role, said.text, said.uuid, said.api_message_id,
            said.model) == (GENERIC, "user", "user", "hi", "", "g1", "m")
    typed = parse({"type": "assistant", "content": [{"type": "text", "text": "yo"}]})
    assert (typed.format, typed.role, typed.text, typed.drift) == (GENERIC, "assistant", "yo",
                                                                   "")
    legacy = parse({"content": "just text"})
    assert (legacy.type, legacy.role, legacy.text) == ("message", "", "just text")
    calls = parse({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    assert (calls.content[0].kind, calls.content[0].tool_name) == ("tool_use", "get_weather")
    assert orjson.loads(calls.content[0].tool_input_json) == {"city": "Paris"}
    answer = parse({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    assert (answer.role, answer.content[0].kind, answer.content[0].tool_use_id,
            answer.content[0].text) == ("tool", "tool_result", "call_1", "sunny")
    unknown = parse({"silly": "this"})
    assert (unknown.type, unknown.drift, unknown.format) == ("unknown", "unknown_type", GENERIC)
    odd = parse({"type": "banner", "content": "x"})
    assert odd.drift == "unknown_type" and odd.text == "x"


# --- the real corpus ----------------------------------------------------------------------------

def test_corpus_codex_and_gemini_files_carry_usage(corpus: Path):
    from test_parser_claude import corpus_records

    by_file: dict[Path, list[Record]] = {}
    for path, rec in corpus_records(corpus):
        if isinstance(rec, Record) and rec.format in (CODEX, GEMINI):
            by_file.setdefault(path, []).append(rec)
    assert by_file, "the corpus holds Codex and Gemini files"
    for path, records in by_file.items():
        token_lines = [r for r in records if r.subtype == "token_count" or "tokens" in
                       orjson.loads(r.raw)]
        with_data = [r for r in token_lines if _has_token_data(r)]
        assert all(r.usage is not None for r in with_data), path.name
        assert with_data, path.name
        assert all(r.drift == "" for r in records), path.name


def _has_token_data(rec: Record) -> bool:
    obj = orjson.loads(rec.raw)
    payload = obj.get("payload") if isinstance(obj.get("payload"), dict) else obj
    return bool(payload.get("tokens") or payload.get("usage") or (
        isinstance(payload.get("info"), dict) and payload["info"].get("last_token_usage")))
