"""Generic chat lines: which ids are storage keys, and conversations held in `messages`."""

from __future__ import annotations

from pathlib import Path

import orjson
from test_import import stored, threadline

from services.analysis.normalize import message_key
from services.ingest.parser import parse_line, reparse_line
from threadline import convert
from threadline.domain.records import GEMINI, GENERIC, Position, Record

POS = Position("/p/chat.jsonl", 0, 1, 0)


def parse(obj: dict, position: Position = POS, hint: str = ""):
    result = parse_line(orjson.dumps(obj), position, hint)
    for rec in result if isinstance(result, list) else [result]:
        assert isinstance(rec, Record), rec
        convert.message_to_pb(rec)
    return result


def test_only_globally_unique_ids_become_the_uuid():
    numbered = parse({"id": 1, "role": "user", "content": "hi"})
    assert (numbered.uuid, numbered.api_message_id) == ("", "1")
    short = parse({"id": "m1", "role": "user", "content": "hi"})
    assert (short.uuid, short.api_message_id) == ("", "m1")
    uuid = "0b7c2f4e-3a1d-4c5b-9e8f-112233445566"
    assert parse({"id": uuid, "role": "user", "content": "hi"}).uuid == uuid
    for ident in ("chatcmpl-9ABCdefGHIjkl012", "msg_01XyZabcDEF23456"):
        rec = parse({"id": ident, "role": "assistant", "content": "yo"})
        assert (rec.uuid, rec.api_message_id) == (ident, ident)
    assert parse({"id": "chatcmpl-1", "role": "user", "content": "hi"}).uuid == ""  # too short
    named = parse({"uuid": "u-1", "id": 7, "role": "user", "content": "hi"})
    assert (named.uuid, named.api_message_id) == ("u-1", "7")


def test_numbered_ids_in_two_files_are_all_stored(tmp_path: Path):
    root = tmp_path / "chats"
    (root / "proj").mkdir(parents=True)
    lines = {}
    for name in ("a", "b"):
        path = root / "proj" / f"{name}.jsonl"
        said = [{"id": i, "role": "user" if i == 1 else "assistant", "content": f"{name} {i}"}
                for i in (1, 2)]
        path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in said))
        lines[str(path)] = [m["content"] for m in said]
    db = tmp_path / "t.db"
    threadline("import", "--db", str(db), "--json", str(root))
    records, errors = stored(db)
    assert errors == set()
    got: dict[str, list[str]] = {}
    for r in records:
        got.setdefault(r["source"]["path"], []).append(r["text"])
    assert got == lines
    assert sorted(r["api_message_id"] for r in records) == ["1", "1", "2", "2"]
    assert all(r["format"] == GENERIC and r["uuid"] == "" for r in records)


CONVERSATION = {"messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
    {"role": "user", "content": "hi"},
]}


def test_an_openai_conversation_is_one_generic_record_per_message():
    raw = orjson.dumps(CONVERSATION)
    position = Position("/p/chat.jsonl", 40, 2, len(raw))
    records = parse(CONVERSATION, position)
    assert isinstance(records, list) and len(records) == 4
    assert [(r.format, r.type, r.role, r.text, r.drift) for r in records] == [
        (GENERIC, "system", "system", "You are terse.", ""), (GENERIC, "user", "user", "hi", ""),
        (GENERIC, "assistant", "assistant", "hello", ""), (GENERIC, "user", "user", "hi", "")]
    assert all(r.source is position for r in records)
    for rec, message in zip(records, CONVERSATION["messages"], strict=True):
        assert orjson.loads(rec.raw) == message
        assert reparse_line(rec.raw, position, GENERIC) == rec
    # The repeated "hi" is a message of its own, under a key of its own.
    keys = {message_key(r.uuid, "p", position.path, position.byte_offset, r.raw)
            for r in records}
    assert len(keys) == 4


def test_a_conversation_keeps_its_session_and_odd_items():
    records = parse({"session_id": "s-9", "messages": [{"role": "user", "content": "q"}, "x"]})
    assert [(r.type, r.session_id, r.drift) for r in records] == [
        ("user", "s-9", ""), ("str", "s-9", "unknown_type")]
    empty = parse({"messages": []})
    assert [(r.type, r.format, r.text, r.drift) for r in empty] == [
        ("message", GENERIC, "", "")]
    assert empty[0].raw == b'{"messages":[]}'


def test_messages_make_a_gemini_document_only_with_its_ids_or_in_a_gemini_file():
    gemini = parse({"sessionId": "s", "messages": [{"id": "m1", "type": "user", "content": "hi"}]})
    assert [(r.format, r.type) for r in gemini] == [(GEMINI, "metadata"), (GEMINI, "user")]
    in_file = parse({"messages": [{"id": "m1", "type": "user", "content": "hi"}]},
                    Position("/g/.gemini/tmp/f/chats/session-1.json", 0, 1, 0), GEMINI)
    assert [r.format for r in in_file] == [GEMINI, GEMINI]
    openai = parse({"messages": [{"role": "user", "content": "hi"}]})
    assert [(r.format, r.role, r.text, r.drift) for r in openai] == [
        (GENERIC, "user", "hi", "")]
