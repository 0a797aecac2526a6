"""Threading and analysis inside the running pipeline: stored, queryable, published, and
rebuilt from the store after a restart without counting anything twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import orjson
import websockets
from conftest import eventually, running_pipeline
from sqlalchemy import select
from test_pipeline_live import subscribed

from cli.main import main
from threadline.storage import schema
from threadline.storage.analysis import analysed_through
from threadline.storage.readonly import open_readonly
from threadline.v1 import analysis_pb2, analysis_pb2_grpc

SESSION = "s-analysis"


def line(kind: str, uid: str, parent: str | None, ts: str, content, **extra) -> bytes:
    role = "assistant" if kind == "assistant" else "user"
    message = {"role": role, "content": content}
    if kind == "assistant":
        message.update(id=f"msg_{uid}", model="claude-sonnet-4-5")
    return orjson.dumps({
        "parentUuid": parent, "isSidechain": False, "type": kind, "sessionId": SESSION,
        "cwd": "/home/u/app", "version": "2.1.39", "uuid": uid, "timestamp": ts,
        "message": message, **extra}) + b"\n"


def conversation() -> list[bytes]:
    """A prompt, a tool call and its result, an answer, a question, an approval."""
    return [
        line("user", "u1", None, "2026-11-01T10:00:00.000Z",
             "Please fix the failing test in services/store/writer.py"),
        line("assistant", "a1", "u1", "2026-11-01T10:00:04.000Z",
             [{"type": "tool_use", "id": "toolu_1", "name": "Read",
               "input": {"file_path": "/home/u/app/services/store/writer.py"}}]),
        line("user", "r1", "a1", "2026-11-01T10:00:05.000Z",
             [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "def write(): ..."}]),
        line("assistant", "a2", "r1", "2026-11-01T10:00:09.000Z",
             [{"type": "text", "text": "The batch is empty. Shall I add a guard?"}]),
        line("user", "u2", "a2", "2026-11-01T10:00:30.000Z", "yes, go ahead"),
    ]


def chat_lines() -> list[bytes]:
    """Generic chat lines: no parent links at all, so every parent is inferred."""
    return [orjson.dumps({"id": f"c{i}-5b7e9a3c-1f2d-4e8a-9c6b-0d1e2f3a4b5c", "role": role,
                          "content": text, "timestamp": f"2026-11-01T11:00:0{i}Z"}) + b"\n"
            for i, (role, text) in enumerate([("user", "How does the cache work?"),
                                              ("assistant", "It keeps pages hot."),
                                              ("user", "Thanks, now add a test for it.")])]


def rows(db, table, **where):
    with open_readonly(db).connect() as conn:
        query = select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return [dict(r) for r in conn.execute(query).mappings()]


def _session_transcript(tmp_path: Path, first: int) -> tuple[Path, Path, list[bytes]]:
    """The projects root, SESSION's transcript holding the conversation's first `first`
    lines, and all its lines (to append the rest)."""
    root = tmp_path / "projects"
    transcript = root / "-home-u-app" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    lines = conversation()
    transcript.write_bytes(b"".join(lines[:first]))
    return root, transcript, lines


def test_messages_get_thread_parents_and_sessions_get_analysis(tmp_path, capsys):
    root, transcript, lines = _session_transcript(tmp_path, 3)
    chat = root / "-home-u-chat" / "chat.jsonl"
    chat.parent.mkdir(parents=True)
    chat.write_bytes(b"".join(chat_lines()))
    db = tmp_path / "threadline.db"

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                await subscribed(ws, session=SESSION)
                with transcript.open("ab") as out:
                    out.write(b"".join(lines[3:]))
                kinds = set()

                async def events():
                    while "analysis_updated" not in kinds:
                        frame = orjson.loads(await ws.recv())
                        if frame["type"] in ("thread_updated", "analysis_updated"):
                            assert frame["analysis"]["session_id"] == SESSION
                            kinds.add(frame["type"])
                await asyncio.wait_for(events(), 20)

            await eventually(lambda: len(rows(db, schema.turns, session_id=SESSION)) == 2)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{p.analysis.port}") as channel:
                stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
                threads = await stub.GetThreads(analysis_pb2.GetThreadsRequest(
                    session_id=SESSION))
                analysis = await stub.GetSessionAnalysis(analysis_pb2.GetSessionAnalysisRequest(
                    session_id=SESSION))
                try:
                    await stub.GetThreads(analysis_pb2.GetThreadsRequest(session_id="nope"))
                    raise AssertionError("an unknown session must be NOT_FOUND")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND
            return threads, analysis

    threads, analysis = asyncio.run(scenario())

    # The session's first record was a new root: a thread change (extending a chain is not).
    assert [c for c in rows(db, schema.changes, session_id=SESSION)
            if c["kind"] == "thread_updated"]
    stored = {r["uuid"]: r for r in rows(db, schema.messages, session_id=SESSION)}
    assert stored["a1"]["thread_parent_uuid"] == "u1"
    assert stored["a1"]["thread_parent_source"] == "recorded"
    assert stored["r1"]["thread_relation"] == "tool_continuation"
    assert stored["u1"]["thread_parent_source"] == ""  # a root
    # Generic chat lines carry no links: threadline infers them from file order.
    chat_rows = sorted(rows(db, schema.messages, project_key="-home-u-chat"),
                       key=lambda r: r["source_byte_offset"])
    assert [r["thread_parent_source"] for r in chat_rows] == ["", "inferred", "inferred"]
    assert chat_rows[2]["thread_parent_uuid"] == chat_rows[1]["key"]  # no uuid: its key
    assert 0 < chat_rows[2]["thread_confidence"] <= 1

    assert [n.uuid for n in threads.nodes] == ["u1", "a1", "r1", "a2", "u2"]
    assert analysis.summary.prompts == 2
    assert analysis.summary.assistant_messages == 2
    assert analysis.summary.responses == 1  # u2 has no answer yet
    assert analysis.summary.response_seconds_sum == 4.0
    assert {t.intent for t in analysis.turns} <= {"request", "approval", "clarification"}
    assert len(analysis.segments) >= 1
    kinds = {r.kind for r in analysis.relationships}
    assert {"response", "tool_continuation"} <= kinds

    # The CLI reads the same answers from the database.
    assert main(["analyze", SESSION, "--db", str(db), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["prompts"] == 2
    assert main(["threads", SESSION, "--db", str(db)]) == 0
    assert "segments" in capsys.readouterr().out
    exported = [json.loads(x) for x in _export(db, capsys)]
    by_uuid = {r["uuid"]: r for r in exported}
    assert by_uuid["a1"]["thread_parent_uuid"] == "u1"
    assert by_uuid["a1"]["thread_parent_source"] == "recorded"


def _export(db, capsys) -> list[str]:
    assert main(["export", "--db", str(db)]) == 0
    return capsys.readouterr().out.splitlines()


def test_restart_rebuilds_session_state_from_the_store(tmp_path):
    """After a restart the analysis follower starts empty: appending to a known session must
    continue its counts from what the store holds (the session is rebuilt from its stored
    records, from the follower's checkpoint on), never restart them or count twice."""
    root, transcript, lines = _session_transcript(tmp_path, 4)
    db = tmp_path / "threadline.db"

    def summary():
        found = rows(db, schema.session_summaries, session_id=SESSION)
        return found[0] if found else None

    async def first_run():
        async with running_pipeline(tmp_path, [root]):
            await eventually(lambda: (summary() or {}).get("messages") == 4)

    async def second_run():
        async with running_pipeline(tmp_path, [root]):
            with transcript.open("ab") as out:
                out.write(lines[4])
            await eventually(lambda: (summary() or {}).get("messages") == 5)

    asyncio.run(first_run())
    before = summary()
    asyncio.run(second_run())
    after = summary()
    assert before["prompts"] == 1 and after["prompts"] == 2
    assert after["assistant_messages"] == before["assistant_messages"] == 2
    assert after["responses"] == 1
    assert len(rows(db, schema.turns, session_id=SESSION)) == 2


def test_a_follower_that_dies_is_restarted_and_resumes(tmp_path):
    root, transcript, lines = _session_transcript(tmp_path, 4)
    db = tmp_path / "threadline.db"

    def prompts():
        found = rows(db, schema.session_summaries, session_id=SESSION)
        return found[0]["prompts"] if found else 0

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            await eventually(lambda: prompts() == 1)
            p.analysis.follower.process.kill()
            with transcript.open("ab") as out:
                out.write(lines[4])
            await eventually(lambda: prompts() == 2)
            return p.analysis.follower.restarts

    assert asyncio.run(scenario()) == 1
    assert len(rows(db, schema.turns, session_id=SESSION)) == 2


def test_the_store_applies_an_analysis_run_only_after_its_checkpoint(tmp_path):
    """Two followers (one outliving a restart) must not apply the same run twice: a batch
    says which checkpoint it follows, and the store refuses it when that has moved on."""
    from store_support import running_store, write

    from threadline.v1 import analysis_types_pb2, common_pb2

    def run(after: int, through: int) -> common_pb2.Batch:
        update = analysis_types_pb2.AnalysisUpdate(session_id="s1", project_key="p")
        update.summary.session_id, update.summary.messages = "s1", through
        return common_pb2.Batch(batch_id=through, analysis=[update], analysed_after=after,
                                analysed_through=through)

    db = tmp_path / "t.db"

    async def scenario():
        async with running_store(db) as (_store, stub):
            await write(stub, [run(0, 5)])
            try:
                await write(stub, [run(0, 7)])  # a second follower, from the old checkpoint
                raise AssertionError("a stale analysis batch must be refused")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.ABORTED
            await write(stub, [run(5, 9)])

    asyncio.run(scenario())

    with open_readonly(db).connect() as conn:
        assert analysed_through(conn) == 9
    assert rows(db, schema.session_summaries, session_id="s1")[0]["messages"] == 9
