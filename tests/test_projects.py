"""Projects and sessions as a user names them, through `threadline import` and the CLI.

A project is the working directory the assistant ran in (not the folder a transcript was
found in), shown by its path and a short name; the folder names still work as aliases. The
same Codex rollout found in two folders is one session; summary-only files are titles, not
sessions; sessions may be named by a unique prefix of their id.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import orjson
import pytest
import websockets
from conftest import eventually, running_pipeline
from store_support import batch, message, running_store, write

from threadline import auth, bootstrap
from threadline.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
    stream_pb2,
    stream_pb2_grpc,
)

A_SESSION = "abcd1111-0000-4000-8000-000000000001"
B_SESSION = "abcd2222-0000-4000-8000-000000000002"
C_SESSION = "ffff3333-0000-4000-8000-000000000003"
API_ROLLOUT = "0199a0b0-0000-7000-8000-0000000000a1"
WEB_ROLLOUT = "0199a0b0-0000-7000-8000-0000000000b2"


def threadline(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def imported(db: Path, *paths: Path) -> dict:
    result = threadline("import", "--db", db, "--json", *paths)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def as_json(*args: str | Path) -> list | dict:
    result = threadline(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(*args: str | Path) -> str:
    """The one line a command says when it refuses (and exits non-zero)."""
    result = threadline(*args)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def claude(kind: str, uid: str, session: str, cwd: str, ts: str, parent: str | None = None,
           **fields) -> bytes:
    return orjson.dumps({"parentUuid": parent, "isSidechain": False, "userType": "external",
                         "cwd": cwd, "sessionId": session, "version": "2.0.76", "type": kind,
                         "uuid": uid, "timestamp": ts, **fields}) + b"\n"


def conversation(session: str, cwd: str, day: str, prefix: str) -> bytes:
    """A prompt, a Bash call and its result, and an answer."""
    return b"".join([
        claude("user", f"{prefix}-u1", session, cwd, f"{day}T10:00:00.000Z",
               message={"role": "user", "content": "list the files"}),
        claude("assistant", f"{prefix}-a1", session, cwd, f"{day}T10:00:01.000Z",
               f"{prefix}-u1", requestId=f"req_{prefix}1",
               message={"id": f"msg_{prefix}1", "type": "message", "role": "assistant",
                        "model": "claude-sonnet-4-5-20250929", "stop_reason": "tool_use",
                        "content": [{"type": "tool_use", "id": f"toolu_{prefix}",
                                     "name": "Bash", "input": {"command": "ls"}}],
                        "usage": {"input_tokens": 10, "output_tokens": 5}}),
        claude("user", f"{prefix}-u2", session, cwd, f"{day}T10:00:02.000Z", f"{prefix}-a1",
               message={"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": f"toolu_{prefix}",
                    "content": "a.txt"}]}),
        claude("assistant", f"{prefix}-a2", session, cwd, f"{day}T10:00:03.000Z",
               f"{prefix}-u2", requestId=f"req_{prefix}2",
               message={"id": f"msg_{prefix}2", "type": "message", "role": "assistant",
                        "model": "claude-sonnet-4-5-20250929", "stop_reason": "end_turn",
                        "content": [{"type": "text", "text": "one file"}],
                        "usage": {"input_tokens": 20, "output_tokens": 7}}),
    ])


def codex_rollout(session: str, cwd: str, day: str) -> bytes:
    """A Codex rollout: session_meta, turn_context, a prompt, an answer, two token counts."""
    def line(kind: str, second: int, payload: dict) -> bytes:
        return orjson.dumps({"timestamp": f"{day}T09:00:0{second}.000Z", "type": kind,
                             "payload": payload}) + b"\n"

    def tokens(second: int, inp: int, out: int) -> bytes:
        usage = {"input_tokens": inp, "cached_input_tokens": 0, "output_tokens": out,
                 "reasoning_output_tokens": 0, "total_tokens": inp + out}
        return line("event_msg", second, {"type": "token_count", "info": {
            "total_token_usage": usage, "last_token_usage": usage}})

    return b"".join([
        line("session_meta", 0, {"id": session, "timestamp": f"{day}T09:00:00.000Z",
                                 "cwd": cwd, "originator": "codex_cli",
                                 "cli_version": "0.50.0"}),
        line("turn_context", 1, {"cwd": cwd, "model": "gpt-5-codex"}),
        line("response_item", 2, {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hello"}]}),
        line("response_item", 3, {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "hi"}]}),
        tokens(4, 1000, 50),
        line("response_item", 5, {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "done"}]}),
        tokens(6, 1200, 80),
    ])


def rollout_path(root: Path, day: str, session: str) -> Path:
    y, m, d = day.split("-")
    path = root / y / m / d / f"rollout-{day}T09-00-00-{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_codex_sessions_are_filed_under_their_working_directories(tmp_path):
    sessions = tmp_path / "codex" / "sessions"
    rollout_path(sessions, "2025-09-24", API_ROLLOUT).write_bytes(
        codex_rollout(API_ROLLOUT, "/home/u/api", "2025-09-24"))
    rollout_path(sessions, "2025-09-25", WEB_ROLLOUT).write_bytes(
        codex_rollout(WEB_ROLLOUT, "/home/u/web/", "2025-09-25"))
    db = tmp_path / "t.db"
    imported(db, sessions)

    # Not "2025", the first folder under the root: the directory each rollout ran in.
    by_session = {s["session_id"]: s["project_key"]
                  for s in as_json("sessions", "--db", db)}
    assert by_session == {API_ROLLOUT: "/home/u/api", WEB_ROLLOUT: "/home/u/web"}
    projects = as_json("projects", "--db", db)
    assert sorted((p["key"], p["name"], p["session_count"]) for p in projects) == [
        ("/home/u/api", "api", 1), ("/home/u/web", "web", 1)]
    usage = {r["period"]: r["messages"] for r in as_json("usage", "--db", db, "--by",
                                                         "project")}
    assert usage == {"/home/u/api": 2, "/home/u/web": 2}
    # The date folder they were filed under before names both: say so rather than guess.
    line = refused("sessions", "--db", db, "--project", "2025")
    assert "ambiguous project '2025'" in line
    assert "/home/u/api" in line and "/home/u/web" in line


def test_a_claude_project_folder_is_one_project_and_its_name_an_alias(tmp_path):
    folder = tmp_path / "-home-alice-code-app"
    cwd = "/home/alice/code/app"
    (folder / A_SESSION / "subagents").mkdir(parents=True)
    (folder / f"{A_SESSION}.jsonl").write_bytes(conversation(A_SESSION, cwd, "2025-05-01", "a"))
    (folder / f"{B_SESSION}.jsonl").write_bytes(conversation(B_SESSION, cwd, "2025-05-02", "b"))
    # A 2.1.x subagent: records of the parent session, in a folder named after it.
    (folder / A_SESSION / "subagents" / "agent-a1b2c3.jsonl").write_bytes(
        conversation(A_SESSION, cwd, "2025-05-01", "s").replace(
            b'"isSidechain":false', b'"isSidechain":true,"agentId":"a1b2c3"'))
    db = tmp_path / "t.db"
    imported(db, folder)  # the project folder itself is the root

    # The subagent's responses count for the parent session's project, not for a project
    # named after the session's folder.
    (usage,) = as_json("usage", "--db", db, "--by", "project")
    assert usage["period"] == cwd and usage["messages"] == 6
    (project,) = as_json("projects", "--db", db)
    assert (project["key"], project["name"], project["session_count"]) == (cwd, "app", 2)
    assert "-home-alice-code-app" in project["aliases"]
    every = {s["session_id"] for s in as_json("sessions", "--db", db)}
    assert every == {A_SESSION, B_SESSION}
    for name in ("-home-alice-code-app", "app", "code/app", cwd):
        sessions = as_json("sessions", "--db", db, f"--project={name}")
        assert {s["session_id"] for s in sessions} == every, name
        assert {s["project_name"] for s in sessions} == {"app"}
    tools = as_json("tools", "--db", db, "--project=-home-alice-code-app")
    assert tools["total"]["calls"] == 3  # a's, b's and the subagent's Bash call


def test_projects_sharing_a_last_component_get_longer_names(tmp_path):
    root = tmp_path / "projects"
    for folder, session, cwd, prefix in (
            ("-home-u-one-app", A_SESSION, "/home/u/one/app", "a"),
            ("-home-u-two-app", B_SESSION, "/home/u/two/app", "b"),
            ("-home-u-web", C_SESSION, "/home/u/web", "c")):
        (root / folder).mkdir(parents=True)
        (root / folder / f"{session}.jsonl").write_bytes(
            conversation(session, cwd, "2025-05-01", prefix))
    db = tmp_path / "t.db"
    imported(db, root)

    assert [s["session_id"] for s in as_json("sessions", "--db", db, "--project",
                                             "two/app")] == [B_SESSION]
    names = {p["key"]: p["name"] for p in as_json("projects", "--db", db)}
    assert names == {"/home/u/one/app": "one/app", "/home/u/two/app": "two/app",
                     "/home/u/web": "web"}
    line = refused("sessions", "--db", db, "--project", "app")
    assert line.startswith("threadline sessions: ambiguous project 'app'")
    assert "/home/u/one/app" in line and "/home/u/two/app" in line
    line = refused("tools", "--db", db, "--project", "app")
    assert "ambiguous project 'app'" in line
    table = threadline("sessions", "--db", db).stdout
    assert "one/app" in table and "two/app" in table


def test_the_same_codex_rollout_from_two_folders_is_counted_once(tmp_path):
    data = codex_rollout(API_ROLLOUT, "/home/u/api", "2025-09-24")
    live = rollout_path(tmp_path / "codex" / "sessions", "2025-09-24", API_ROLLOUT)
    live.write_bytes(data)
    copy = tmp_path / "backup" / "codex-archive" / live.name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(live, copy)
    once, twice = tmp_path / "once.db", tmp_path / "twice.db"
    imported(once, live)
    summary = imported(twice, tmp_path / "codex", tmp_path / "backup")

    assert summary["files"] == 2
    lines = data.count(b"\n")
    for db in (once, twice):
        records = threadline("export", "--db", db).stdout.splitlines()
        assert len(records) == lines
        (usage,) = as_json("usage", "--db", db, "--by", "session")
        assert (usage["period"], usage["messages"]) == (API_ROLLOUT, 2)
        assert (usage["input_tokens"], usage["output_tokens"]) == (2200, 130)
    assert as_json("usage", "--db", once) == as_json("usage", "--db", twice)


def summary_line(title: str, leaf: str) -> bytes:
    return orjson.dumps({"type": "summary", "summary": title, "leafUuid": leaf}) + b"\n"


@pytest.mark.parametrize("summaries_first", [False, True])
def test_summary_only_files_are_titles_not_sessions(tmp_path, summaries_first):
    folder = tmp_path / "projects" / "-home-u-app"
    folder.mkdir(parents=True)
    session = folder / f"{A_SESSION}.jsonl"
    session.write_bytes(conversation(A_SESSION, "/home/u/app", "2025-05-01", "a"))
    # Claude Code writes these at the top of later files; a file may hold nothing else.
    titles = folder / "0e9d8c7b-0000-4000-8000-00000000000f.jsonl"
    titles.write_bytes(summary_line("Listing the files", "a-a2")
                       + summary_line("Something elsewhere", "not-stored-anywhere"))
    db = tmp_path / "t.db"
    for path in ([titles, session] if summaries_first else [session, titles]):
        assert imported(db, path)["sessions"] == (path == session)

    (only,) = as_json("sessions", "--db", db)
    assert (only["session_id"], only["title"]) == (A_SESSION, "Listing the files")
    assert only["first_timestamp"] and only["last_timestamp"]
    (project,) = as_json("projects", "--db", db)
    assert (project["key"], project["session_count"]) == ("/home/u/app", 1)
    table = threadline("sessions", "--db", db).stdout
    assert "None" not in table and "Listing the files" in table


def test_sessions_are_named_by_a_unique_prefix(tmp_path):
    folder = tmp_path / "projects" / "-home-u-app"
    folder.mkdir(parents=True)
    for session, prefix in ((A_SESSION, "a"), (B_SESSION, "b"), (C_SESSION, "c")):
        (folder / f"{session}.jsonl").write_bytes(
            conversation(session, "/home/u/app", "2025-05-01", prefix))
    db = tmp_path / "t.db"
    imported(db, folder)

    assert as_json("threads", "abcd1", "--db", db)["session_id"] == A_SESSION
    assert as_json("analyze", "ffff", "--db", db)["summary"]["session_id"] == C_SESSION
    assert as_json("tools", "--db", db, "--session", "abcd2")["total"]["calls"] == 1
    for command in (["threads", "abcd"], ["analyze", "abcd"], ["tools", "--session", "abcd"]):
        line = refused(*command, "--db", db)
        assert f"threadline {command[0]}: ambiguous session id prefix 'abcd'" in line
        assert A_SESSION in line and B_SESSION in line
    line = refused("threads", "ab", "--db", db)
    assert "too short" in line and "at least 4" in line
    assert "no session" in refused("threads", "9999", "--db", db)


def test_rpcs_take_aliases_short_names_and_session_prefixes(tmp_path):
    """Every RPC that takes a project or a session, and the WebSocket subscription."""
    root = tmp_path / "projects"
    folder = root / "-home-u-app"
    folder.mkdir(parents=True)
    for session, prefix in ((A_SESSION, "a"), (B_SESSION, "b")):
        (folder / f"{session}.jsonl").write_bytes(
            conversation(session, "/home/u/app", "2025-05-01", prefix))

    async def refused_with(call) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return info.value.details()

    async def scenario():
        async with running_pipeline(tmp_path, [root]) as p:
            security = auth.for_client(p.settings)
            channels = [bootstrap.channel(a, security) for a in (
                p.store_addr, f"127.0.0.1:{p.analysis.port}", p.stream_addr)]
            store = store_pb2_grpc.StoreServiceStub(channels[0])
            analysis = analysis_pb2_grpc.AnalysisServiceStub(channels[1])
            stream = stream_pb2_grpc.StreamServiceStub(channels[2])
            try:
                async def both_stored():
                    found = await store.ListSessions(store_pb2.ListSessionsRequest())
                    return sum(s.message_count for s in found.sessions) == 8
                await eventually(both_stored)

                for name in ("-home-u-app", "app", "/home/u/app"):
                    found = await store.ListSessions(store_pb2.ListSessionsRequest(
                        project_key=name))
                    assert {(s.session_id, s.project_key, s.project_name)
                            for s in found.sessions} == {(A_SESSION, "/home/u/app", "app"),
                                                         (B_SESSION, "/home/u/app", "app")}
                page = await store.GetSessionMessages(store_pb2.GetSessionMessagesRequest(
                    session_id="abcd1"))
                assert {m.message.session_id for m in page.messages} == {A_SESSION}
                assert len(page.messages) == 4
                detail = await refused_with(store.GetSessionMessages(
                    store_pb2.GetSessionMessagesRequest(session_id="abcd")))
                assert A_SESSION in detail and B_SESSION in detail
                assert "too short" in await refused_with(store.GetSessionMessages(
                    store_pb2.GetSessionMessagesRequest(session_id="ab")))
                resolved = await store.ResolveNames(store_pb2.ResolveNamesRequest(
                    project="-home-u-app", session="abcd2"))
                assert (resolved.project_key, resolved.session_id) == ("/home/u/app",
                                                                       B_SESSION)

                threads = await analysis.GetThreads(analysis_pb2.GetThreadsRequest(
                    session_id="abcd2"))
                assert threads.session_id == B_SESSION and len(threads.nodes) == 4
                await refused_with(analysis.GetSessionAnalysis(
                    analysis_pb2.GetSessionAnalysisRequest(session_id="abcd")))
                stats = await analysis.GetToolStats(analysis_pb2.ToolStatsRequest(
                    project_key="-home-u-app", session_id="abcd1"))
                assert stats.total.calls == 1

                call = stream.Subscribe(stream_pb2.SubscribeRequest(
                    project_key="-home-u-app", session_id="abcd1", since_sequence=0))
                got = [await asyncio.wait_for(call.read(), 10) for _ in range(4)]
                call.cancel()
                assert {(c.project_key, c.session_id) for c in got} == {
                    ("/home/u/app", A_SESSION)}
                bad = stream.Subscribe(stream_pb2.SubscribeRequest(session_id="abcd"))
                assert "ambiguous session id prefix" in await refused_with(bad.read())

                async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as ws:
                    await ws.send(orjson.dumps({"type": "subscribe", "session": "abcd"}).decode())
                    error = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert (error["type"], error["error"]) == ("error", "invalid_name")
                    await ws.send(orjson.dumps({"type": "subscribe", "project": "app",
                                                "session": "abcd2", "since": 0}).decode())
                    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert (reply["type"], reply["project"], reply["session"]) == (
                        "subscribed", "/home/u/app", B_SESSION)
                    frames = [orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                              for _ in range(4)]
                    assert {f["session"] for f in frames} == {B_SESSION}
            finally:
                for channel in channels:
                    await channel.close()

    asyncio.run(scenario())


def test_a_session_filed_under_its_folder_moves_when_a_record_names_its_directory(tmp_path):
    """Records that name no cwd come first (a batch cut before the first one that does):
    the session is filed under its folder until then, and everything moves at once."""
    early = message("m1", session="sess-1", project="-w-app", cwd="")
    later = message("m2", session="sess-1", project="-w-app", offset=100, line=2,
                    ts="2025-01-01T00:00:05Z", cwd="/w/app")

    async def scenario():
        async with running_store(tmp_path / "t.db") as (_run, stub):
            await write(stub, [batch(1, [early], project="-w-app")])
            projects = (await stub.ListProjects(store_pb2.ListProjectsRequest())).projects
            assert [(p.key, p.cwd) for p in projects] == [("-w-app", "")]
            await write(stub, [batch(2, [later], project="-w-app", offset=200)])
            projects = (await stub.ListProjects(store_pb2.ListProjectsRequest())).projects
            assert [(p.key, p.cwd, p.name, list(p.aliases), p.message_count)
                    for p in projects] == [("/w/app", "/w/app", "app", ["-w-app"], 2)]
            page = await stub.GetSessionMessages(store_pb2.GetSessionMessagesRequest(
                session_id="sess-1"))
            assert [m.message.project_key for m in page.messages] == ["/w/app", "/w/app"]
            for name in ("/w/app", "-w-app"):
                replay = stub.Changes(store_pb2.ChangesRequest(project_key=name))
                changes = [c async for b in replay for c in b.changes]
                assert [(c.message.key, c.project_key) for c in changes] == [
                    ("m1", "/w/app"), ("m2", "/w/app")], name

    asyncio.run(scenario())
