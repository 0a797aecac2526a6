"""`threadline tools` and `tool_facts`: transcripts written here, imported through the real
pipeline into a real SQLite database, then read back as tool facts and reported."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import main
from threadline.storage.errors import InvalidArgument
from threadline.storage.readonly import open_readonly
from threadline.storage.stats import stats
from threadline.storage.tools import tool_facts

MODEL = "claude-sonnet-4-5-20250929"
S1, S2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
NOT_READ = ("<tool_use_error>File has not been read yet. Read it first before writing to "
            "it.</tool_use_error>")


def line(**fields) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


class Session:
    """Claude Code lines of one session, each parented to the previous one."""

    def __init__(self, session: str, cwd: str, agent: str = ""):
        self.session, self.cwd, self.agent = session, cwd, agent
        self.lines: list[bytes] = []
        self.parent: str | None = None
        self.n = 0

    def _add(self, kind: str, ts: str, message: dict, **extra) -> None:
        self.n += 1
        uuid = f"{self.session[:8]}-{self.agent or 'main'}-{self.n:04d}"
        fields = {"parentUuid": self.parent, "isSidechain": bool(self.agent),
                  "userType": "external", "cwd": self.cwd, "sessionId": self.session,
                  "version": "2.0.76", "type": kind, "message": message, "uuid": uuid,
                  "timestamp": ts, **extra}
        if self.agent:
            fields["agentId"] = self.agent
        self.lines.append(line(**fields))
        self.parent = uuid

    def prompt(self, ts: str, text: str) -> None:
        self._add("user", ts, {"role": "user", "content": text})

    def call(self, ts: str, tool_id: str, name: str, tool_input: dict) -> None:
        self._add("assistant", ts, {
            "id": f"msg_{tool_id}", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}, requestId=f"req_{tool_id}")

    def result(self, ts: str, tool_id: str, text: str, error: bool = False, **extra) -> None:
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": text}
        if error:
            block["is_error"] = True
        self._add("user", ts, {"role": "user", "content": [block]},
                  toolUseResult=extra.pop("tool_use_result", text), **extra)

    def reply(self, ts: str, msg_id: str, output_tokens: int, text: str = "done") -> None:
        self._add("assistant", ts, {
            "id": msg_id, "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": text}], "stop_reason": None,
            "usage": {"input_tokens": 100, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000}},
            requestId=f"req_{msg_id}")

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(self.lines))


# The subagent's own responses: its Grep call, msg_S1 streamed in two lines (1, then 50 output
# tokens: one response with its final figures) and msg_S2.
SUBAGENT_TOKENS = (10 + 5) + (100 + 50 + 1000) + (100 + 20 + 1000)
SUBAGENT_COST = (210 * 3 + 75 * 15 + 2 * 1000 * 0.3) / 1e6  # Sonnet 4.5 rates


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tools") / "projects"
    app = Session(S1, "/home/u/app")
    app.prompt("2025-03-02T23:00:00.000Z", "fix the parser in p.py please")
    app.call("2025-03-02T23:00:05.000Z", "toolu_e1", "Edit",
             {"file_path": "/home/u/app/p.py", "old_string": "a", "new_string": "b"})
    app.result("2025-03-02T23:00:06.000Z", "toolu_e1", NOT_READ, error=True)
    app.call("2025-03-02T23:00:07.000Z", "toolu_r1", "Read", {"file_path": "/home/u/app/p.py"})
    app.result("2025-03-02T23:00:08.000Z", "toolu_r1", "     1\tdef parse(): pass")
    app.call("2025-03-02T23:00:09.000Z", "toolu_e2", "Edit",
             {"file_path": "/home/u/app/p.py", "old_string": "pass", "new_string": "return 1"})
    app.result("2025-03-02T23:00:10.000Z", "toolu_e2", "The file has been updated.")
    app.call("2025-03-02T23:00:11.000Z", "toolu_b1", "Bash", {"command": "pytest -q"})
    app.result("2025-03-02T23:00:41.000Z", "toolu_b1", "3 passed")
    app.prompt("2025-03-02T23:01:00.000Z", "Great, thanks! That works perfectly.")
    app.call("2025-03-02T23:02:00.000Z", "toolu_t1", "Task",
             {"description": "explore", "prompt": "look around", "subagent_type": "Explore"})
    app.result("2025-03-02T23:03:30.000Z", "toolu_t1", "found it",
               tool_use_result={"status": "completed", "agentId": "abc123", "content": []})
    app.write(root / "-home-u-app" / f"{S1}.jsonl")

    agent = Session(S1, "/home/u/app", agent="abc123")
    agent.prompt("2025-03-02T23:02:01.000Z", "look around")
    agent.call("2025-03-02T23:02:05.000Z", "toolu_g1", "Grep", {"pattern": "parse"})
    agent.result("2025-03-02T23:02:06.000Z", "toolu_g1", "p.py")
    agent.reply("2025-03-02T23:02:10.000Z", "msg_S1", 1)
    agent.reply("2025-03-02T23:02:11.000Z", "msg_S1", 50)
    agent.reply("2025-03-02T23:02:40.000Z", "msg_S2", 20)
    agent.write(root / "-home-u-app" / S1 / "subagents" / "agent-abc123.jsonl")

    web = Session(S2, "/home/u/web")
    web.prompt("2025-03-05T12:00:00.000Z", "run the build")
    for n in range(3):
        web.call(f"2025-03-05T12:0{n}:10.000Z", f"toolu_w{n}", "Bash", {"command": "npm run build"})
        web.result(f"2025-03-05T12:0{n}:20.000Z", f"toolu_w{n}", "Exit code 1\nnpm ERR! missing",
                   error=True)
    web.write(root / "-home-u-web" / f"{S2}.jsonl")

    path = root.parent / "t.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(path), "--json",
                    str(root)], check=True, capture_output=True, timeout=300)
    return path


def facts_of(db: Path, **filters) -> list:
    engine = open_readonly(db)
    try:
        with engine.connect() as conn:
            return tool_facts(conn, **filters)
    finally:
        engine.dispose()


def threadline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_facts_read_from_the_store(db):
    facts = facts_of(db)
    assert [f.tool_use_id for f in facts if not f.caller] == [
        "toolu_e1", "toolu_r1", "toolu_e2", "toolu_b1", "toolu_t1",
        "toolu_w0", "toolu_w1", "toolu_w2"]
    by_id = {f.tool_use_id: f for f in facts}
    assert (by_id["toolu_g1"].caller, by_id["toolu_g1"].session_id) == ("abc123", S1)
    e1 = by_id["toolu_e1"]
    assert (e1.session_id, e1.project_key, e1.name, e1.is_error) == (
        S1, "/home/u/app", "Edit", True)
    assert e1.result_text == NOT_READ
    assert json.loads(e1.input_json)["file_path"] == "/home/u/app/p.py"
    assert (e1.started_at, e1.finished_at) == ("2025-03-02T23:00:05.000Z",
                                               "2025-03-02T23:00:06.000Z")
    s1 = [f.sequence for f in facts if f.session_id == S1]
    assert s1 == sorted(s1) and len(set(s1)) == len(s1)
    assert by_id["toolu_w0"].project_key == "/home/u/web"
    assert by_id["toolu_w2"].result_text == "Exit code 1\nnpm ERR! missing"


def test_subagent_figures_count_each_response_once(db):
    task = {f.tool_use_id: f for f in facts_of(db)}["toolu_t1"]
    assert task.agent_id == "abc123"
    assert task.subagent_messages == 6  # its prompt, its call and result, three reply lines
    assert task.subagent_tokens == SUBAGENT_TOKENS
    assert task.subagent_cost_usd == pytest.approx(SUBAGENT_COST)


def test_reaction_is_the_next_prompt_before_the_next_call(db):
    by_id = {f.tool_use_id: f for f in facts_of(db)}
    bash = by_id["toolu_b1"]
    assert bash.reaction_intent  # "Great, thanks! That works perfectly."
    assert bash.reaction_sentiment is not None and bash.reaction_sentiment > 0.5
    # Another call (or nothing) came first; a subagent's calls get no reactions.
    for tool_id in ("toolu_e1", "toolu_r1", "toolu_e2", "toolu_t1", "toolu_w2", "toolu_g1"):
        assert by_id[tool_id].reaction_intent == ""
        assert by_id[tool_id].reaction_sentiment is None


def test_filters_by_session_project_and_dates_in_a_time_zone(db):
    assert {f.session_id for f in facts_of(db, session_id=S2)} == {S2}
    assert {f.session_id for f in facts_of(db, project_key="/home/u/app")} == {S1}
    # S1's calls are on Sunday 2 March in UTC, Monday 3 March in Berlin.
    assert {f.session_id for f in facts_of(db, until="2025-03-02")} == {S1}
    assert facts_of(db, until="2025-03-02", timezone="Europe/Berlin") == []
    assert len(facts_of(db, since="2025-03-03", until="2025-03-03",
                        timezone="Europe/Berlin")) == 6
    assert {f.session_id for f in facts_of(db, since="2025-03-04")} == {S2}
    with pytest.raises(InvalidArgument, match="timezone"):
        facts_of(db, timezone="Mars/Base")
    with pytest.raises(InvalidArgument, match="since"):
        facts_of(db, since="yesterday")


def test_json_report(db):
    result = threadline("tools", "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {r["tool"]: r for r in report["rows"]}
    assert (rows["Bash"]["calls"], rows["Bash"]["errors"], rows["Bash"]["retries"]) == (4, 3, 2)
    assert rows["Bash"]["error_classes"] == {"command_failed": 3}
    assert rows["Edit"]["error_classes"] == {"not_read_first": 1}
    assert rows["Edit"]["switches"] == 1
    assert rows["Bash"]["latency_p50_ms"] == pytest.approx(10_000.0)  # 10, 10, 10, 30 s
    assert report["total"]["calls"] == 9
    assert rows["Grep"]["calls"] == 1
    assert [(s["from_tool"], s["to_tool"], s["count"], s["success_rate"])
            for s in report["switches"]] == [("Edit", "Read", 1, 1.0)]
    [loop] = report["loops"]
    assert (loop["session_id"], loop["tool"], loop["repeats"]) == (S2, "Bash", 3)
    assert loop["input_excerpt"] == '{"command":"npm run build"}'
    assert [(c["path"], c["edits"], c["failed_edits"]) for c in report["churn"]] == [
        ("/home/u/app/p.py", 2, 1)]
    [agent] = report["subagents"]
    assert (agent["agent_id"], agent["duration_seconds"], agent["tokens"]) == (
        "abc123", 90.0, SUBAGENT_TOKENS)
    assert report["timezone"] == "UTC"
    hours = {b["slot"]: b["calls"] for b in report["by_hour"] if b["calls"]}
    assert hours == {23: 6, 12: 3}
    berlin = json.loads(threadline("tools", "--db", str(db), "--json", "--timezone",
                                   "Europe/Berlin").stdout)
    assert {b["slot"]: b["calls"] for b in berlin["by_hour"] if b["calls"]} == {0: 6, 13: 3}


def test_grouped_json_report(db):
    result = threadline("tools", "--db", str(db), "--json", "--by", "project")
    report = json.loads(result.stdout)
    assert [(r["group"], r["tool"], r["calls"]) for r in report["rows"]] == [
        ("/home/u/app", "Edit", 2), ("/home/u/app", "Bash", 1), ("/home/u/app", "Grep", 1),
        ("/home/u/app", "Read", 1), ("/home/u/app", "Task", 1), ("/home/u/web", "Bash", 3)]


def test_table_output(db, capsys):
    assert main(["tools", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("9 tool calls in 2 sessions; times in UTC")
    head = next(ln for ln in out.splitlines() if ln.startswith("TOOL "))
    assert "CALLS" in head and "FAILED" in head and "FAIL%" in head and "ERROR CLASSES" in head
    bash = next(ln for ln in out.splitlines() if ln.startswith("Bash "))
    assert "command_failed 3" in bash and "75.0%" in bash
    for section in ("after a failure: the next call used another tool",
                    "loops (identical calls repeated without progress)",
                    "edit churn (most edited files)", "subagents (1; the most expensive)",
                    "calls and errors by hour (UTC)", "calls and errors by weekday (UTC)"):
        assert section in out
    assert "recommendations: none (not enough evidence for any rule)" in out


REJECTED = ("The user doesn't want to proceed with this tool use. The tool use was rejected "
            "(eg. if it was a file edit, the new_string was NOT written to the file). STOP what "
            "you are doing and wait for the user to tell you how to proceed.")


def table_rows(out: str, tool: str) -> dict[str, str]:
    """The cells of a tool's row of the table, by column name."""
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.startswith("TOOL "))
    cells = next(ln for ln in lines if ln.startswith(tool + " "))
    return dict(zip(head.split(), cells.split(), strict=False))


def test_table_and_recommendation_show_the_same_failures(tmp_path, capsys):
    """Rejections and interruptions are errors but not failures of the tool: the row and the
    failing_tool recommendation count them the same way and print the same share."""
    root = tmp_path / "projects"
    s = Session(S2, "/home/u/web")
    s.prompt("2025-03-05T12:00:00.000Z", "run everything")
    outcomes = (["fail"] * 12 + ["reject"] * 3 + ["interrupt"] + ["ok"] * 9)
    for n, outcome in enumerate(outcomes):
        at = f"2025-03-05T12:{n:02d}"
        s.call(f"{at}:10.000Z", f"toolu_{n}", "Bash", {"command": f"make step{n}"})
        text, error = {"fail": (f"Exit code 1\nstep{n} failed", True),
                       "reject": (REJECTED, True),
                       "interrupt": ("[Request interrupted by user for tool use]", True),
                       "ok": ("done", False)}[outcome]
        s.result(f"{at}:20.000Z", f"toolu_{n}", text, error=error)
    s.write(root / "-home-u-web" / f"{S2}.jsonl")
    db = tmp_path / "t.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db), "--json",
                    str(root)], check=True, capture_output=True, timeout=300)

    assert main(["tools", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    bash = table_rows(out, "Bash")
    assert (bash["CALLS"], bash["ERRORS"], bash["REJECTED"], bash["INTERRUPTED"]) == (
        "25", "16", "3", "1")
    assert (bash["FAILED"], bash["FAIL%"]) == ("12", "48.0%")
    advice = next(ln for ln in out.splitlines() if "failing_tool (Bash)" in ln)
    assert f"({bash['FAIL%']} of its calls)" in advice
    assert f"    - {bash['FAILED']} failures in {bash['CALLS']} calls ({bash['FAIL%']};" in out


def test_bad_arguments_are_clear_errors(db, tmp_path):
    for args, message in ((["--timezone", "Mars/Base"], "unknown IANA time zone"),
                          (["--since", "soon"], "since: expected YYYY-MM-DD"),
                          (["--since", "2025-03-05", "--until", "2025-03-01"], "is after")):
        result = threadline("tools", "--db", str(db), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    missing = threadline("tools", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "no threadline database" in missing.stderr


def test_report_of_the_real_corpus(tmp_path, corpus):
    path = tmp_path / "corpus.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(path), "--json",
                    str(corpus)], check=True, capture_output=True, timeout=300)
    started = time.monotonic()
    result = threadline("tools", "--db", str(path), "--json")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    engine = open_readonly(path)
    with engine.connect() as conn:
        stored = stats(conn)["tool_calls"]
    engine.dispose()
    assert report["total"]["calls"] == stored
    classes = report["total"]["error_classes"]
    errors = report["total"]["errors"]
    assert sum(classes.values()) == errors > 100
    # The classes were chosen from these transcripts: almost every error finds one.
    assert classes.get("other", 0) <= 0.05 * errors
    for expected in ("command_failed", "not_read_first", "string_not_found", "user_rejected",
                     "interrupted", "file_not_found"):
        assert classes.get(expected, 0) >= 5, (expected, classes)
    assert report["subagents"] and report["sequences"] and report["recommendations"]
    for rec in report["recommendations"]:
        assert rec["evidence"] and 0 < rec["strength"] < 1
    assert seconds < 30
