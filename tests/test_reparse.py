"""`threadline reparse`: stored lines parsed again equal what a fresh import stores."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from store_support import running_store

from cli.reparse import KEPT, DatabaseInUse, reparse

SESSION = "5d1e7f2a-0000-4000-8000-000000000001"
CODEX_SESSION = "0199a0b0-0000-7000-8000-000000000002"
USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_creation_5m_tokens", "cache_creation_1h_tokens",
                 "cache_read_input_tokens", "service_tier", "reasoning_output_tokens")


def _claude(kind: str, uid: str, parent: str | None, ts: str, **fields) -> bytes:
    return orjson.dumps({"parentUuid": parent, "isSidechain": False, "userType": "external",
                         "cwd": "/home/u/app", "sessionId": SESSION, "version": "2.1.39",
                         "gitBranch": "main", "type": kind, "uuid": uid, "timestamp": ts,
                         **fields}) + b"\n"


def claude_session() -> bytes:
    usage = {"input_tokens": 3, "output_tokens": 12, "cache_creation_input_tokens": 100,
             "cache_read_input_tokens": 2000, "service_tier": "standard",
             "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                "ephemeral_1h_input_tokens": 100}}
    return b"".join([
        orjson.dumps({"type": "summary", "summary": "Listing files",
                      "leafUuid": "0-elsewhere"}) + b"\n",
        _claude("user", "u1", None, "2026-03-01T10:00:00.000Z",
                message={"role": "user", "content": "list the files"}),
        _claude("assistant", "a1", "u1", "2026-03-01T10:00:02.000Z", requestId="req_1",
                message={"id": "msg_1", "type": "message", "role": "assistant",
                         "model": "claude-opus-4-6", "stop_reason": None,
                         "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                      "input": {"command": "ls"}}], "usage": usage}),
        _claude("user", "u2", "a1", "2026-03-01T10:00:03.000Z",
                toolUseResult={"stdout": "a.txt", "stderr": "", "interrupted": False},
                message={"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]}),
        _claude("assistant", "a2", "u2", "2026-03-01T10:00:05.000Z", requestId="req_2",
                message={"id": "msg_2", "type": "message", "role": "assistant",
                         "model": "claude-opus-4-6", "stop_reason": "end_turn",
                         "content": [{"type": "text", "text": "There is one file: a.txt"}],
                         "usage": usage}),
        _claude("system", "y1", "a2", "2026-03-01T10:00:06.000Z", subtype="turn_duration",
                durationMs=6000, isMeta=False),
        orjson.dumps({"type": "file-history-snapshot", "messageId": "u1",
                      "snapshot": {"messageId": "u1", "trackedFileBackups": {},
                                   "timestamp": "2026-03-01T10:00:00.000Z"},
                      "isSnapshotUpdate": False}) + b"\n",
        orjson.dumps({"type": "brand-new-record", "sessionId": SESSION, "x": [1, 2]}) + b"\n",
    ])


def codex_rollout() -> bytes:
    def line(kind: str, ts: str, payload: dict) -> bytes:
        return orjson.dumps({"timestamp": ts, "type": kind, "payload": payload}) + b"\n"

    return b"".join([
        line("session_meta", "2026-03-02T09:00:00.000Z",
             {"id": CODEX_SESSION, "timestamp": "2026-03-02T09:00:00.000Z", "cwd": "/home/u/api",
              "originator": "codex_cli", "cli_version": "0.50.0",
              "git": {"branch": "dev", "commit_hash": "abc"}}),
        line("turn_context", "2026-03-02T09:00:01.000Z",
             {"cwd": "/home/u/api", "model": "gpt-5-codex", "approval_policy": "on-request"}),
        line("response_item", "2026-03-02T09:00:02.000Z",
             {"type": "message", "role": "user",
              "content": [{"type": "input_text", "text": "run the tests"}]}),
        line("response_item", "2026-03-02T09:00:03.000Z",
             {"type": "function_call", "name": "shell", "call_id": "call_1",
              "arguments": "{\"command\":[\"pytest\"]}"}),
        line("response_item", "2026-03-02T09:00:09.000Z",
             {"type": "function_call_output", "call_id": "call_1", "output": "3 passed"}),
        line("event_msg", "2026-03-02T09:00:10.000Z",
             {"type": "token_count", "info": {"last_token_usage": {
                 "input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 5,
                 "reasoning_output_tokens": 2, "total_tokens": 15}}}),
    ])


def gemini_chat() -> bytes:
    """A legacy Gemini chat: one pretty-printed JSON document, stored one record a message."""
    return orjson.dumps({
        "sessionId": "9c1f0d2e", "projectHash": "f360", "startTime": "2026-03-03T08:00:00Z",
        "lastUpdated": "2026-03-03T08:02:00Z", "messages": [
            {"id": "gm1", "timestamp": "2026-03-03T08:00:00Z", "type": "user",
             "content": "what time is it"},
            {"id": "gm2", "timestamp": "2026-03-03T08:01:00Z", "type": "gemini",
             "content": "I cannot tell.", "model": "gemini-2.5-pro",
             "tokens": {"input": 10, "output": 4, "cached": 0, "thoughts": 2, "total": 16}},
        ]}, option=orjson.OPT_INDENT_2)


def write_fixtures(base: Path) -> list[Path]:
    claude = base / "projects" / "-home-u-app" / f"{SESSION}.jsonl"
    codex = (base / "codex" / "2026" / "03" / "02"
             / f"rollout-2026-03-02T09-00-00-{CODEX_SESSION}.jsonl")
    gemini = base / "gemini" / "f360" / "chats" / "session-2026-03-03T08-00-9c1f0d2e.json"
    for path, data in ((claude, claude_session()), (codex, codex_rollout()),
                       (gemini, gemini_chat())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return [base / "projects", base / "codex", base / "gemini"]


def threadline(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          timeout=300, check=check)


def import_into(db: Path, roots: list[Path]) -> None:
    threadline("import", "--db", str(db), "--json", *map(str, roots))


def table(db: Path, name: str, key: str, drop: tuple[str, ...] = ()) -> dict:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM {name}").fetchall()
    finally:
        conn.close()
    return {r[key]: {k: r[k] for k in r.keys() if k not in drop} for r in rows}


def execute(db: Path, *statements: tuple[str, tuple]) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            for sql, params in statements:
                assert conn.execute(sql, params).rowcount >= 1, sql
    finally:
        conn.close()


def key_of(db: Path, **where: str) -> str:
    ((column, value),) = where.items()
    conn = sqlite3.connect(db)
    try:
        (key,), = conn.execute(f"SELECT key FROM messages WHERE {column} = ?", (value,))
    finally:
        conn.close()
    return key


def snapshot(db: Path) -> dict:
    return {name: table(db, name, key) for name, key in (
        ("messages", "key"), ("tool_calls", "tool_use_id"), ("sessions", "session_id"),
        ("projects", "key"))}


def test_reparse_stores_what_a_fresh_import_stores(tmp_path):
    roots = write_fixtures(tmp_path)
    db, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    import_into(db, roots)
    import_into(fresh, roots)
    function_call = key_of(db, subtype="function_call")
    novel = key_of(db, type="brand-new-record")
    # What an older parser could have stored: a tool_use it did not see, usage it ignored,
    # drift it reported, a record it mistyped, a tool_result id it invented; and the session
    # and project spans folded from those values.
    usage_null = ", ".join(f"{c} = NULL" for c in USAGE_COLUMNS)
    execute(db,
            ("UPDATE messages SET content_json = '[]' WHERE key IN ('a1', ?)", (function_call,)),
            ("UPDATE tool_calls SET name = '', use_message_key = '', input_json = x'', "
             "started_at = '' WHERE tool_use_id IN ('toolu_1', 'call_1')", ()),
            (f"UPDATE messages SET model = '', {usage_null} WHERE key = 'a2'", ()),
            ("UPDATE messages SET drift = 'unknown_field', cwd = '/old', "
             "timestamp = '1999-01-01T00:00:00Z' WHERE key = 'u1'", ()),
            ("UPDATE sessions SET cwd = '/old', first_timestamp = '1999-01-01T00:00:00Z' "
             "WHERE session_id = ?", (SESSION,)),
            ("UPDATE projects SET first_timestamp = '1999-01-01T00:00:00Z' "
             "WHERE key = '/home/u/app'", ()),
            ("UPDATE messages SET type = 'unknown', role = '' WHERE key = 'u2'", ()),
            ("UPDATE messages SET text = 'stale', output_tokens = 0 "
             "WHERE text = 'I cannot tell.'", ()),
            ("UPDATE messages SET content_json = ? WHERE key = ?",
             (b'[{"kind":"tool_result","tool_use_id":"bogus"}]', novel)),
            ("INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, "
             "result_message_key, input_json, is_error, started_at, finished_at, agent_id) "
             "VALUES ('bogus', ?, '', '', ?, x'', 0, '', '', '')", (SESSION, novel)))
    before = snapshot(db)
    assert before != snapshot(fresh)

    report = json.loads(threadline("reparse", "--db", str(db), "--json").stdout)

    after, expected = snapshot(db), snapshot(fresh)
    kept = {k: {c: v for c, v in row.items() if c in KEPT}
            for k, row in before["messages"].items()}
    assert {k: {c: v for c, v in row.items() if c in KEPT}
            for k, row in after["messages"].items()} == kept, "context columns are kept"
    for name in ("messages", "tool_calls", "sessions", "projects"):
        got, want = after[name], expected[name]
        if name == "messages":  # sequence numbers depend on the order files were read
            got = {k: {c: v for c, v in r.items() if c != "seq"} for k, r in got.items()}
            want = {k: {c: v for c, v in r.items() if c != "seq"} for k, r in want.items()}
        assert got == want, name

    assert report["messages"] == len(after["messages"])
    assert report["changed"] == 7
    assert report["columns"] == {"content_json": 3, "model": 1, "drift": 1, "cwd": 1,
                                 "timestamp": 1, "type": 1, "role": 1, "text": 1,
                                 **dict.fromkeys(USAGE_COLUMNS, 1), "output_tokens": 2}
    assert report["tool_calls"] == {"rebuilt": 2, "changed": 3}
    assert (report["sessions_updated"], report["projects_updated"]) == (1, 1)
    assert report["drift"]["before"] == dict(
        Counter(r["drift"] for r in before["messages"].values() if r["drift"]))
    assert report["drift"]["after"] == dict(
        Counter(r["drift"] for r in expected["messages"].values() if r["drift"]))
    assert report["unparsable"] == 0 and report["columns_added"] == []

    again = json.loads(threadline("reparse", "--db", str(db), "--json").stdout)
    assert (again["changed"], again["tool_calls"], again["sessions_updated"]) == (
        0, {"rebuilt": 0, "changed": 0}, 0), "a second run finds nothing to do"


def test_dry_run_reports_and_changes_nothing(tmp_path):
    db = tmp_path / "t.db"
    import_into(db, write_fixtures(tmp_path))
    execute(db, ("UPDATE messages SET text = 'stale' WHERE key = 'a2'", ()))
    before = snapshot(db)
    report = reparse(db, dry_run=True)
    assert (report.dry_run, report.changed, dict(report.columns)) == (True, 1, {"text": 1})
    assert snapshot(db) == before
    assert reparse(db).changed == 1
    assert table(db, "messages", "key")["a2"]["text"] == "There is one file: a.txt"


def test_a_stored_line_that_no_longer_parses_is_kept_and_reported(tmp_path):
    db = tmp_path / "t.db"
    import_into(db, write_fixtures(tmp_path))
    execute(db, ("UPDATE messages SET raw = ? WHERE key = 'u1'", (b'{"type": "user", oops',)))
    before = snapshot(db)
    report = reparse(db)
    assert (report.unparsable, report.changed) == (1, 0)
    (example,) = report.unparsable_examples
    assert (example.line_number, example.reason) == (2, "invalid_json")
    assert example.path.endswith(f"{SESSION}.jsonl")
    assert snapshot(db) == before


def test_reparse_refuses_while_a_store_has_the_database_open(tmp_path):
    db = tmp_path / "t.db"
    import_into(db, write_fixtures(tmp_path))
    execute(db, ("UPDATE messages SET text = 'stale' WHERE key = 'a2'", ()))

    async def scenario():
        async with running_store(db):
            with pytest.raises(DatabaseInUse, match="stop the services"):
                await asyncio.to_thread(reparse, db, wait_seconds=0.2)
            cli = await asyncio.to_thread(threadline, "reparse", "--db", str(db), "--wait",
                                          "0.2", check=False)
            assert cli.returncode == 1
            assert b"stop the services" in cli.stderr

    asyncio.run(scenario())
    assert table(db, "messages", "key")["a2"]["text"] == "stale", "nothing was changed"
    assert reparse(db).changed == 1


def test_reparse_waits_for_a_reader_that_closes_in_time(tmp_path):
    db = tmp_path / "t.db"
    import_into(db, write_fixtures(tmp_path))
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
    reader.execute("SELECT count(*) FROM messages").fetchone()
    closer = threading.Timer(0.3, reader.close)
    started = time.monotonic()
    closer.start()
    try:
        report = reparse(db, wait_seconds=10)
    finally:
        closer.cancel()
        reader.close()
    assert report.messages > 0
    assert time.monotonic() - started >= 0.3


def test_reparse_of_a_missing_database_says_so(tmp_path):
    result = threadline("reparse", "--db", str(tmp_path / "none.db"), check=False)
    assert result.returncode == 1
    assert b"no threadline database" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_reparse_of_the_real_corpus_changes_nothing(tmp_path, corpus):
    db = tmp_path / "t.db"
    import_into(db, sorted(corpus.rglob("*.jsonl"))[:60])
    before = snapshot(db)
    report = reparse(db)
    assert report.messages == len(before["messages"]) > 0
    assert (report.changed, report.unparsable, report.tool_calls_rebuilt) == (0, 0, 0)
    assert snapshot(db) == before
