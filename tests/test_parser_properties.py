"""Properties of reading untrusted transcripts: the parser never raises, every JSON object
becomes a storable record, a well-formed record loses nothing, and the tailer finds every line
at its exact place whatever the read and write boundaries."""

from __future__ import annotations

import json
import os
import tempfile
import threading

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.ingest.parser import parse_line
from services.ingest.tailer import FileTail
from services.store import rows
from threadline import convert
from threadline.domain.records import LineError, Position, Record

POS = Position("/p/s.jsonl", 0, 1, 0)

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=25,
)


def dumps(value: object) -> bytes:
    """JSON text of any generated value (orjson refuses integers beyond 64 bits)."""
    return json.dumps(value, ensure_ascii=False).encode()


def keyed(keys: list[str], values=json_values, **fixed) -> st.SearchStrategy[dict]:
    """Objects using these keys (each optional) with arbitrary values, plus fixed ones."""
    return st.fixed_dictionaries(fixed, optional={k: values for k in keys})


CLAUDE_BLOCKS = ["text", "thinking", "tool_use", "tool_result", "image", "server_tool_use",
                 "redacted_thinking", "document", "mystery"]
claude_blocks = st.one_of(
    keyed(["text", "thinking", "id", "name", "input", "tool_use_id", "content", "is_error",
           "source", "signature"], type=st.sampled_from(CLAUDE_BLOCKS) | json_values),
    json_values,
)
claude_messages = keyed(
    ["role", "model", "id", "type", "stop_reason", "usage", "container"],
    content=st.text(max_size=30) | st.lists(claude_blocks, max_size=4) | json_values,
) | json_values
claude_objects = keyed(
    ["uuid", "parentUuid", "logicalParentUuid", "sessionId", "agentId", "isSidechain",
     "subtype", "timestamp", "cwd", "gitBranch", "version", "requestId", "isMeta", "content",
     "summary", "leafUuid", "toolUseResult", "data", "attachment", "snapshot", "operation",
     "compactMetadata", "slug", "entrypoint"],
    type=st.sampled_from(["user", "assistant", "system", "summary", "progress", "attachment",
                          "file-history-snapshot", "queue-operation", "last-prompt",
                          "custom-title", "started", "result", "never-seen"]) | json_values,
    message=claude_messages,
)
CODEX_PAYLOADS = ["message", "reasoning", "function_call", "function_call_output",
                  "custom_tool_call", "custom_tool_call_output", "local_shell_call",
                  "web_search_call", "user_message", "agent_message", "agent_reasoning",
                  "token_count", "turn_aborted", "task_started", "task_complete", "mystery"]
codex_objects = st.fixed_dictionaries({
    "timestamp": st.text(max_size=25) | json_values,
    "type": st.sampled_from(["session_meta", "response_item", "event_msg", "turn_context",
                             "compacted", "never-seen"]),
    "payload": keyed(["role", "content", "name", "arguments", "input", "call_id", "output",
                      "info", "id", "cwd", "cli_version", "git", "model", "summary",
                      "encrypted_content", "message", "replacement_history", "source"],
                     type=st.sampled_from(CODEX_PAYLOADS) | json_values) | json_values,
})
gemini_messages = keyed(
    ["id", "timestamp", "content", "toolCalls", "thoughts", "tokens", "model", "displayName"],
    type=st.sampled_from(["user", "gemini", "info", "error", "warning"]) | json_values,
)
gemini_objects = st.one_of(
    gemini_messages,
    keyed(["sessionId", "projectHash", "startTime", "lastUpdated", "summary", "kind"],
          messages=st.lists(gemini_messages, max_size=3) | json_values),
    st.fixed_dictionaries({"$set": json_values}),
    st.fixed_dictionaries({"$rewindTo": json_values}),
)
any_objects = st.one_of(
    st.dictionaries(st.text(max_size=10), json_values, max_size=8),
    claude_objects, codex_objects, gemini_objects,
    keyed(["role", "content", "tool_calls", "tool_call_id", "name", "id", "model"]),
)


def records_of(result) -> list[Record]:
    """The parser's answer for one line as a list of records (it may read one as several)."""
    if isinstance(result, list):
        assert result and all(isinstance(r, Record) for r in result)
        return result
    assert isinstance(result, Record), result
    return [result]


def storable(record: Record) -> None:
    """The record fits the contract and the store's row, as the pipeline will need."""
    rows.message_row(convert.message_to_pb(record))


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw):
    result = parse_line(raw, Position("/p/s.jsonl", 7, 3, len(raw)))
    if isinstance(result, LineError):
        assert result.reason and result.reason.isidentifier()
        assert result.excerpt == raw[:len(result.excerpt)]
        assert (result.source.byte_offset, result.source.line_number) == (7, 3)
    else:
        for record in records_of(result):
            storable(record)


@st.composite
def damaged_lines(draw) -> bytes:
    """A JSON object line, cut, spliced or with bytes overwritten: mostly not JSON any more."""
    raw = dumps(draw(any_objects))
    how = draw(st.sampled_from(["cut", "insert", "overwrite"]))
    at = draw(st.integers(0, len(raw)))
    if how == "cut":
        return raw[:at]
    junk = draw(st.binary(min_size=1, max_size=6))
    return raw[:at] + junk + raw[at + (len(junk) if how == "overwrite" else 0):]


@given(damaged_lines())
def test_damaged_lines_never_raise(raw):
    result = parse_line(raw, POS)
    if not isinstance(result, LineError):
        for record in records_of(result):
            storable(record)


@given(json_values)
def test_json_that_is_not_an_object_is_an_error(value):
    assume(not isinstance(value, dict))
    raw = dumps(value)
    result = parse_line(raw, POS)
    assert isinstance(result, LineError) and result.reason == "not_an_object"


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(any_objects)
def test_every_json_object_becomes_a_storable_record(obj):
    raw = dumps(obj)
    result = parse_line(raw, POS)
    records = records_of(result)
    if not isinstance(result, list):
        assert records[0].raw == raw
    for record in records:
        storable(record)


ENCODERS = {
    "orjson": orjson.dumps,
    "ascii": lambda o: json.dumps(o, ensure_ascii=True).encode(),
    "spaced": lambda o: json.dumps(o, ensure_ascii=False, indent=None,
                                   separators=(" , ", " : ")).encode(),
}


@st.composite
def claude_lines(draw) -> tuple[bytes, dict]:
    """A well-formed Claude Code user/assistant line, keys in any order, any text."""
    kind = draw(st.sampled_from(["user", "assistant"]))
    texts = draw(st.lists(st.text(), min_size=1, max_size=3))
    as_string = kind == "user" and len(texts) == 1 and draw(st.booleans())
    content = texts[0] if as_string else [{"type": "text", "text": t} for t in texts]
    message = {"role": kind, "content": content}
    if kind == "assistant":
        message.update(id="msg_" + draw(st.text("0123456789abcdef", min_size=8, max_size=8)),
                       type="message", model="claude-opus-4-6", stop_reason=None,
                       usage={"input_tokens": draw(st.integers(0, 2**40)),
                              "output_tokens": draw(st.integers(0, 2**40))})
    fields = {"type": kind, "uuid": str(draw(st.uuids())), "sessionId": str(draw(st.uuids())),
              "parentUuid": draw(st.none() | st.uuids().map(str)), "isSidechain": False,
              "userType": "external", "cwd": draw(st.text(max_size=20)), "version": "2.1.39",
              "timestamp": "2026-03-01T10:00:00.000Z", "message": message}
    order = draw(st.permutations(list(fields)))
    obj = {k: fields[k] for k in order}
    return ENCODERS[draw(st.sampled_from(sorted(ENCODERS)))](obj), obj


@given(claude_lines())
def test_a_well_formed_claude_line_keeps_everything(line):
    raw, obj = line
    (record,) = records_of(parse_line(raw, POS))
    assert record.raw == raw
    assert (record.uuid, record.type, record.role) == (obj["uuid"], obj["type"], obj["type"])
    assert record.session_id == obj["sessionId"]
    assert record.parent_uuid == (obj["parentUuid"] or "")
    assert record.cwd == obj["cwd"]
    content = obj["message"]["content"]
    texts = [content] if isinstance(content, str) else [b["text"] for b in content]
    if len(texts) == 1:
        assert record.text == texts[0]
    else:  # several text blocks: each one, in order
        at = 0
        for text in texts:
            at = record.text.find(text, at)
            assert at >= 0, (text, record.text)
            at += len(text)
    if obj["type"] == "assistant":
        usage = obj["message"]["usage"]
        assert (record.usage.input_tokens, record.usage.output_tokens) == (
            usage["input_tokens"], usage["output_tokens"])
    storable(record)


# --- whole files through the tailer ----------------------------------------------------------

good_lines = claude_lines().map(lambda line: ("good", line[0], line[1]["uuid"]))
# Any JSON object is a record too (a whole chat document may be several), just not one whose
# fields this test can predict.
object_lines = any_objects.map(lambda obj: ("object", dumps(obj), ""))
junk_lines = st.one_of(
    st.binary(min_size=1, max_size=60),
    damaged_lines(),
    json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),
).map(lambda raw: raw.replace(b"\n", b" ")).filter(
    # Junk must be junk: not blank, and not (by chance) a JSON object.
    lambda raw: bool(raw.strip()) and not isinstance(_loads(raw), dict)
).map(lambda raw: ("junk", raw, ""))
blank_lines = st.sampled_from([b"", b" ", b"\t", b"\r", b" " * 9, b"\t \r\x0b\x0c"]).map(
    lambda raw: ("blank", raw, ""))


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(good_lines, object_lines, junk_lines, blank_lines), min_size=1,
                      max_size=12),
       newline_at_end=st.booleans(), data=st.data())
def test_the_tailer_finds_every_line_whatever_the_boundaries(lines, newline_at_end, data):
    content = b"\n".join(raw for _, raw, _ in lines) + (b"\n" if newline_at_end else b"")
    # Where each line is, counted here; then the file is written in random pieces, read
    # after each with random limits, and read once more as a finished file.
    expected_records, expected_errors, good, offset = [], [], {}, 0
    for number, (kind, raw, uid) in enumerate(lines, start=1):
        if kind == "good":
            expected_records.append((number, offset))
            good[number] = (uid, raw)
        elif kind == "object":
            parsed = parse_line(raw, Position("", offset, number, len(raw)), "claude_code")
            expected_records += [(number, offset)] * len(records_of(parsed))
        elif kind == "junk":
            expected_errors.append((number, offset, len(raw)))
        offset += len(raw) + 1
    cuts = sorted(data.draw(st.lists(st.integers(0, len(content)), max_size=6), label="cuts"))
    pieces = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)], strict=True)]
    limits = data.draw(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 300)), min_size=1,
                                max_size=5), label="limits")
    records, errors = [], []

    def read_all(tail: FileTail, final: bool) -> None:
        for i in range(10_000):
            max_lines, max_bytes = limits[i % len(limits)]
            chunk = tail.read(max_lines, max_bytes, final)
            if chunk is None:
                return
            records.extend(chunk.records)
            errors.extend(chunk.errors)
        raise AssertionError("the tailer keeps reporting")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s.jsonl")
        open(path, "wb").close()
        tail = FileTail(path, "p", "claude_code", threading.Lock())
        for piece in pieces:
            with open(path, "ab") as out:
                out.write(piece)
            read_all(tail, final=False)
        read_all(tail, final=True)

    assert [(r.source.line_number, r.source.byte_offset) for r in records] == expected_records
    for r in records:
        line = content[r.source.byte_offset:r.source.byte_offset + r.source.byte_length]
        assert r.source.path == path and b"\n" not in line
        if r.source.line_number in good:
            assert (r.uuid, r.raw) == good[r.source.line_number]
            assert r.source.byte_length == len(r.raw)
    assert [(e.source.line_number, e.source.byte_offset, e.source.byte_length)
            for e in errors] == expected_errors
    for e in errors:
        raw = content[e.source.byte_offset:e.source.byte_offset + e.source.byte_length]
        assert e.excerpt == raw[:len(e.excerpt)] and e.excerpt
    last_kind = lines[-1][0]
    if not newline_at_end and last_kind == "junk" and errors[-1].reason != "not_an_object":
        assert errors[-1].reason == "truncated_tail"
