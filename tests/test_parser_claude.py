"""Claude Code records, 1.0 to 2.1.x: every record type, block type and subagent layout."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from services.analysis.normalize import session_of
from services.ingest.discovery import is_document, source_format
from services.ingest.formats import claude, codex, gemini
from services.ingest.parser import parse_line, reparse_line
from threadline import convert
from threadline.domain.records import LineError, Position, Record

SID = "0b7d0e6c-5b86-4c73-9f0e-2f0d1c6a3e11"
POS = Position(f"/p/-home-u-proj/{SID}.jsonl", 0, 1, 0)


def envelope(kind: str, **fields) -> dict:
    return {"parentUuid": "p1", "isSidechain": False, "userType": "external", "cwd": "/home/u",
            "sessionId": SID, "version": "2.1.39", "gitBranch": "main", "type": kind,
            "uuid": "u1", "timestamp": "2026-02-12T16:02:48.183Z", **fields}


def parse(obj: dict | bytes, position: Position = POS) -> Record:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    rec = parse_line(raw, position)
    assert isinstance(rec, Record), rec
    assert rec.raw == raw
    convert.message_to_pb(rec)  # whatever was parsed fits the contract
    return rec


def user(content, **fields) -> dict:
    return envelope("user", message={"role": "user", "content": content}, **fields)


def assistant(*blocks: dict, **fields) -> dict:
    return envelope("assistant", requestId="req_1", message={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
        "content": list(blocks), "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 3, "cache_creation_input_tokens": 10,
                  "cache_read_input_tokens": 100, "output_tokens": 9, "service_tier": "standard",
                  "cache_creation": {"ephemeral_5m_input_tokens": 4,
                                     "ephemeral_1h_input_tokens": 6}}}, **fields)


# --- user and assistant lines ---------------------------------------------------------------

def test_a_typed_prompt_keeps_the_envelope():
    rec = parse(user("hello there", isMeta=False))
    assert (rec.type, rec.role, rec.text, rec.drift) == ("user", "user", "hello there", "")
    assert (rec.uuid, rec.parent_uuid, rec.session_id) == ("u1", "p1", SID)
    assert (rec.cwd, rec.git_branch, rec.version) == ("/home/u", "main", "2.1.39")
    assert rec.timestamp == "2026-02-12T16:02:48.183Z"
    assert [b.kind for b in rec.content] == ["text"] and not rec.is_meta


def test_an_assistant_response_with_every_main_block():
    rec = parse(assistant({"type": "thinking", "thinking": "hmm", "signature": "s"},
                          {"type": "text", "text": "Let me look."},
                          {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                           "input": {"command": "ls"}, "caller": {"type": "direct"}}))
    assert [b.kind for b in rec.content] == ["thinking", "text", "tool_use"]
    assert rec.content[0].text == "hmm" and rec.text == "Let me look."
    assert orjson.loads(rec.content[2].tool_input_json) == {"command": "ls"}
    assert (rec.api_message_id, rec.request_id, rec.model) == ("msg_1", "req_1",
                                                               "claude-opus-4-6")
    assert rec.stop_reason == "end_turn" and rec.drift == ""
    u = rec.usage
    assert (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens,
            u.cache_read_input_tokens) == (3, 9, 10, 100)
    assert (u.cache_creation_5m_tokens, u.cache_creation_1h_tokens, u.service_tier) == (
        4, 6, "standard")


def test_flags_that_say_a_line_is_not_human_input_or_not_a_real_answer():
    compact = parse(user("This session is being continued ...", isCompactSummary=True,
                         isVisibleInTranscriptOnly=True, parentUuid=None))
    assert (compact.subtype, compact.is_meta, compact.parent_uuid) == ("compact_summary", True,
                                                                       "")
    assert parse(user("Caveat: ...", isMeta=True)).is_meta
    error = parse(assistant({"type": "text", "text": "API Error: 529"}, isApiErrorMessage=True,
                            error="rate_limit"))
    assert error.subtype == "api_error_message" and error.drift == ""
    side = parse(user("Warmup", isSidechain=True))
    assert side.is_sidechain


def test_tool_results_as_string_and_as_block_list():
    png = base64.b64encode(b"\x89PNG" + bytes(200)).decode()
    rec = parse(user([
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True, "content": [
            {"type": "text", "text": "first"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": png}},
            {"type": "tool_reference", "tool_name": "WebSearch"},
            {"type": "text", "text": "second"}]},
    ]))
    first, second = rec.content
    assert (first.kind, first.text, first.tool_use_id, first.is_error) == (
        "tool_result", "ok", "toolu_1", False)
    assert second.is_error and second.text == "first\nWebSearch\nsecond"
    assert second.image.media_type == "image/png" and second.image.size_bytes == 204
    assert rec.drift == ""


def test_an_image_is_a_reference_never_its_bytes():
    data = base64.b64encode(bytes(range(256)) * 40).decode()
    rec = parse(user([{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                  "data": data}},
                      {"type": "text", "text": "what is this?"}]))
    image = rec.content[0].image
    assert (image.media_type, image.source_type, image.size_bytes) == ("image/jpeg", "base64",
                                                                       10240)
    assert len(image.sha256) == 64
    assert data.encode() not in convert.message_to_pb(rec, include_raw=False).SerializeToString()


def test_server_side_tool_blocks_are_known():
    rec = parse(assistant(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "advisor", "input": {"q": 1}},
        {"type": "advisor_tool_result", "tool_use_id": "srvtoolu_1",
         "content": {"type": "advisor_result", "text": "consider X"}},
        {"type": "redacted_thinking", "data": "xxx"},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_2", "content": [
            {"type": "web_search_result", "title": "A page", "url": "https://a"}]}))
    kinds = [(b.kind, b.raw_type) for b in rec.content]
    assert kinds == [("server_tool_use", "server_tool_use"), ("other", "advisor_tool_result"),
                     ("other", "redacted_thinking"), ("other", "web_search_tool_result")]
    assert rec.content[1].text == "consider X" and rec.content[1].tool_use_id == "srvtoolu_1"


def test_an_unknown_block_is_kept_and_marked():
    rec = parse(assistant({"type": "text", "text": "a"}, {"type": "hologram", "x": 1}))
    assert rec.drift == "unknown_block:hologram"
    assert rec.content[1].kind == "other" and rec.content[1].raw_type == "hologram"
    assert rec.text == "a"


def test_tool_use_result_in_all_its_shapes():
    line = user([{"type": "tool_result", "tool_use_id": "toolu_t", "content": "done"}])
    linked = parse({**line, "toolUseResult": {"status": "completed", "agentId": "a1b2c3",
                                              "totalTokens": 5, "content": []}})
    assert linked.content[0].agent_id == "a1b2c3"
    rejected = parse({**line, "toolUseResult": "Error: The user doesn't want to proceed"})
    assert not rejected.content[0].is_error  # only the block says whether it failed
    assert rejected.content[0].agent_id == ""
    for shape in ([{"type": "text", "text": "x"}], 42, None, {"agentId": 7}, [[[]]]):
        rec = parse({**line, "toolUseResult": shape})
        assert rec.content[0].text == "done"


# --- persisted outputs ----------------------------------------------------------------------

def _stub(tool_use_id: str, saved_to: str) -> str:
    return (f"<persisted-output>\nOutput too large (141KB). Full output saved to: {saved_to}"
            f"\n\nPreview (first 2KB):\nRUN v4.0.18\n")


def test_a_persisted_output_points_at_the_file_beside_the_session(tmp_path: Path):
    project = tmp_path / "-home-u-proj"
    results = project / SID / "tool-results"
    results.mkdir(parents=True)
    (results / "toolu_big.txt").write_text("the whole output")
    session_file = project / f"{SID}.jsonl"
    elsewhere = f"/home/USER/.claude/projects/-home-u-proj/{SID}/tool-results/toolu_big.txt"
    line = user([{"type": "tool_result", "tool_use_id": "toolu_big",
                  "content": _stub("toolu_big", elsewhere)}])

    rec = parse(line, Position(str(session_file), 0, 1, 0))
    assert rec.content[0].persisted_output_path == str(results / "toolu_big.txt")

    # From a subagent file, the session folder is the one above `subagents`.
    agent_file = project / SID / "subagents" / "agent-a1.jsonl"
    rec = parse(line, Position(str(agent_file), 0, 1, 0))
    assert rec.content[0].persisted_output_path == str(results / "toolu_big.txt")

    # No such file (the folder was not copied): nothing is invented.
    missing = user([{"type": "tool_result", "tool_use_id": "toolu_gone",
                     "content": _stub("toolu_gone", elsewhere)}])
    assert parse(missing, Position(str(session_file), 0, 1, 0)).content[0] \
        .persisted_output_path == ""


def test_a_persisted_output_path_named_by_the_stub_must_be_inside_the_project(tmp_path: Path):
    project = tmp_path / "-home-u-proj"
    (project / "archive").mkdir(parents=True)
    kept = project / "archive" / "toolu_x.txt"
    kept.write_text("out")
    outside = tmp_path / "secret.txt"
    outside.write_text("not ours")
    position = Position(str(project / f"{SID}.jsonl"), 0, 1, 0)
    for named, expected in ((kept, str(kept)), (outside, "")):
        line = user([{"type": "tool_result", "tool_use_id": "toolu_x",
                      "content": _stub("toolu_x", str(named))}])
        assert parse(line, position).content[0].persisted_output_path == expected


# --- system, summary and the small records ------------------------------------------------

@pytest.mark.parametrize("subtype", sorted(claude.SYSTEM_SUBTYPES))
def test_every_known_system_subtype(subtype):
    fields = {"content": "something happened", "level": "info"}
    if subtype:
        fields["subtype"] = subtype
    rec = parse(envelope("system", **fields))
    assert (rec.subtype, rec.role, rec.text, rec.drift) == (subtype, "system",
                                                            "something happened", "")


def test_a_compact_boundary_keeps_its_logical_parent():
    rec = parse(envelope("system", subtype="compact_boundary", parentUuid=None,
                         logicalParentUuid="leaf-9", content="Conversation compacted",
                         compactMetadata={"trigger": "auto", "preTokens": 155000}))
    assert (rec.parent_uuid, rec.logical_parent_uuid) == ("", "leaf-9")


def test_an_unknown_system_subtype_is_drift():
    rec = parse(envelope("system", subtype="teleport", content="x"))
    assert rec.drift == "unknown_subtype:teleport" and rec.text == "x"


def test_a_summary_line():
    rec = parse({"type": "summary", "summary": "Fixing the tailer", "leafUuid": "leaf-1"})
    assert (rec.text, rec.logical_parent_uuid, rec.parent_uuid, rec.drift) == (
        "Fixing the tailer", "leaf-1", "", "")


@pytest.mark.parametrize("kind, field", sorted(claude.METADATA_TYPES.items()))
def test_the_small_metadata_records(kind, field):
    rec = parse({"type": kind, "sessionId": SID, field: "value of " + kind, "leafUuid": "l1"})
    assert (rec.type, rec.session_id, rec.text, rec.drift) == (kind, SID, "value of " + kind,
                                                               "")


def test_snapshots_and_queue_operations():
    snapshot = parse({"type": "file-history-snapshot", "messageId": "m1", "isSnapshotUpdate": False,
                      "snapshot": {"messageId": "m1", "trackedFileBackups": {},
                                   "timestamp": "2026-01-01T00:00:00Z"}})
    assert snapshot.drift == "" and snapshot.timestamp == "2026-01-01T00:00:00Z"
    queued = parse({"type": "queue-operation", "operation": "enqueue", "sessionId": SID,
                    "timestamp": "2026-01-01T00:00:01Z", "content": "and also this"})
    assert (queued.subtype, queued.text, queued.drift) == ("enqueue", "and also this", "")


# --- progress and attachments ---------------------------------------------------------------

def test_hook_progress_names_the_tool_call_it_ran_for():
    rec = parse(envelope("progress", data={"type": "hook_progress", "hookEvent": "PostToolUse",
                                           "hookName": "PostToolUse:Edit", "command": "fmt"},
                         toolUseID="toolu_9", parentToolUseID="toolu_9"))
    assert rec.subtype == "hook_progress" and rec.drift == ""
    marker = rec.content[0]
    assert (marker.kind, marker.raw_type, marker.tool_use_id) == ("other", "hook_progress",
                                                                  "toolu_9")


def test_agent_progress_carries_the_subagent_message_but_not_its_tokens_or_calls():
    inner = {"type": "assistant", "timestamp": "2026-02-12T16:02:51Z", "uuid": "x",
             "requestId": "req_9", "message": {
                 "model": "claude-sonnet-4-5", "id": "msg_9", "role": "assistant",
                 "content": [{"type": "text", "text": "Reading the file"},
                             {"type": "tool_use", "id": "toolu_in", "name": "Read",
                              "input": {"file_path": "/a"}}],
                 "usage": {"input_tokens": 3, "output_tokens": 3}}}
    rec = parse(envelope("progress", parentToolUseID="toolu_task", toolUseID="agent_msg_1",
                         data={"type": "agent_progress", "agentId": "a2898e3", "prompt": "go",
                               "message": inner, "normalizedMessages": []}))
    marker = rec.content[0]
    assert (marker.raw_type, marker.tool_use_id, marker.agent_id) == ("agent_progress",
                                                                      "toolu_task", "a2898e3")
    assert (rec.role, rec.model, rec.text, rec.usage) == ("assistant", "claude-sonnet-4-5",
                                                          "Reading the file", None)
    assert [(b.kind, b.raw_type) for b in rec.content[1:]] == [("text", "text"),
                                                               ("other", "tool_use")]
    assert rec.content[2].tool_use_id == "toolu_in" and rec.drift == ""


def test_unknown_progress_is_drift():
    assert parse(envelope("progress", data={"type": "teleport_progress"})).drift == \
        "unknown_subtype:teleport_progress"


@pytest.mark.parametrize("kind", sorted(claude.ATTACHMENT_TYPES))
def test_every_known_attachment(kind):
    rec = parse(envelope("attachment", attachment={"type": kind, "content": "ctx " + kind}))
    assert (rec.subtype, rec.text, rec.drift) == (kind, "ctx " + kind, "")


def test_a_hook_attachment_names_the_tool_call_it_ran_for():
    hook = parse(envelope("attachment", attachment={
        "type": "hook_success", "hookName": "PostToolUse:Agent", "hookEvent": "PostToolUse",
        "toolUseID": "toolu_7", "content": "status set", "stdout": "status set\n",
        "exitCode": 0}))
    marker = hook.content[0]
    assert (marker.kind, marker.raw_type, marker.tool_use_id) == ("other", "hook_success",
                                                                  "toolu_7")
    assert (hook.text, hook.drift) == ("status set", "")
    plain = parse(envelope("attachment", attachment={"type": "task_reminder", "content": []}))
    assert plain.content == []


def test_an_attachment_text_from_its_main_field_and_unknown_ones():
    hook = parse(envelope("attachment", attachment={
        "type": "hook_non_blocking_error", "hookName": "Stop", "stderr": "boom",
        "stdout": "", "exitCode": 1}))
    assert hook.text == "boom"
    odd = parse(envelope("attachment", attachment={"type": "hologram"}))
    assert odd.drift == "unknown_attachment:hologram"
    assert parse(envelope("attachment", attachment="nope")).drift == "unknown_attachment:"


# --- subagents ------------------------------------------------------------------------------

def test_agent_id_comes_from_the_record_or_else_from_the_file_name():
    nested = Position(f"/p/proj/{SID}/subagents/agent-a881341.jsonl", 0, 1, 0)
    assert parse(user("Warmup"), nested).agent_id == "a881341"
    assert parse(user("Warmup", agentId="a0000ff"), nested).agent_id == "a0000ff"
    flat = Position("/p/proj/agent-1f2e3d4c.jsonl", 0, 1, 0)
    assert parse(assistant({"type": "text", "text": "x"}), flat).agent_id == "1f2e3d4c"
    assert parse(user("main"), POS).agent_id == ""


def test_workflow_journal_lines_belong_to_the_parent_session():
    path = f"/p/proj/{SID}/subagents/workflows/wf_demo01/journal.jsonl"
    position = Position(path, 0, 1, 0)
    started = parse({"type": "started", "key": "v2:hash0", "agentId": "ag000001"}, position)
    result = parse({"type": "result", "key": "v2:hash0", "agentId": "ag000001",
                    "result": {"summary": "done"}}, position)
    for rec in (started, result):
        assert rec.drift == "" and rec.agent_id == "ag000001" and rec.session_id == ""
        assert session_of(path, rec.session_id) == SID
    assert orjson.loads(result.text) == {"summary": "done"}
    # A `result` line that is no journal line (no key) is not taken for one.
    assert parse({"type": "result", "subtype": "success"}).drift == "unknown_type"


def test_sessions_of_subagent_files_and_plain_files():
    assert session_of(f"/p/proj/{SID}/subagents/agent-a1.jsonl", "") == SID
    assert session_of(f"/p/proj/{SID}/subagents/agent-a1.jsonl", "named") == "named"
    assert session_of(f"/p/proj/{SID}.jsonl", "") == SID


# --- drift and hostile input ------------------------------------------------------------------

def test_an_unknown_claude_type_is_kept_with_its_envelope():
    rec = parse(envelope("teleport", payload_x=1))
    assert (rec.type, rec.format, rec.drift, rec.uuid, rec.session_id) == (
        "teleport", "claude_code", "unknown_type", "u1", SID)


def test_wrong_types_everywhere_never_raise():
    hostile = [
        envelope("user", uuid=5, parentUuid=["x"], sessionId={"a": 1}, cwd=None, version=2.5,
                 message={"role": 7, "content": [None, 3, "bare", {"type": 9},
                                                 {"type": "text", "text": {"t": 1}},
                                                 {"type": "tool_result", "content": {"x": 1},
                                                  "tool_use_id": 4, "is_error": "yes"}]},
                 toolUseResult=[1, 2]),
        envelope("assistant", message={"content": "plain", "usage": {
            "input_tokens": "many", "output_tokens": -1, "cache_creation": [1],
            "cache_read_input_tokens": 2**64 - 1}, "model": ["m"], "id": None}),
        envelope("assistant", message={"content": {"type": "text"}, "usage": "lots"}),
        envelope("system", subtype=["x"], content={"nested": [1, {"deep": True}]}),
        envelope("progress", data=[1, 2]),
        envelope("progress", data={"type": "agent_progress", "message": {"message": "str"}}),
        envelope("attachment", attachment={"type": 3, "content": [{"type": "text", "text": 1}]}),
        {"type": "summary", "summary": {"not": "text"}, "leafUuid": 12},
        {"type": "file-history-snapshot", "snapshot": "none"},
        {"type": "queue-operation", "operation": 1, "content": [{"type": "text", "text": "q"}]},
        {"type": "last-prompt", "lastPrompt": None},
        {"type": "user", "uuid": "u", "message": "not an object"},
    ]
    for obj in hostile:
        rec = parse(obj)
        assert isinstance(rec.text, str) and isinstance(rec.uuid, str)
        for b in rec.content:
            assert isinstance(b.text, str) and isinstance(b.tool_use_id, str)
    assert parse(hostile[0]).uuid == "5"
    assert parse(hostile[1]).usage.cache_read_input_tokens == 0


def test_reparse_reads_a_claude_line_as_parse_line_does():
    raw = orjson.dumps(user("again"))
    assert reparse_line(raw, POS, "claude_code") == parse_line(raw, POS)


# --- the real corpus ----------------------------------------------------------------------------

KNOWN = claude.TYPES | codex.TYPES | frozenset(gemini.MESSAGE_TYPES) | {
    gemini.METADATA, gemini.SET, gemini.REWIND}


def corpus_records(corpus: Path):
    """Every record of every transcript in the corpus, read as ingest reads them."""
    files = sorted(p for p in corpus.rglob("*") if p.suffix in (".jsonl", ".json"))
    for path in files:
        hint = source_format(str(path))
        data = path.read_bytes()
        pieces = [data] if is_document(str(path)) else data.split(b"\n")
        for number, raw in enumerate(pieces, 1):
            if raw.strip():
                result = parse_line(raw, Position(str(path), 0, number, len(raw)), hint)
                for rec in result if isinstance(result, list) else [result]:
                    yield path, rec


def test_corpus_known_types_are_never_drift(corpus: Path):
    drifted = [(path.name, rec.type, rec.drift) for path, rec in corpus_records(corpus)
               if isinstance(rec, Record) and rec.type in KNOWN and rec.drift]
    assert drifted == []


def test_corpus_lines_that_are_json_objects_all_become_records(corpus: Path):
    errors = [(path.name, rec.reason) for path, rec in corpus_records(corpus)
              if isinstance(rec, LineError)]
    # The known bad lines: two cut by redaction or a copy mid-write, three non-objects
    # in a hand-made edge-case file.
    assert sorted(reason for _, reason in errors) == ["invalid_json"] * 2 + ["not_an_object"] * 3
