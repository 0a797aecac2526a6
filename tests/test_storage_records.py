"""Stored message rows become domain `Record`s directly (`storage.records.record_from_row`),
exactly as they did by way of the protobuf contract (`message_from_pb(rows.message_pb(row))`),
and exactly as the records were before they were stored.

Records go in the way production stores them: as protobuf Messages written to a real store
service (port 0, a SQLite file), which turns them into rows; the rows are read back from the
file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from store_support import batch, running_store, write

from services.ingest.parser import parse_line
from services.store import rows
from threadline.convert import message_from_pb, message_to_pb
from threadline.domain.records import (
    CLAUDE_CODE,
    CODEX,
    GEMINI,
    GENERIC,
    Block,
    Image,
    Position,
    Record,
    Usage,
)
from threadline.storage import records, schema
from threadline.storage.readonly import open_readonly

PROJECT = "proj"


def store(db: Path, found: list[Record]) -> list[Record]:
    """Write the records through a real store, one chunk per file; returns them with the key
    and project they were sent with."""
    sent: dict[str, list[Record]] = {}
    for i, rec in enumerate(found):
        rec.key = rec.key or f"k{i}"
        rec.project_key = PROJECT
        sent.setdefault(rec.source.path, []).append(rec)

    async def main() -> None:
        async with running_store(db) as (_run, stub):
            batches = [batch(n, [message_to_pb(r) for r in recs], path=path,
                             offset=max(r.source.byte_offset + r.source.byte_length
                                        for r in recs), project=PROJECT)
                       for n, (path, recs) in enumerate(sorted(sent.items()), start=1)]
            acks = await write(stub, batches)
            assert sum(a.new_messages for a in acks) == len(found)

    asyncio.run(main())
    return found


def stored_rows(db: Path) -> list[dict]:
    with open_readonly(db).connect() as conn:
        return [dict(r) for r in conn.execute(
            select(schema.messages).order_by(schema.messages.c.seq)).mappings()]


def by_protobuf(row: dict) -> Record:
    """The way rows became records before: row -> protobuf Message -> Record."""
    return message_from_pb(rows.message_pb(row))


def assert_direct_equals_protobuf(db: Path, sent: list[Record]) -> list[dict]:
    found = stored_rows(db)
    sent_by_key = {r.key: r for r in sent}
    assert sorted(r["key"] for r in found) == sorted(sent_by_key)
    for row in found:
        direct = records.record_from_row(row)
        assert direct == by_protobuf(row), row["key"]
        # Nothing is lost on the way in and out; the store gives each record its session's
        # project (threadline/storage/projects.py).
        assert direct == replace(sent_by_key[row["key"]], project_key=row["project_key"])
    return found


def _parsed(path: Path, hint: str = "") -> list[Record]:
    if hint:  # a whole chat document is one line
        data = path.read_bytes()
        lines = [data]
    else:
        lines = path.read_bytes().split(b"\n")
    out, offset = [], 0
    for number, line in enumerate(lines, 1):
        parsed = parse_line(line, Position(str(path), offset, number, len(line)), hint)
        offset += len(line) + 1
        for i, rec in enumerate(parsed if isinstance(parsed, list) else [parsed]):
            if isinstance(rec, Record):
                rec.key = f"{path}:{rec.source.byte_offset}:{i}"
                out.append(rec)
    return out


def test_real_corpus_records_map_directly_as_through_protobuf(tmp_path, corpus):
    # Every format the corpus holds (Claude Code, Codex rollouts, a Gemini chat document);
    # the few multi-megabyte files add nothing a smaller one lacks but time.
    found: list[Record] = []
    for path in sorted(corpus.rglob("*.jsonl")):
        if path.stat().st_size < 3_000_000:
            found += _parsed(path)
    for path in sorted(corpus.rglob("session-*.json")):
        if path.parent.name == "chats":
            found += _parsed(path, GEMINI)
    formats = {r.format for r in found}
    assert {CLAUDE_CODE, CODEX, GEMINI} <= formats
    assert sum(1 for r in found if r.usage is not None) > 100
    assert sum(1 for r in found for b in r.content if b.kind == "tool_result") > 100

    stored = assert_direct_equals_protobuf(tmp_path / "t.db", store(tmp_path / "t.db", found))
    assert len(stored) > 5000


def _synthetic() -> list[Record]:
    path = "/transcripts/proj/s1.jsonl"

    def rec(n: int, **fields) -> Record:
        raw = b'{"n": %d}' % n
        return Record(source=Position(path, n * 100, n + 1, len(raw)), raw=raw,
                      session_id="s1", timestamp=f"2026-01-01T00:00:0{n % 10}Z", **fields)

    return [
        rec(0, type="user", role="user", uuid="u0", text="Read the file",
            content=[Block("text", "Read the file")], cwd="/work", git_branch="main",
            version="2.1.39"),
        rec(1, type="assistant", role="assistant", uuid="a1", parent_uuid="u0",
            model="claude-opus-4-5", request_id="req_1", api_message_id="msg_1",
            stop_reason="tool_use",
            content=[Block("thinking", "let me look"),
                     Block("tool_use", tool_use_id="toolu_1", tool_name="Read",
                           tool_input_json='{"file_path": "/work/ü.py"}'.encode()),
                     Block("server_tool_use", tool_use_id="srv_1", tool_name="web_search",
                           tool_input_json=b'{"query": "x"}')],
            usage=Usage(12, 34, 56, 50, 6, 78, "standard", 0)),
        # A failed call with its output in a file, and an image in the result.
        rec(2, type="user", role="user", uuid="r2", parent_uuid="a1",
            content=[Block("tool_result", "No such file", tool_use_id="toolu_1",
                           is_error=True, persisted_output_path="/tmp/tool-results/t1.txt"),
                     Block("image", image=Image("image/png", "base64", 2048, "ab" * 32))]),
        # A subagent's result, its run time stated; a sidechain meta record.
        rec(3, type="user", role="user", uuid="r3", is_sidechain=True, is_meta=True,
            agent_id="agent-1",
            content=[Block("tool_result", "done", tool_use_id="toolu_2", agent_id="agent-1",
                           duration_seconds=2.5),
                     Block("tool_result", "ok", tool_use_id="toolu_3", duration_seconds=0.0)]),
        # A compaction boundary: the raw line is read back for it (records._COLUMNS).
        rec(4, type="system", role="system", subtype="compact_boundary", uuid="c4",
            logical_parent_uuid="a1", content=[Block("other", raw_type="compact")]),
        # Usage present with every figure zero is still usage.
        rec(5, type="assistant", role="assistant", uuid="a5", usage=Usage(),
            content=[Block("text", "")], drift="unknown_fields: foo"),
        rec(6, type="response_item", role="assistant", format=CODEX, model="gpt-5-codex",
            content=[Block("tool_use", tool_use_id="call_1", tool_name="shell",
                           tool_input_json=b'{"command": ["ls"]}')],
            usage=Usage(100, 20, 0, 0, 0, 80, "", 15)),
        rec(7, type="response_item", role="tool", format=CODEX,
            content=[Block("tool_result", "Exit code: 1", tool_use_id="call_1",
                           is_error=True, duration_seconds=3.0)],
            drift="unknown payload type"),
        rec(8, type="gemini", role="assistant", format=GEMINI, uuid="g8", model="gemini-2.5-pro",
            content=[Block("text", "Hello")], usage=Usage(7, 8, 0, 0, 0, 2, "", 3)),
        rec(9, type="message", role="user", format=GENERIC, text="Hi",
            content=[Block("text", "Hi")]),
    ]


def test_synthetic_records_of_every_kind_map_directly_as_through_protobuf(tmp_path):
    db = tmp_path / "t.db"
    sent = store(db, _synthetic())
    found = assert_direct_equals_protobuf(db, sent)
    kinds = {b.kind for r in sent for b in r.content}
    assert kinds == {"text", "thinking", "tool_use", "server_tool_use", "tool_result", "image",
                     "other"}
    assert any(r["input_tokens"] == 0 for r in found)  # the all-zero usage kept its presence


def test_names_a_newer_version_stored_read_as_the_defaults(tmp_path):
    """A role, format or block kind this version does not know reads as protobuf read it:
    role "", format claude_code, block kind "other"."""
    db = tmp_path / "t.db"
    store(db, _synthetic()[:2])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE messages SET role = 'developer', format = 'cursor',"
                     " content_json = ? WHERE uuid = 'a1'",
                     (b'[{"kind": "citation", "text": "x"}, {"kind": "unspecified"}]',))
    for row in stored_rows(db):
        direct = records.record_from_row(row)
        assert direct == by_protobuf(row)
    (changed,) = [records.record_from_row(r) for r in stored_rows(db) if r["uuid"] == "a1"]
    assert (changed.role, changed.format) == ("", CLAUDE_CODE)
    assert [b.kind for b in changed.content] == ["other", "other"]


def test_the_follower_reads_records_with_links_and_only_compaction_raw_lines(tmp_path):
    db = tmp_path / "t.db"
    sent = store(db, _synthetic())
    with open_readonly(db).connect() as conn:
        after = records.records_after(conn, 0, 100)
        by_session = [r for r, _link in records.session_records(conn, "s1", 10**9)]
        in_file = records.file_records(conn, "/transcripts/proj/s1.jsonl", "s1")
    # The session's project is its working directory (the first cwd its records name).
    expected = [replace(r, raw=r.raw if r.subtype == "compact_boundary" else b"",
                        project_key="/work") for r in sent]
    assert [r for _seq, r, _link in after] == expected
    assert by_session == in_file == expected
    assert [seq for seq, _r, _link in after] == sorted(seq for seq, _r, _link in after)
