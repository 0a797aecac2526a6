"""A database written by an earlier version (fewer columns) is upgraded in place and keeps
working: the store adds the missing columns on start, old rows read back with defaults."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
from sqlalchemy import create_engine
from store_support import batch, message, running_store, write

from cli.reparse import reparse
from services.analysis import normalize
from services.store import rows
from threadline.storage import reanalysis, schema
from threadline.storage.changes import changes_since
from threadline.storage.messages import iter_export
from threadline.storage.readonly import open_readonly
from threadline.storage.sessions import list_projects, list_sessions
from threadline.storage.tools import tool_calls
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2 as spb

# Columns this version added; an earlier version's database lacks them.
ADDED = ("messages.drift", "messages.reasoning_output_tokens", "tool_calls.agent_id",
         "analysis_progress.version")
PATH = "/transcripts/proj/old.jsonl"
OLD_LINE = orjson.dumps({"type": "user", "uuid": "old-1", "sessionId": "s-old",
                         "timestamp": "2025-06-01T00:00:00Z", "cwd": "/work",
                         "message": {"role": "user", "content": "written long ago"}})


def columns(db: Path, table: str) -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    try:
        return {r[1]: (r[2], r[3], r[4]) for r in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()


def old_database(db: Path) -> None:
    """The current schema minus the added columns, holding rows an earlier store wrote."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        schema.metadata.create_all(conn)
        for name in ADDED:
            table, column = name.split(".")
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        old = message("old-1", session="s-old", path=PATH, raw=OLD_LINE, text="written long ago",
                      ts="2025-06-01T00:00:00Z")
        row = {k: v for k, v in rows.message_row(old).items()
               if f"messages.{k}" not in ADDED}
        row["seq"] = 1
        names = ", ".join(f'"{k}"' for k in row)
        conn.exec_driver_sql(f"INSERT INTO messages ({names}) "
                             f"VALUES ({', '.join(f':{k}' for k in row)})", row)
        conn.exec_driver_sql(
            "INSERT INTO changes (seq, kind, ref, project_key, session_id) "
            "VALUES (1, 'message', 'old-1', 'proj', 's-old')")
        conn.exec_driver_sql(
            "INSERT INTO sessions (session_id, project_key, cwd, git_branch, version, format, "
            "first_timestamp, last_timestamp, message_count) VALUES ('s-old', 'proj', '/work', "
            "'', '', 'claude_code', '2025-06-01T00:00:00Z', '2025-06-01T00:00:00Z', 1)")
        conn.exec_driver_sql(
            "INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, "
            "result_message_key, input_json, is_error, started_at, finished_at) "
            "VALUES ('t-old', 's-old', 'Task', 'old-1', '', x'7b7d', 0, '', '')")
    engine.dispose()
    for name in ADDED:
        table, column = name.split(".")
        assert column not in columns(db, table)


def test_add_missing_columns_adds_exactly_the_missing_ones(tmp_path):
    db = tmp_path / "old.db"
    old_database(db)
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        assert sorted(schema.add_missing_columns(conn)) == sorted(ADDED)
    with engine.begin() as conn:
        assert schema.add_missing_columns(conn) == []
    engine.dispose()
    assert columns(db, "messages")["drift"] == ("TEXT", 1, "''")
    assert columns(db, "messages")["reasoning_output_tokens"] == ("INTEGER", 0, None)
    assert columns(db, "tool_calls")["agent_id"] == ("TEXT", 1, "''")


def test_a_store_started_on_an_old_database_upgrades_it_and_writes(tmp_path):
    db = tmp_path / "old.db"
    old_database(db)
    new = message("new-1", session="s-old", path=PATH, offset=100, line=2,
                  ts="2025-06-02T00:00:00Z")
    new.drift = "unknown_type"
    new.usage.CopyFrom(pb.TokenUsage(input_tokens=5, output_tokens=9,
                                     reasoning_output_tokens=7))
    call = pb.ToolCall(tool_use_id="t-new", session_id="s-old", result_message_key="new-1",
                       finished_at="2025-06-02T00:00:00Z", has_result=True, agent_id="a0123")

    async def scenario():
        async with running_store(db) as (_run, stub):
            (ack,) = await write(stub, [batch(1, [new], path=PATH, offset=200,
                                              tool_calls=[call])])
            assert (ack.new_messages, ack.last_sequence) == (1, 2), "sequences continue"
            page = await stub.GetSessionMessages(spb.GetSessionMessagesRequest(
                session_id="s-old", include_raw=True))
            return [m.message for m in page.messages]

    old, fresh = asyncio.run(scenario())
    assert (old.uuid, old.drift, old.raw, old.text) == ("old-1", "", OLD_LINE, "written long ago")
    assert (fresh.uuid, fresh.drift) == ("new-1", "unknown_type")
    assert fresh.usage.reasoning_output_tokens == 7 and fresh.usage.output_tokens == 9
    with open_readonly(db).connect() as conn:
        calls = {c["tool_use_id"]: c for c in tool_calls(conn)}
        (session,) = list_sessions(conn)
    assert calls["t-old"]["agent_id"] == "" and calls["t-old"]["name"] == "Task"
    assert calls["t-new"]["agent_id"] == "a0123"
    assert session["message_count"] == 2
    for name in ADDED:
        table, column = name.split(".")
        assert column in columns(db, table)


def test_reparse_upgrades_an_old_database_too(tmp_path):
    db = tmp_path / "old.db"
    old_database(db)
    report = reparse(db)
    assert sorted(report.columns_added) == sorted(ADDED)
    assert report.messages == 1 and report.unparsable == 0
    # The stored row was built by the test, not by the parser: reparse replaces what the
    # parser derives (here the content blocks' raw type and the format it detects).
    with open_readonly(db).connect() as conn:
        (record,) = list(iter_export(conn, include_raw=True))
    assert (record["uuid"], record["text"], record["raw"]) == ("old-1", "written long ago",
                                                               OLD_LINE)
    assert record["source"]["path"] == PATH and record["sequence"] == 1


def old_analysis(db: Path) -> None:
    """What an earlier version's follower stored: its results and its checkpoint; and the
    resumptions its threading stored, some of them backwards (a session continuing one that
    started after it), some closing cycles."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO analysis_progress (id, seq) VALUES (1, 1)")
        conn.exec_driver_sql(
            "INSERT INTO segments VALUES ('s-old', 0, 'old-1', 'old-1', '2025-05-01T00:00:00Z', "
            "'2025-06-01T00:00:00Z', 'written long ago', '[]', 1, 1, 0, 'start', 0, 1)")
        conn.exec_driver_sql(
            "INSERT INTO turns VALUES ('old-1', 's-old', '2025-06-01T00:00:00Z', 'request', 0.8, "
            "'', 0, 0, 0.5, 5, 0, 3, 0, 'written long ago')")
        conn.exec_driver_sql(
            "INSERT INTO relationships VALUES ('old-1', 'old-0', 'reference', 's-old', 0.5, '')")
        for session, start in (("s-later", "2025-06-02T00:00:00Z"),
                               ("s-early", "2025-05-01T00:00:00Z")):
            conn.exec_driver_sql(
                "INSERT INTO sessions (session_id, project_key, cwd, git_branch, version, "
                "format, first_timestamp, last_timestamp, message_count) VALUES "
                f"('{session}', 'proj', '/work', '', '', 'claude_code', '{start}', '{start}', 1)")
        # s-x and s-y have no stored records (so no start time) and continue each other.
        for session, earlier in (("s-old", "s-later"), ("s-later", "s-old"),
                                 ("s-early", "s-old"), ("s-x", "s-y"), ("s-y", "s-x")):
            conn.exec_driver_sql(
                "INSERT INTO session_summaries (session_id, project_key, messages, prompts, "
                "assistant_messages, interruptions, response_seconds_sum, responses, "
                "first_timestamp, last_timestamp, branches, compactions, subagents, "
                "resumed_from, sentiment_sum, segments) VALUES "
                f"('{session}', 'proj', 1, 1, 0, 0, 0, 0, '', '', 0, 0, 0, '{earlier}', 0, 1)")
    engine.dispose()


def test_analysis_of_an_earlier_version_is_made_again_and_its_resumption_cycles_broken(
        tmp_path):
    db = tmp_path / "old.db"
    old_database(db)
    old_analysis(db)

    def stored() -> dict:
        with open_readonly(db).connect() as conn:
            return {
                "progress": tuple(conn.exec_driver_sql(
                    "SELECT seq, version FROM analysis_progress").one()),
                "results": [conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                            for t in ("segments", "turns", "relationships")],
                "resumed": dict(conn.exec_driver_sql(
                    "SELECT session_id, resumed_from FROM session_summaries").all())}

    async def start() -> None:
        async with running_store(db):
            pass

    asyncio.run(start())
    # The follower starts again from the first message; what it would not overwrite is gone.
    # A session continues none that started after it; of a cycle without start times, the
    # link of the first session by id goes.
    assert stored() == {"progress": (0, reanalysis.ANALYSIS_VERSION), "results": [0, 0, 0],
                        "resumed": {"s-old": "", "s-later": "s-old", "s-early": "",
                                    "s-x": "", "s-y": "s-x"}}

    # Analysed by this version: a restart keeps the results.
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE analysis_progress SET seq = 1")
        conn.exec_driver_sql(
            "INSERT INTO relationships VALUES ('old-1', 'old-0', 'reference', 's-old', 0.5, '')")
    engine.dispose()
    asyncio.run(start())
    assert stored()["progress"] == (1, reanalysis.ANALYSIS_VERSION)
    assert stored()["results"] == [0, 0, 1]


# --- a database that filed projects by folder -------------------------------------------------

APP = "/home/u/app"
CODEX_SESSION = "0199a0b0-0000-7000-8000-0000000000c3"
ROLLOUT = f"rollout-2025-09-24T09-00-00-{CODEX_SESSION}.jsonl"
CODEX_LINES = [
    orjson.dumps({"timestamp": "2025-09-24T09:00:00.000Z", "type": "session_meta",
                  "payload": {"id": CODEX_SESSION, "cwd": "/home/u/api",
                              "timestamp": "2025-09-24T09:00:00.000Z"}}),
    orjson.dumps({"timestamp": "2025-09-24T09:00:01.000Z", "type": "response_item",
                  "payload": {"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "hello"}]}}),
]


def folder_keyed_database(db: Path) -> None:
    """What the previous version stored: every record under the first folder below its
    import root, a summary-only file as a session, one Codex rollout imported from two
    folders twice, under keys made of the folder and the file name."""
    def old_key(folder: str, path: str, offset: int, raw: bytes) -> str:
        return normalize.message_key("", folder, path, offset, raw)

    stored: list[tuple[str, pb.Message]] = []

    def claude(uid: str, session: str, folder: str, path: str, **kw) -> None:
        stored.append((folder, message(uid, session=session, project=folder, path=path,
                                       cwd=APP, **kw)))

    claude("u1", "s-app", "-home-u-app", "/p/-home-u-app/s-app.jsonl", ts="2025-06-01T00:00:00Z")
    claude("x1", "s-app", "s-app", "/p/-home-u-app/s-app/subagents/agent-a1.jsonl",
           ts="2025-06-01T00:00:05Z")
    summary = message("", session="sum", project="-home-u-app",
                      path="/p/-home-u-app/sum.jsonl", cwd="", ts="",
                      text="Old title", raw=b'{"type":"summary","summary":"Old title"}')
    summary.type, summary.logical_parent_uuid = "summary", "x1"
    summary.key = old_key("-home-u-app", summary.source.path, 0, summary.raw)
    stored.append(("-home-u-app", summary))
    for folder, path in (("2025", f"/c/2025/09/24/{ROLLOUT}"), ("archive", f"/b/{ROLLOUT}")):
        offset = 0
        for raw in CODEX_LINES:
            m = message("", session=CODEX_SESSION, project=folder, path=path, offset=offset,
                        raw=raw, cwd="/home/u/api" if offset == 0 else "",
                        ts="2025-09-24T09:00:00Z")
            m.format, m.uuid = pb.SOURCE_FORMAT_CODEX, ""
            m.key = old_key(folder, path, offset, raw)
            stored.append((folder, m))
            offset += len(raw) + 1
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        schema.metadata.create_all(conn)
        for table in ("project_aliases", "summary_titles"):  # tables of this version
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for seq, (folder, m) in enumerate(stored, start=1):
            row = rows.message_row(m)
            row["seq"] = seq
            conn.execute(schema.messages.insert().values(**row))
            conn.execute(schema.changes.insert().values(
                seq=seq, kind="message", ref=row["key"], project_key=folder,
                session_id=row["session_id"]))
        for sid, folder, count, ts in (("s-app", "-home-u-app", 2, "2025-06-01T00:00:00Z"),
                                       ("sum", "-home-u-app", 1, None),
                                       (CODEX_SESSION, "2025", 4, "2025-09-24T09:00:00Z")):
            conn.execute(schema.sessions.insert().values(
                session_id=sid, project_key=folder, cwd="" if ts is None else APP,
                git_branch="", version="", format="claude_code", first_timestamp=ts,
                last_timestamp=ts, message_count=count))
        for key in ("-home-u-app", "s-app", "2025", "archive"):
            conn.execute(schema.projects.insert().values(key=key, cwd=""))
        dropped_copy = stored[-1][1].key
        conn.execute(schema.turns.insert().values(
            key=dropped_copy, session_id=CODEX_SESSION, timestamp="", intent="ask",
            intent_confidence=1.0, intent_evidence="", sentiment=0.0, urgency=0.0,
            clarity=0.0, complexity=0.0, similarity_previous=0.0, word_count=1,
            segment_index=0, excerpt="hello"))
        # Analysed by the current analysis (reanalysis.py has nothing to do).
        conn.execute(schema.analysis_progress.insert().values(
            id=1, seq=len(stored), version=reanalysis.ANALYSIS_VERSION))
    engine.dispose()


def test_a_folder_keyed_database_is_filed_under_working_directories(tmp_path):
    db = tmp_path / "old.db"
    folder_keyed_database(db)

    async def start_and_stop():
        async with running_store(db):
            pass

    asyncio.run(start_and_stop())
    with open_readonly(db).connect() as conn:
        projects = {p["key"]: p for p in list_projects(conn)}
        sessions = {s["session_id"]: s for s in list_sessions(conn)}
        records = list(iter_export(conn))
        changes = changes_since(conn, 0, limit=100)
        progress = conn.exec_driver_sql("SELECT seq FROM analysis_progress").scalar()
        turns = conn.exec_driver_sql("SELECT count(*) FROM turns").scalar()
        version = conn.exec_driver_sql("PRAGMA user_version").scalar()
    assert sorted(projects) == ["/home/u/api", APP]
    assert projects[APP]["aliases"] == ["-home-u-app", "s-app"]
    assert projects["/home/u/api"]["aliases"] == ["2025", "archive"]
    assert (projects[APP]["name"], projects[APP]["session_count"]) == ("app", 1)
    # The summary-only file is no session; its summary titles the session it names.
    assert sorted(sessions) == [CODEX_SESSION, "s-app"]
    assert (sessions["s-app"]["message_count"], sessions["s-app"]["title"]) == (2, "Old title")
    assert sessions[CODEX_SESSION]["message_count"] == 2
    assert {r["project_key"] for r in records if r["session_id"] != CODEX_SESSION} == {APP}
    codex = [r for r in records if r["session_id"] == CODEX_SESSION]
    assert [r["source"]["path"] for r in codex] == [f"/c/2025/09/24/{ROLLOUT}"] * 2
    assert all(r["key"].startswith("codex:") and r["project_key"] == "/home/u/api"
               for r in codex)
    assert [(c["seq"], c["project_key"]) for c in changes] == [
        (1, APP), (2, APP), (3, APP), (4, "/home/u/api"), (5, "/home/u/api")]
    assert [c["message"]["key"] for c in changes] == [r["key"] for r in records]
    # The session that held copies is analysed again from before its first record.
    assert (progress, turns) == (3, 0)
    assert version == 1

    # The rollout read again from a third folder adds nothing: the keys are the new ones.
    rollout = tmp_path / "elsewhere" / ROLLOUT
    rollout.parent.mkdir()
    rollout.write_bytes(b"\n".join(CODEX_LINES) + b"\n")
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db), str(rollout)],
                   check=True, capture_output=True, timeout=300)
    with open_readonly(db).connect() as conn:
        again = list(iter_export(conn))
    assert [r["key"] for r in again] == [r["key"] for r in records]
