"""The line parser never raises and never loses a well-formed record."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.parser import parse_line
from threadline import convert
from threadline.domain.records import LineError, Position, Record

POS = Position("/p/s.jsonl", 0, 1, 0)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
claude_keys = st.sampled_from(["type", "uuid", "parentUuid", "sessionId", "message", "content",
                               "role", "timestamp", "usage", "isSidechain", "payload", "cwd"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw):
    assert isinstance(parse_line(raw, POS), Record | LineError)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(claude_keys | st.text(max_size=8), json_values, max_size=8))
def test_every_json_object_becomes_a_record(obj):
    raw = orjson.dumps(obj)
    result = parse_line(raw, POS)
    assert isinstance(result, Record)
    assert result.raw == raw
    assert convert.message_from_pb(convert.message_to_pb(result)).raw == raw


def test_a_claude_assistant_line():
    line = orjson.dumps({
        "type": "assistant", "uuid": "u", "parentUuid": "p", "sessionId": "s",
        "requestId": "req_1", "timestamp": "2026-01-01T00:00:00Z",
        "message": {"id": "msg_1", "role": "assistant", "model": "claude-opus-4-6",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                 "input": {"command": "ls"}}],
                    "usage": {"input_tokens": 3, "output_tokens": 9,
                              "cache_creation_input_tokens": 10,
                              "cache_creation": {"ephemeral_1h_input_tokens": 10},
                              "cache_read_input_tokens": 100}}})
    rec = parse_line(line, POS)
    assert (rec.uuid, rec.parent_uuid, rec.session_id, rec.role) == ("u", "p", "s", "assistant")
    assert (rec.api_message_id, rec.request_id, rec.model) == ("msg_1", "req_1", "claude-opus-4-6")
    assert rec.content[0].kind == "tool_use" and rec.content[0].tool_name == "Bash"
    assert rec.usage.cache_creation_1h_tokens == 10 and rec.usage.cache_read_input_tokens == 100


def test_numbers_beyond_64_bits_do_not_escape_the_parser():
    line = (b'{"type": "assistant", "uuid": "u", "message": {"role": "assistant", "usage": '
            b'{"input_tokens": 18446744073709551616, "output_tokens": 1e19, '
            b'"cache_read_input_tokens": 7.0}}}')
    rec = parse_line(line, POS)
    assert (rec.usage.input_tokens, rec.usage.output_tokens) == (0, 0)
    assert rec.usage.cache_read_input_tokens == 7
    convert.message_to_pb(rec)  # fits the contract


def test_bad_lines_say_why():
    assert parse_line(b"{oops", POS).reason == "invalid_json"
    assert parse_line(b'{"a": "\xff"}', POS).reason == "invalid_utf8"
    assert parse_line(b"[1]", POS).reason == "not_an_object"
    deep = b"[" * 100_000 + b"]" * 100_000
    assert isinstance(parse_line(deep, POS), LineError)
