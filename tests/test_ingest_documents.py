"""Gemini's legacy chats: JSON documents found, read whole, and read again when rewritten."""

from __future__ import annotations

from pathlib import Path

import orjson

from services.analysis.normalize import message_key
from services.ingest.discovery import discover, transcript_at
from services.ingest.tailer import Durable, FileTail
from threadline.domain.records import GEMINI


def chat(messages: int, updated: str = "2026-01-30T06:17:50Z") -> dict:
    return {"sessionId": "7befeae5", "projectHash": "f360", "startTime": "2026-01-30T06:08Z",
            "lastUpdated": updated, "messages": [
                {"id": f"m{i}", "timestamp": f"2026-01-30T06:{10 + i}:00Z",
                 "type": "user" if i % 2 == 0 else "gemini", "content": f"message {i}",
                 **({"tokens": {"input": 10, "output": 2, "cached": 0, "total": 12},
                     "model": "gemini-2.5-pro"} if i % 2 else {})}
                for i in range(messages)]}


def pretty(doc: dict) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def read_all(tail: FileTail, final: bool = False):
    records, errors, chunks = [], [], []
    while (chunk := tail.read(10_000, 1 << 30, final)) is not None:
        chunks.append(chunk)
        records += chunk.records
        errors += chunk.errors
    return records, errors, chunks


def keys(records) -> list[str]:
    return [message_key(r.uuid, r.project_key, r.source.path, r.source.byte_offset, r.raw)
            for r in records]


def test_discovery_finds_legacy_chats_and_labels_gemini_files(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    chats = root / "f360" / "chats"
    (chats / "parent-session").mkdir(parents=True)
    legacy = chats / "session-2026-01-30T06-08-7befeae5.json"
    streamed = chats / "session-2026-04-10T10-00-1234abcd.jsonl"
    child = chats / "parent-session" / "child-session.jsonl"
    for f in (legacy, streamed, child):
        f.write_bytes(b"{}")
    (root / "f360" / "logs.json").write_bytes(b"[]")  # prompts only: not a transcript
    (chats / "notes.json").write_bytes(b"{}")

    found = {t.path: t for t in discover([root])}

    assert set(found) == {str(legacy), str(streamed), str(child)}
    assert found[str(legacy)].format == GEMINI and found[str(legacy)].project_key == "f360"
    assert found[str(streamed)].format == GEMINI
    assert transcript_at([root], str(legacy)).format == GEMINI
    # A document named as a root of its own is read too, wherever it is.
    loose = tmp_path / "exported.json"
    loose.write_bytes(b"{}")
    assert [t.path for t in discover([loose])] == [str(loose)]


def test_a_pretty_printed_document_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "chats" / "session-2026-01-30T06-08-7befeae5.json"
    path.parent.mkdir()
    data = pretty(chat(4))
    path.write_bytes(data)
    tail = FileTail(str(path), "f360", GEMINI)

    records, errors, chunks = read_all(tail)

    assert not errors and len(records) == 5
    assert [r.api_message_id for r in records] == ["", "m0", "m1", "m2", "m3"]
    assert records[0].type == "metadata"
    assert all(r.session_id == "7befeae5" and r.format == GEMINI for r in records)
    assert all(r.source.byte_offset == 0 and r.source.byte_length == len(data) for r in records)
    assert records[2].usage.output_tokens == 2
    assert tail.offset == len(data) and chunks[0].line_count == data.count(b"\n") + 1
    assert tail.read(100, 1 << 30) is None  # nothing new


def test_a_rewritten_document_is_read_again_without_new_keys_for_old_messages(
        tmp_path: Path) -> None:
    path = tmp_path / "chats" / "session-x.json"
    path.parent.mkdir()
    path.write_bytes(pretty(chat(3)))
    tail = FileTail(str(path), "f360", GEMINI)
    first, _, _ = read_all(tail)

    path.write_bytes(pretty(chat(5, updated="2026-01-30T06:20:00Z")))
    again, errors, chunks = read_all(tail)

    assert not errors and chunks[0].reset and len(again) == 6
    assert keys(again)[:4] == keys(first)  # the store already has these (metadata included)
    assert len(set(keys(again))) == 6

    # A change far past the first kilobyte, same size, same lastUpdated: still seen.
    doc = chat(5, updated="2026-01-30T06:20:00Z")
    doc["messages"][4]["content"] = "MESSAGE 4"
    assert len(pretty(doc)) == path.stat().st_size > 1024
    path.write_bytes(pretty(doc))
    edited, _, chunks = read_all(tail)
    assert chunks[0].reset and keys(edited)[:5] == keys(again)[:5]
    assert keys(edited)[5] != keys(again)[5] and edited[5].text == "MESSAGE 4"


def test_a_document_being_written_waits_and_import_mode_reports_it_once(
        tmp_path: Path) -> None:
    path = tmp_path / "chats" / "session-y.json"
    path.parent.mkdir()
    data = pretty(chat(2))
    path.write_bytes(data[: len(data) // 2])
    tail = FileTail(str(path), "f360", GEMINI)

    records, errors, _ = read_all(tail)
    assert (records, errors, tail.offset) == ([], [], 0)

    path.write_bytes(data)
    records, errors, _ = read_all(tail)
    assert len(records) == 3 and not errors

    broken = tmp_path / "chats" / "session-z.json"
    broken.write_bytes(b'{"sessionId": "s", "messages": [')
    tail = FileTail(str(broken), "f360", GEMINI)
    records, errors, _ = read_all(tail, final=True)
    assert records == [] and [e.reason for e in errors] == ["invalid_json"]
    assert read_all(tail, final=True) == ([], [], [])  # reported once


def test_resuming_a_committed_document_reads_nothing_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "chats" / "session-r.json"
    path.parent.mkdir()
    path.write_bytes(pretty(chat(2)))
    tail = FileTail(str(path), "f360", GEMINI)
    read_all(tail)
    durable = Durable(tail.source(), tail.offset, tail.line_count, tail.session_id)

    resumed = FileTail(str(path), "f360", GEMINI)
    resumed.resume(durable)
    assert resumed.read(100, 1 << 30) is None

    path.write_bytes(pretty(chat(3, updated="later")))
    records, _, chunks = read_all(resumed)
    assert chunks[0].reset and len(records) == 4


def test_a_one_line_document_inside_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "session-sample.jsonl"
    path.write_bytes(orjson.dumps(chat(3)) + b"\n")
    records, errors, _ = read_all(FileTail(str(path), "p", "claude_code"))
    assert not errors and [r.api_message_id for r in records] == ["", "m0", "m1", "m2"]
    assert all(r.project_key == "p" for r in records)


def test_a_document_over_the_line_limit_is_one_error_until_it_fits(tmp_path: Path) -> None:
    path = tmp_path / "chats" / "session-2026-01-30T06-08-7befeae5.json"
    path.parent.mkdir()
    big = pretty(chat(400))
    path.write_bytes(big)
    tail = FileTail(str(path), "p", GEMINI, max_line_bytes=len(big) - 1)

    records, errors, _ = read_all(tail)
    assert not records
    assert [(e.reason, e.source.byte_offset, e.source.byte_length) for e in errors] == [
        ("line_too_long", 0, len(big))]
    assert read_all(tail)[1] == []  # once

    path.write_bytes(pretty(chat(3)))  # rewritten within the limit
    records, errors, _ = read_all(tail)
    assert [r.text for r in records if r.text] == ["message 0", "message 1", "message 2"]
    assert not errors
