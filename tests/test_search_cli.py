"""`threadline search`: a small transcript imported through the real pipeline, searched from
the command line as a table and as JSON, hostile queries refused in one line, and the index
rebuilt under the writer's lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_tools_cli import Session

from threadline import dblock

S1, S2 = "5e55a0a1-0000-4000-8000-000000000001", "7a11b0b2-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search") / "projects"
    app = Session(S1, "/home/u/app")
    app.prompt("2026-11-02T10:00:00.000Z", "why does the parser drop the last line?")
    app.call("2026-11-02T10:00:05.000Z", "toolu_b1", "Bash", {"command": "pytest -q tests"})
    app.result("2026-11-02T10:00:09.000Z", "toolu_b1", "1 failed: test_tail_line")
    app.reply("2026-11-02T10:00:20.000Z", "msg_a1", 5,
              "The parser waits for a newline that never comes.")
    app.write(root / "-home-u-app" / f"{S1}.jsonl")
    web = Session(S2, "/home/u/web")
    web.prompt("2026-11-05T12:00:00.000Z", "rename the stylesheet")
    web.reply("2026-11-05T12:00:10.000Z", "msg_w1", 5, "Renamed; the parser is untouched.")
    web.write(root / "-home-u-web" / f"{S2}.jsonl")
    path = root.parent / "t.db"
    subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(path), "--json",
                    str(root)], check=True, capture_output=True, timeout=300)
    return path


def threadline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_hits_print_as_a_table_with_the_match_marked(db):
    out = threadline("search", "last", "line", "--db", str(db))
    assert out.returncode == 0, out.stderr
    head, *rows = out.stdout.splitlines()
    assert head.split() == ["TIME", "SESSION", "ROLE", "WHERE", "SNIPPET"]
    assert len(rows) == 1
    assert rows[0].startswith("2026-11-02 10:00:00  5e55a0a1  user")
    assert "prompt" in rows[0]
    assert "why does the parser drop the [last] [line]?" in rows[0]


def test_filters_and_excluded_words_narrow_the_hits(db):
    everywhere = threadline("search", "parser", "--db", str(db), "--json")
    assert {h["session_id"] for h in json.loads(everywhere.stdout)["hits"]} == {S1, S2}
    # Quoted whole, a query may start with an excluded word.
    narrowed = threadline("search", "-newline parser role:assistant", "--db", str(db),
                          "--json")
    assert narrowed.returncode == 0, narrowed.stderr
    assert [h["session_id"] for h in json.loads(narrowed.stdout)["hits"]] == [S2]


def test_json_is_the_hits_as_plain_objects(db):
    out = threadline("search", "failed", "--json", "--limit", "5", "--db", str(db))
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert set(found) == {"hits", "more", "recent_only", "expression"}
    assert found["more"] is False and found["recent_only"] is False
    (hit,) = found["hits"]
    assert set(hit) == {"sequence", "key", "uuid", "session_id", "project_key", "timestamp",
                        "role", "type", "model", "ordinal", "score", "columns", "snippet"}
    assert hit["session_id"] == S1 and hit["columns"] == ["tool_result"]
    assert hit["ordinal"] == 3
    assert {"text": "failed", "highlighted": True} in hit["snippet"]
    assert "".join(p["text"] for p in hit["snippet"]) == "1 failed: test_tail_line"


@pytest.mark.parametrize("query", ['"unbalanced', "since:yesterday parser",
                                   "role:robot parser", "session:5e parser"])
def test_a_bad_query_is_one_line_and_exit_2(db, query):
    out = threadline("search", query, "--db", str(db))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("threadline search: ")
    assert len(out.stderr.splitlines()) == 1


def test_full_text_syntax_and_terminal_controls_are_only_words(db):
    # FTS5's own syntax is searched for as words, never run; an escape sequence in the query
    # is written back escaped, not sent to the terminal.
    out = threadline("search", 'NEAR(parser last) {prompt}: ^why', "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "no messages match" in out.stdout
    bad = threadline("search", '"\x1b[31mred', "--db", str(db))
    assert bad.returncode == 2
    assert "\x1b" not in bad.stderr and "\\x1b" in bad.stderr


def test_rebuild_fills_an_emptied_index_and_waits_for_no_writer(db):
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO message_search (message_search) VALUES ('delete-all')")
    assert json.loads(threadline("search", "stylesheet", "--json", "--db",
                                 str(db)).stdout)["hits"] == []
    # A running store holds the writer's lock: rebuilding beside it is refused, naming it.
    lock = dblock.acquire(db, "threadline up")
    try:
        refused = threadline("search", "--rebuild", "--db", str(db))
    finally:
        lock.release()
    assert refused.returncode == 2
    assert "in use by" in refused.stderr and "threadline up" in refused.stderr
    done = threadline("search", "--rebuild", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "search index rebuilt: 6 messages indexed\n"
    found = json.loads(threadline("search", "stylesheet", "--json", "--db", str(db)).stdout)
    assert [h["session_id"] for h in found["hits"]] == [S2]


def test_a_query_is_required_unless_rebuilding(db):
    out = threadline("search", "--db", str(db))
    assert out.returncode == 2 and "give a query" in out.stderr
