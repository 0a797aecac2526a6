"""Write stream: commits, acks, idempotence, offsets, sessions and tool calls."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from store_support import batch, message, messages, parse_error, running_store, write

from services.store import open_readonly
from threadline.storage.errors import DatabaseMissing
from threadline.storage.messages import iter_export
from threadline.storage.sessions import list_sessions
from threadline.storage.tools import tool_calls
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2 as spb


def test_write_commits_and_acks(tmp_path):
    async def main():
        async with running_store(tmp_path / "db" / "t.db") as (run, stub):
            acks = await write(stub, [batch(1, messages(0, 3), offset=300),
                                      batch(2, messages(3, 2), offset=500)])
            assert [a.batch_id for a in acks] == [1, 2]
            assert [a.new_messages for a in acks] == [3, 2]
            assert acks[-1].last_sequence == 5
            assert acks[1].offsets[0].offset == 500
            assert acks[1].offsets[0].source.identity == "1:1"
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert (stats.messages, stats.sessions, stats.projects, stats.sources,
                    stats.last_sequence) == (5, 1, 1, 1, 5)

    asyncio.run(main())


def test_resending_a_batch_stores_nothing_twice(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            b = batch(1, messages(0, 4), offset=400, errors=[parse_error(999)])
            first = await write(stub, [b])
            again = await write(stub, [b, b])
            assert first[0].new_messages == 4
            assert [a.new_messages for a in again] == [0, 0]
            assert again[-1].last_sequence == first[0].last_sequence == 5
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert (stats.messages, stats.parse_errors, stats.last_sequence) == (4, 1, 5)
            sessions = (await stub.ListSessions(spb.ListSessionsRequest())).sessions
            assert sessions[0].message_count == 4

    asyncio.run(main())


def test_same_uuid_in_two_sources_is_stored_once(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            copy = "/transcripts/proj/copy.jsonl"
            acks = await write(stub, [
                batch(1, [message("u1"), message("u2", offset=100)], offset=200),
                batch(2, [message("u2", path=copy), message("u3", path=copy, offset=100),
                          message("u3", path=copy, offset=200)], path=copy, offset=300),
            ])
            assert [a.new_messages for a in acks] == [2, 1]
            offsets = (await stub.GetOffsets(spb.GetOffsetsRequest())).offsets
            assert {o.source.path: o.offset for o in offsets} == {
                "/transcripts/proj/s1.jsonl": 200, copy: 300}
            page = await stub.GetSessionMessages(spb.GetSessionMessagesRequest(session_id="s1"))
            # Within one batch the first occurrence wins.
            assert [(m.message.key, m.message.source.path, m.message.source.byte_offset)
                    for m in page.messages] == [
                ("u1", "/transcripts/proj/s1.jsonl", 0), ("u2", "/transcripts/proj/s1.jsonl", 100),
                ("u3", copy, 100)]

    asyncio.run(main())


def test_offsets_only_move_forward_unless_the_file_was_replaced(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            async def stored() -> tuple[str, int]:
                (o,) = (await stub.GetOffsets(spb.GetOffsetsRequest())).offsets
                return o.source.identity, o.offset

            await write(stub, [batch(1, offset=1000)])
            acks = await write(stub, [batch(2, offset=500)])  # a stale resend
            assert acks[0].offsets[0].offset == 1000
            assert await stored() == ("1:1", 1000)
            await write(stub, [batch(3, offset=100, reset=True)])  # truncated
            assert await stored() == ("1:1", 100)
            await write(stub, [batch(4, offset=50, identity="1:2")])  # replaced
            assert await stored() == ("1:2", 50)

    asyncio.run(main())


def test_the_hash_of_the_bytes_before_an_offset_is_kept_with_it(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            sent = batch(1, offset=1000)
            sent.chunks[0].position.tail_sha256 = "ab" * 32
            acks = await write(stub, [sent])
            assert acks[0].offsets[0].tail_sha256 == "ab" * 32
            (o,) = (await stub.GetOffsets(spb.GetOffsetsRequest())).offsets
            assert (o.offset, o.tail_sha256) == (1000, "ab" * 32)

    asyncio.run(main())


def test_parse_errors_are_stored_once_and_sequenced(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            await write(stub, [batch(1, [message("a")], errors=[parse_error(10), parse_error(10)]),
                               batch(2, errors=[parse_error(10), parse_error(20)])])
            errors = (await stub.ListParseErrors(spb.ListParseErrorsRequest())).errors
            assert [(e.source.byte_offset, e.reason, e.excerpt) for e in errors] == [
                (10, "invalid_json", b"{x"), (20, "invalid_json", b"{x")]
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert (stats.parse_errors, stats.last_sequence) == (2, 3)

    asyncio.run(main())


def _tool(tool_id: str, *, use: bool) -> pb.ToolCall:
    if use:
        return pb.ToolCall(tool_use_id=tool_id, session_id="s1", name="Bash",
                           use_message_key="a1", input_json=b'{"command":"ls"}',
                           started_at="2025-01-01T00:00:01Z", has_use=True)
    return pb.ToolCall(tool_use_id=tool_id, session_id="s1", result_message_key="u1",
                       is_error=True, finished_at="2025-01-01T00:00:02Z", has_result=True)


def test_tool_call_halves_merge_in_either_order(tmp_path):
    async def main():
        db = tmp_path / "t.db"
        async with running_store(db) as (run, stub):
            await write(stub, [batch(1, tool_calls=[_tool("t1", use=True), _tool("t2", use=False)]),
                               batch(2, tool_calls=[_tool("t1", use=False)]),
                               batch(3, tool_calls=[_tool("t2", use=True)]),
                               batch(4, tool_calls=[_tool("t2", use=True)])])  # resent
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert stats.tool_calls == 2
        engine = open_readonly(db)
        with engine.connect() as conn:
            calls = tool_calls(conn, "s1")
        engine.dispose()
        expected = {"session_id": "s1", "name": "Bash", "use_message_key": "a1",
                    "result_message_key": "u1", "input_json": b'{"command":"ls"}',
                    "is_error": True, "started_at": "2025-01-01T00:00:01Z",
                    "finished_at": "2025-01-01T00:00:02Z"}
        assert [c["tool_use_id"] for c in calls] == ["t1", "t2"]
        for c in calls:
            assert {k: c[k] for k in expected} == expected

    asyncio.run(main())


def test_queries_return_what_was_written(tmp_path):
    async def main():
        usage = pb.TokenUsage(input_tokens=3, output_tokens=5, cache_read_input_tokens=7,
                              service_tier="standard")
        m = message("a1", text="hi", raw=b'{"raw":1}', cwd="/w/one")
        m.usage.CopyFrom(usage)
        m.content.append(pb.ContentBlock(kind=pb.BLOCK_KIND_TOOL_USE, tool_use_id="t1",
                                         tool_name="Bash", tool_input_json=b'{"a":1}'))
        m.content.append(pb.ContentBlock(kind=pb.BLOCK_KIND_IMAGE, image=pb.ImageRef(
            media_type="image/png", source_type="base64", size_bytes=10, sha256="ab")))
        other = message("b1", session="s2", project="other", ts="2025-02-01T00:00:00Z",
                        cwd="/w/two")
        late = message("a2", offset=100, ts="2025-01-03T00:00:00Z", cwd="/w/three")
        async with running_store(tmp_path / "t.db") as (run, stub):
            await write(stub, [batch(1, [m, other, late], offset=200)])
            projects = (await stub.ListProjects(spb.ListProjectsRequest())).projects
            # A session's project is the working directory of its first record; the folder
            # each was sent with stays an alias.
            assert [(p.key, p.name, p.session_count, p.message_count, p.cwd, p.aliases)
                    for p in projects] == [("/w/two", "two", 1, 1, "/w/two", ["other"]),
                                           ("/w/one", "one", 1, 2, "/w/one", ["proj"])]
            assert projects[1].first_timestamp == "2025-01-01T00:00:00Z"
            assert projects[1].last_timestamp == "2025-01-03T00:00:00Z"
            sessions = (await stub.ListSessions(spb.ListSessionsRequest(project_key="proj")))
            (s,) = sessions.sessions
            assert (s.session_id, s.project_key, s.project_name, s.message_count, s.cwd,
                    s.format) == ("s1", "/w/one", "one", 2, "/w/three",
                                  pb.SOURCE_FORMAT_CLAUDE_CODE)
            page = await stub.GetSessionMessages(
                spb.GetSessionMessagesRequest(session_id="s1", include_raw=True))
            m.project_key = "/w/one"
            assert page.messages[0].message == m
            assert page.next_after_sequence == 0
            without_raw = await stub.GetSessionMessages(
                spb.GetSessionMessagesRequest(session_id="s1", limit=1))
            assert without_raw.messages[0].message.raw == b""
            assert without_raw.next_after_sequence == without_raw.messages[0].sequence
            rest = await stub.GetSessionMessages(spb.GetSessionMessagesRequest(
                session_id="s1", after_sequence=without_raw.next_after_sequence))
            assert [x.message.key for x in rest.messages] == ["a2"]

    asyncio.run(main())


def test_bad_requests_map_to_status_codes(tmp_path):
    async def main():
        async with running_store(tmp_path / "t.db") as (run, stub):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetSessionMessages(spb.GetSessionMessagesRequest(session_id="nope"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetSessionMessages(spb.GetSessionMessagesRequest(session_id="s",
                                                                            limit=-1))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stub.Changes(spb.ChangesRequest(since_sequence=-1)):
                    pass
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(main())


def test_export_reads_the_database_without_a_server(tmp_path):
    db = tmp_path / "t.db"

    async def main():
        async with running_store(db) as (run, stub):
            await write(stub, [batch(1, messages(0, 5), offset=500)])

    asyncio.run(main())
    engine = open_readonly(db)
    with engine.connect() as conn:
        records = list(iter_export(conn, page=2))
        sessions = list_sessions(conn)
    engine.dispose()
    with pytest.raises(DatabaseMissing):
        open_readonly(tmp_path / "missing.db")
    assert [r["sequence"] for r in records] == [1, 2, 3, 4, 5]
    first = records[0]
    assert first["key"] == "m0" and first["session_id"] == "s1" and first["role"] == "user"
    assert first["source"] == {"path": "/transcripts/proj/s1.jsonl", "byte_offset": 0,
                               "line_number": 1, "byte_length": len(b'{"uuid":"m0"}')}
    assert first["content"] == [{"kind": "text", "text": "hello"}]
    assert sessions[0]["message_count"] == 5


def test_after_a_failed_batch_the_rest_of_its_stream_fails_and_no_offset_skips_it(tmp_path):
    import sqlite3

    from services.store import rows
    from services.store.writer import Writer, WriteStream
    from threadline.storage.errors import EarlierBatchFailed

    db = tmp_path / "t.db"

    async def main():
        writer = Writer(db)
        await asyncio.to_thread(writer.start)
        try:
            # A real SQLite failure for one batch: a trigger refuses one message key.
            with sqlite3.connect(db) as conn:
                conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages "
                             "WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END")
            stream = WriteStream()
            batches = [rows.write_batch(batch(1, [message("poison")], offset=100), {}),
                       rows.write_batch(batch(2, messages(1, 3), offset=400), {})]
            for b in batches:
                b.stream = stream
            # Both are queued before either is written (no await in between).
            futures = [writer.submit(b) for b in batches]
            first, second = await asyncio.gather(*futures, return_exceptions=True)
            assert isinstance(first, Exception) and "refused" in str(first)
            assert isinstance(second, EarlierBatchFailed)
            # Another stream is unaffected.
            ok = await writer.submit(rows.write_batch(batch(3, messages(1, 3), offset=400,
                                                            path="/other.jsonl"), {}))
            assert len(ok.new_messages) == 3 and ok.last_sequence == 3
        finally:
            await asyncio.to_thread(writer.stop)
        with sqlite3.connect(db) as conn:
            offsets = dict(conn.execute('SELECT path, "offset" FROM sources'))
        assert offsets == {"/other.jsonl": 400}

    asyncio.run(main())
