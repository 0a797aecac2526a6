"""The thin normalisation pass: keys, sessions, tool-call halves."""

from services.analysis import normalize


def test_uuid_is_the_key_when_present():
    assert normalize.message_key("u-1", "p", "/a/s.jsonl", 0, b"{}") == "u-1"


def test_key_without_uuid_is_stable_and_distinguishes_lines():
    key = normalize.message_key("", "p", "/a/s.jsonl", 10, b'{"type":"mode"}')
    assert key.startswith("line:")
    # Same file name, offset and bytes under another folder: the same record.
    assert key == normalize.message_key("", "p", "/copy/s.jsonl", 10, b'{"type":"mode"}')
    # An exact re-emit at another offset is another record.
    assert key != normalize.message_key("", "p", "/a/s.jsonl", 99, b'{"type":"mode"}')
    assert key != normalize.message_key("", "q", "/a/s.jsonl", 10, b'{"type":"mode"}')


def test_records_naming_no_session_belong_to_the_file_named_after_one():
    assert normalize.session_of("/p/abc.jsonl", "s-1") == "s-1"
    assert normalize.session_of("/p/abc.jsonl", "") == "abc"


def test_tool_call_halves():
    use = normalize.tool_use("t1", "s", "Bash", b'{"command":"ls"}', "k1", "2026-01-01T00:00:00Z")
    result = normalize.tool_result("t1", "s", True, "k2", "2026-01-01T00:00:01Z")
    assert use.has_use and not use.has_result and use.name == "Bash"
    assert result.has_result and result.is_error and result.result_message_key == "k2"
