"""Codex tool outputs: every shape Codex writes is read into the text, the error and the run
time of its call, and `threadline tools` reports Codex calls with the same error classes and
latency figures as Claude Code's (a rollout written here, imported through the real
pipeline); `threadline reparse` derives the same from a database an older parser wrote."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from services.analysis.tool_patterns import percentile
from services.ingest.parser import parse_line
from threadline.domain.records import Position
from threadline.storage.readonly import open_readonly
from threadline.storage.tools import tool_facts

SESSION = "0199c0de-0000-7000-8000-00000000c0de"
ROLLOUT = f"rollout-2025-09-24T19-22-20-{SESSION}"
TS = "2025-09-25T01:22:20.084Z"

STRUCTURED_FAIL = orjson.dumps({
    "output": "src/a.ts(3,1): error TS2304: Cannot find name 'x'.\n",
    "metadata": {"exit_code": 2, "duration_seconds": 4.9}}).decode()
STRUCTURED_OK = orjson.dumps({"output": "a.ts\nb.ts\n",
                              "metadata": {"exit_code": 0, "duration_seconds": 0.4}}).decode()
SANDBOX = ("failed in sandbox MacosSeatbelt with execution error: sandbox denied exec error, "
           "exit code: 1, stdout: , stderr: touch: /etc/x: Operation not permitted\n")
SANDBOX_SYNTAX = ("failed in sandbox MacosSeatbelt with execution error: sandbox denied exec "
                  "error, exit code: 2, stdout: , stderr: bash: -c: line 0: syntax error near "
                  "unexpected token `('\n")
FREEFORM_FAIL = "Exit code: 1\nWall time: 2.5 seconds\nOutput:\nFAILED tests/test_x.py::t\n"
FREEFORM_PATCH = ("Exit code: 0\nWall time: 0 seconds\nOutput:\nSuccess. Updated the following "
                  "files:\nM a.py\n")
UNIFIED_DONE = ("Chunk ID: 9f2c\nWall time: 0.2500 seconds\nProcess exited with code 0\n"
                "Original token count: 1\nOutput:\nok")
UNIFIED_FAIL = ("Chunk ID: 9f2d\nWall time: 0.0100 seconds\nProcess exited with code 127\n"
                "Output:\nsh: nope: command not found")
UNIFIED_RUNNING = "Wall time: 10.0000 seconds\nProcess running with session ID 7\nOutput:\nstarting"
PATCH_MISMATCH = ("apply_patch verification failed: Failed to find expected lines in /w/a.py:\n"
                  "def f():")


def parse_output(output: object, kind: str = "function_call_output"):
    rec = parse_line(orjson.dumps({"timestamp": TS, "type": "response_item", "payload": {
        "type": kind, "call_id": "c", "output": output}}),
        Position(f"/c/sessions/2025/09/24/{ROLLOUT}.jsonl", 0, 1, 0))
    (block,) = rec.content
    return block


@pytest.mark.parametrize(("output", "text", "is_error", "seconds"), [
    (STRUCTURED_OK, "a.ts\nb.ts\n", False, 0.4),
    (STRUCTURED_FAIL, "src/a.ts(3,1): error TS2304: Cannot find name 'x'.\n", True, 4.9),
    (FREEFORM_FAIL, FREEFORM_FAIL, True, 2.5),
    (FREEFORM_PATCH, FREEFORM_PATCH, False, 0.0),
    (UNIFIED_DONE, UNIFIED_DONE, False, 0.25),
    (UNIFIED_FAIL, UNIFIED_FAIL, True, 0.01),
    (UNIFIED_RUNNING, UNIFIED_RUNNING, False, 10.0),
    (SANDBOX, SANDBOX, True, None),
    ("patch rejected by user", "patch rejected by user", True, None),
    ("exec command rejected by user", "exec command rejected by user", True, None),
    ("execution error: No such file or directory (os error 2)",
     "execution error: No such file or directory (os error 2)", True, None),
    (PATCH_MISMATCH, PATCH_MISMATCH, True, None),
    ("Plan updated", "Plan updated", False, None),
    # A command's own output that merely mentions a failure is no error of Codex's.
    ("notes: failed in sandbox last week", "notes: failed in sandbox last week", False, None),
    ('{"output": 3}', '{"output": 3}', False, None),
    ({"output": "x", "metadata": {"exit_code": 1, "duration_seconds": 1.5}}, "x", True, 1.5),
    ({"content": "fine", "success": False}, "fine", True, None),
])
def test_every_output_shape(output, text, is_error, seconds):
    block = parse_output(output)
    assert (block.text, block.is_error, block.duration_seconds) == (text, is_error, seconds)


def test_custom_tool_output_is_read_the_same_way():
    block = parse_output(FREEFORM_FAIL, "custom_tool_call_output")
    assert (block.is_error, block.duration_seconds) == (True, 2.5)


# --- through the pipeline --------------------------------------------------------------------

def rollout() -> bytes:
    """A rollout whose calls and outputs share one timestamp, as Codex writes them."""
    lines = [("session_meta", {"id": SESSION, "timestamp": "2025-09-25T01:00:00.000Z",
                               "cwd": "/w", "originator": "codex_cli", "cli_version": "0.39.0"}),
             ("turn_context", {"cwd": "/w", "model": "gpt-5-codex"}),
             ("response_item", {"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "fix the build"}]})]
    calls = [
        ("s1", "shell", STRUCTURED_OK), ("s2", "shell", STRUCTURED_FAIL),
        ("s3", "shell", SANDBOX), ("s4", "shell", "patch rejected by user"),
        ("s5", "shell", "execution error: No such file or directory (os error 2)"),
        ("s6", "shell", FREEFORM_FAIL), ("s7", "shell", SANDBOX_SYNTAX),
        ("e1", "exec_command", UNIFIED_DONE), ("e2", "exec_command", UNIFIED_RUNNING),
        ("e3", "exec_command", "exec command rejected by user"),
        ("e4", "exec_command", UNIFIED_FAIL),
        ("u1", "update_plan", "Plan updated"),
    ]
    for n, name, output in calls:
        lines.append(("response_item", {"type": "function_call", "name": name, "call_id": n,
                                        "arguments": json.dumps({"command": ["x", n]})}))
        lines.append(("response_item", {"type": "function_call_output", "call_id": n,
                                        "output": output}))
    for n, output in (("p1", PATCH_MISMATCH), ("p2", FREEFORM_PATCH)):
        lines.append(("response_item", {"type": "custom_tool_call", "name": "apply_patch",
                                        "call_id": n, "input": "*** Begin Patch\n"}))
        lines.append(("response_item", {"type": "custom_tool_call_output", "call_id": n,
                                        "output": output}))
    return b"".join(orjson.dumps({"timestamp": TS, "type": kind, "payload": payload}) + b"\n"
                    for kind, payload in lines)


def threadline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=300, check=True)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("codex") / "sessions"
    path = root / "2025" / "09" / "24" / f"{ROLLOUT}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(rollout())
    db = root.parent / "t.db"
    threadline("import", "--db", str(db), "--json", str(root))
    return db


def report_of(db: Path) -> dict:
    return json.loads(threadline("tools", "--db", str(db), "--json").stdout)


def ms(*seconds: float) -> list[float]:
    return sorted(s * 1000.0 for s in seconds)


def test_codex_calls_get_error_classes_and_latency(imported):
    report = report_of(imported)
    rows = {r["tool"]: r for r in report["rows"]}
    shell = rows["shell"]
    assert (shell["calls"], shell["errors"], shell["rejections"]) == (7, 6, 1)
    assert shell["error_classes"] == {"command_failed": 3, "permission_denied": 1,
                                      "user_rejected": 1, "file_not_found": 1}
    # The stated run times; a call whose output states none falls back to its two lines'
    # timestamps, which Codex writes as one (0 s).
    shell_ms = ms(0.4, 4.9, 0, 0, 0, 2.5, 0)
    assert shell["timed_calls"] == 7
    assert shell["latency_p50_ms"] == pytest.approx(percentile(shell_ms, 0.5))
    assert shell["latency_p95_ms"] == pytest.approx(percentile(shell_ms, 0.95))
    execs = rows["exec_command"]
    assert (execs["calls"], execs["errors"], execs["rejections"]) == (4, 2, 1)
    assert execs["error_classes"] == {"user_rejected": 1, "command_failed": 1}
    assert execs["latency_p95_ms"] == pytest.approx(percentile(ms(0.25, 10.0, 0, 0.01), 0.95))
    patch = rows["apply_patch"]
    assert (patch["calls"], patch["errors"], patch["error_classes"]) == (
        2, 1, {"string_not_found": 1})
    assert rows["update_plan"]["errors"] == 0
    assert report["total"]["errors"] == 9
    # The failures (not the rejection) are followed by calls: retries and switches.
    assert shell["retries"] + shell["switches"] == 5


def test_tool_facts_carry_the_stated_run_time(imported):
    engine = open_readonly(imported)
    try:
        with engine.connect() as conn:
            facts = {f.tool_use_id: f for f in tool_facts(conn)}
    finally:
        engine.dispose()
    assert facts["s2"].duration_seconds == 4.9 and facts["s2"].is_error
    assert facts["s2"].result_text.startswith("src/a.ts(3,1): error TS2304")
    assert facts["s3"].duration_seconds is None and facts["s3"].is_error
    assert facts["e2"].duration_seconds == 10.0 and not facts["e2"].is_error


def test_reparse_derives_them_in_a_database_an_older_parser_wrote(imported, tmp_path):
    """The older parser stored each output string as it was, with no error and no run time;
    `threadline reparse` rewrites the results and rebuilds their tool calls."""
    db = tmp_path / "old.db"
    source = sqlite3.connect(imported)
    target = sqlite3.connect(db)
    source.backup(target)
    source.close()
    with target:
        for key, raw in target.execute(
                "SELECT key, raw FROM messages WHERE subtype LIKE '%call_output'").fetchall():
            payload = orjson.loads(raw)["payload"]
            old = [{"kind": "tool_result", "text": payload["output"],
                    "tool_use_id": payload["call_id"], "raw_type": payload["type"]}]
            target.execute("UPDATE messages SET content_json = ?, text = '' WHERE key = ?",
                           (orjson.dumps(old), key))
        target.execute("UPDATE tool_calls SET is_error = 0")
    target.close()
    stale = report_of(db)
    assert stale["total"]["errors"] == 0
    assert {r["tool"]: r["latency_p95_ms"] for r in stale["rows"]}["shell"] == 0.0

    result = json.loads(threadline("reparse", "--db", str(db), "--json").stdout)

    assert result["tool_calls"]["changed"] == 9
    assert report_of(db) == report_of(imported)


def test_codex_rollouts_of_the_corpus(tmp_path, corpus):
    rollouts = sorted(p for p in corpus.rglob("rollout-*.jsonl")
                      if b'"function_call_output"' in p.read_bytes())
    if not rollouts:
        pytest.skip("no Codex rollout with tool outputs in the corpus")
    root = tmp_path / "rollouts"
    root.mkdir()
    for p in rollouts:
        (root / p.name).write_bytes(p.read_bytes())
    db = tmp_path / "c.db"
    threadline("import", "--db", str(db), "--json", str(root))
    report = report_of(db)
    errors = report["total"]["errors"]
    # Outputs with a non-zero exit code or a failure in Codex's words are errors, and the
    # run times the outputs state are latencies.
    assert errors > 0 and sum(report["total"]["error_classes"].values()) == errors
    assert report["total"]["error_classes"].get("other", 0) == 0
    assert max(r["latency_p95_ms"] for r in report["rows"]) > 0
