"""`threadline show` and `export --format md|html`: a session imported through the real
pipeline (a main file and a subagent's file), read back as a person reads it."""

from __future__ import annotations

import html.parser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SESSION = "5e55a000-0000-4000-8000-000000000001"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _line(kind: str, uuid: str, parent: str | None, at: int, **fields) -> dict:
    return {"parentUuid": parent, "isSidechain": False, "userType": "external",
            "cwd": "/home/u/app", "sessionId": SESSION, "version": "2.1.14", "type": kind,
            "uuid": uuid, "timestamp": f"2026-03-01T10:00:{at:02d}.000Z", **fields}


def _assistant(uuid: str, parent: str, at: int, msg: str, block: dict, **kw) -> dict:
    return _line("assistant", uuid, parent, at, requestId=f"req_{msg}", message={
        "id": msg, "type": "message", "role": "assistant", "model": "claude-opus-4-5",
        "content": [block], "stop_reason": None,
        "usage": {"input_tokens": 10, "output_tokens": 5}}, **kw)


def _result(uuid: str, parent: str, at: int, tool: str, text: str, error: bool = False,
            **kw) -> dict:
    return _line("user", uuid, parent, at, message={"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool, "content": text, "is_error": error}]},
        **kw)


def transcript(root: Path) -> Path:
    """A session with a prompt, a streamed answer (thinking, text, a Bash call), a failed
    Read, a Task whose subagent has its own file, a compaction, and a branch."""
    folder = root / "-home-u-app"
    (folder / SESSION / "subagents").mkdir(parents=True)
    main = [
        _line("user", "u1", None, 1, message={"role": "user",
                                               "content": f"list the files {HOSTILE}"}),
        _assistant("a1", "u1", 2, "m1", {"type": "thinking", "thinking": "I should run ls",
                                         "signature": "s"}),
        _assistant("a2", "a1", 3, "m1", {"type": "text", "text": "Listing them now."}),
        _assistant("a3", "a2", 4, "m1", {"type": "tool_use", "id": "t1", "name": "Bash",
                                         "input": {"command": "ls -la /home/u/app"}}),
        _result("r1", "a3", 5, "t1", "a.txt\nb.txt"),
        _assistant("a4", "r1", 6, "m2", {"type": "tool_use", "id": "t2", "name": "Read",
                                         "input": {"file_path": "/home/u/app/missing.py"}}),
        _result("r2", "a4", 7, "t2", "File does not exist.", error=True),
        _assistant("a5", "r2", 8, "m3", {"type": "tool_use", "id": "t3", "name": "Task",
                                         "input": {"description": "survey the repo",
                                                   "prompt": "look around",
                                                   "subagent_type": "Explore"}}),
        _result("r3", "a5", 20, "t3", "three files", toolUseResult={
            "agentId": "ab12cd3", "status": "completed", "content": []}),
        _assistant("a6", "r3", 21, "m4", {"type": "text", "text": "Done: three files."}),
        _line("system", "c1", "a6", 30, subtype="compact_boundary", content="Conversation "
              "compacted", compactMetadata={"trigger": "manual", "preTokens": 1000}),
        _line("user", "cs", "c1", 31, isCompactSummary=True, message={
            "role": "user", "content": "Summary: the user listed files."}),
        _line("user", "u2", "cs", 40, message={"role": "user", "content": "now count them"}),
        _assistant("a7", "u2", 41, "m5", {"type": "text", "text": "There are two."}),
        # The user edited their last prompt: a second reply to the same message.
        _line("user", "u3", "cs", 50, message={"role": "user", "content": "count lines"}),
        _assistant("a8", "u3", 51, "m6", {"type": "text", "text": "Five lines."}),
    ]
    sub = [
        {**_line("user", "s1", None, 10, message={"role": "user", "content": "look around"}),
         "isSidechain": True, "agentId": "ab12cd3"},
        {**_assistant("s2", "s1", 11, "sm1", {"type": "tool_use", "id": "st1", "name": "Grep",
                                               "input": {"pattern": "TODO"}}),
         "isSidechain": True, "agentId": "ab12cd3"},
        {**_result("s3", "s2", 12, "st1", "none"), "isSidechain": True, "agentId": "ab12cd3"},
        {**_assistant("s4", "s3", 13, "sm2", {"type": "text", "text": "Found three files."}),
         "isSidechain": True, "agentId": "ab12cd3"},
    ]
    path = folder / f"{SESSION}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in main))
    (folder / SESSION / "subagents" / "agent-ab12cd3.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in sub))
    return path


def threadline() -> list[str]:
    """The installed `threadline` command of this environment."""
    found = shutil.which("threadline", path=str(Path(sys.executable).parent))
    assert found, "the threadline command is not installed in this environment"
    return [found]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*threadline(), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("projects")
    transcript(root)
    db = tmp_path_factory.mktemp("db") / "t.db"
    done = run("import", "--db", str(db), str(root))
    assert done.returncode == 0, done.stderr
    return db


def test_show_prints_the_conversation_as_a_person_reads_it(db):
    shown = run("show", SESSION[:8], "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    lines = out.splitlines()
    # Prompts and answers in order; the streamed response is one answer.
    order = [out.index(s) for s in ("list the files", "Listing them now.", "Done: three files.",
                                    "context compacted", "now count them", "There are two.")]
    assert order == sorted(order)
    assert sum(1 for line in lines if line.startswith("── assistant")) == 4
    # One line per tool call: tool, main argument, outcome, duration.
    assert "⏺ Bash  ls -la /home/u/app  → ok, 1.0 s" in out
    assert "⏺ Read  /home/u/app/missing.py  → error, 1.0 s" in out
    assert "⏺ Task  survey the repo  → ok, 12.0 s" in out
    # The subagent sits under the call that started it, indented.
    task = next(i for i, line in enumerate(lines) if "⏺ Task" in line)
    assert lines[task + 2] == "    ┌ subagent ab12cd3"
    assert "    ── you · " in lines[task + 3]
    assert any(line.startswith("      ⏺ Grep  TODO  → ok") for line in lines)
    # Thinking is folded to a line; a branch is marked; full inputs stay hidden.
    assert "∴ thinking (4 words; --full shows it)" in out
    assert "⑂ a second reply to an earlier message" in out
    assert "a.txt" not in out


def test_show_full_expands_inputs_results_and_thinking(db):
    out = run("show", SESSION, "--db", str(db), "--full").stdout
    assert "I should run ls" in out
    assert '"command": "ls -la /home/u/app"' in out
    assert "│ a.txt" in out and "│ File does not exist." in out
    assert "Summary: the user listed files." in out


def test_show_refuses_an_unknown_session_in_one_line(db):
    shown = run("show", "ffffffff", "--db", str(db))
    assert shown.returncode != 0
    assert "Traceback" not in shown.stderr and len(shown.stderr.strip().splitlines()) == 1


class _Parsed(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(name for name, _ in attrs)


def test_exported_html_is_self_contained_and_transcript_text_stays_text(db, tmp_path):
    out = tmp_path / "s.html"
    done = run("export", "--format", "html", "--session", SESSION, "--db", str(db),
               "--output", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    parsed = _Parsed()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not any(a.startswith("on") for a in parsed.attrs)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not {"src", "href"} & set(parsed.attrs)  # nothing loaded from elsewhere
    assert "Bash  ls -la /home/u/app  → ok, 1.0 s" in page
    assert "subagent ab12cd3" in page


def test_exported_markdown_fences_tool_calls_and_names_the_session(db):
    done = run("export", "--format", "md", "--session", SESSION[:8], "--db", str(db))
    assert done.returncode == 0, done.stderr
    md = done.stdout
    assert md.startswith("# ")
    assert f"Session `{SESSION}`" in md
    assert "- `Bash  ls -la /home/u/app  → ok, 1.0 s`" in md
    assert "> ### subagent ab12cd3" in md


def test_sessions_are_named_by_their_first_prompt_and_filtered_by_project_part_and_day(db):
    listed = json.loads(run("sessions", "--db", str(db), "--json").stdout)
    (session,) = listed
    # No summary line names it: its first real prompt does.
    assert session["title"] == f"list the files {HOSTILE}"
    assert session["duration_seconds"] == 50.0
    assert session["project_name"] == "app"
    table = run("sessions", "--db", str(db)).stdout
    assert table.splitlines()[0].split()[:5] == ["SESSION", "PROJECT", "STARTED", "DURATION",
                                                 "MESSAGES"]
    assert SESSION[:8] in table and SESSION not in table and "50 s" in table
    for args, count in ((["--project", "u/ap"], 1), (["--project", "nowhere"], 0),
                        (["--since", "2026-03-01"], 1), (["--since", "2026-03-02"], 0),
                        (["--until", "2026-03-01"], 1), (["--until", "2026-02-28"], 0)):
        found = json.loads(run("sessions", "--db", str(db), "--json", *args).stdout)
        assert len(found) == count, args
    bad = run("sessions", "--db", str(db), "--since", "March")
    assert bad.returncode == 2 and "not a date" in bad.stderr
