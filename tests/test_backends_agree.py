"""The same transcripts imported into SQLite and into PostgreSQL give the same answers.

The whole pipeline runs each time (`threadline import`: ingest, analysis and its follower,
the store on the backend under test), and every read the CLI offers is compared: records
with their reply tree, sessions, projects, usage, tools, parse errors and each session's
analysis. Sequence numbers are left out: files are read concurrently, so the order in which
their batches are numbered differs between any two runs, whatever the backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from store_support import SERVER_TOKEN

# Small folders of the corpus, together every format it holds (Claude Code, Gemini CLI).
FOLDERS = ("kvsankar-agent-history", "oneryalcin-fasthooks", "DRMacIver-claude-reliability",
           "metaphi-agent-gemini", "brian-ln-agentic-primer", "chiphuyen-sniffly")


def threadline(*args: str | Path) -> str:
    result = subprocess.run([sys.executable, "-m", "cli", *map(str, args)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "THREADLINE_TOKEN": SERVER_TOKEN})
    assert result.returncode == 0, result.stderr
    return result.stdout


def answers(db: Path | str, roots: list[Path]) -> dict:
    threadline("import", "--db", db, "--json", *roots)
    records = [json.loads(line) for line in threadline("export", "--db", db).splitlines()]
    for record in records:
        record.pop("sequence")
    sessions = json.loads(threadline("sessions", "--db", db, "--json"))
    out = {
        "records": sorted(records, key=lambda r: r["key"]),
        "sessions": sorted(sessions, key=lambda s: s["session_id"]),
        "projects": json.loads(threadline("projects", "--db", db, "--json")),
        "errors": sorted(json.loads(threadline("errors", "--db", db, "--json")),
                         key=lambda e: (e["path"], e["byte_offset"])),
    }
    for by in ("session", "project", "model", "day"):
        out[f"usage by {by}"] = json.loads(threadline("usage", "--db", db, "--by", by,
                                                      "--timezone", "UTC", "--json"))
    out["tools"] = json.loads(threadline("tools", "--db", db, "--json"))
    # The longest sessions (each command is a process of its own: a few, not all).
    longest = sorted(out["sessions"], key=lambda s: (-s["message_count"], s["session_id"]))[:3]
    for s in longest:
        out[f"analysis {s['session_id']}"] = json.loads(
            threadline("analyze", s["session_id"], "--db", db, "--json"))
    return out


# Two imports and some twenty commands, each a process of its own.
@pytest.mark.timeout(600)
def test_postgresql_answers_what_sqlite_answers(corpus, tmp_path, postgres_url):
    roots = [corpus / name for name in FOLDERS if (corpus / name).is_dir()]
    if not roots:
        pytest.skip("none of the corpus folders this test reads is present")
    on_sqlite = answers(tmp_path / "t.db", roots)
    on_postgresql = answers(postgres_url, roots)
    # Stored on the server, not in a file named after the URL.
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert stored == len(on_postgresql["records"])
    assert len(on_sqlite["records"]) > 100 and len(on_sqlite["sessions"]) > 3
    for name, expected in on_sqlite.items():
        assert on_postgresql[name] == expected, name
