"""`threadline import` runs the whole pipeline over files and folders, then summarises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
from test_pipeline_live import user_line

from threadline.storage.messages import iter_export
from threadline.storage.parse_errors import parse_errors
from threadline.storage.readonly import open_readonly


def threadline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          timeout=300, check=True)


def expected_from(paths: list[Path]) -> tuple[set[str], set[tuple[str, int]]]:
    """Independently of threadline: uuids of well-formed records, positions of malformed lines."""
    uuids, malformed = set(), set()
    for path in paths:
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                malformed.add((str(path), number))
                continue
            if not isinstance(obj, dict):
                malformed.add((str(path), number))
            elif isinstance(obj.get("uuid"), str) and obj["uuid"]:
                uuids.add(obj["uuid"])
    return uuids, malformed


def stored(db: Path) -> tuple[list[dict], set[tuple[str, int]]]:
    with open_readonly(db).connect() as conn:
        records = list(iter_export(conn))
        errors = {(e["path"], e["line_number"]) for e in parse_errors(conn, limit=100_000)}
    return records, errors


def check_import(paths: list[Path], import_args: list[str], db: Path) -> dict:
    result = threadline("import", "--db", str(db), "--json", *import_args)
    summary = json.loads(result.stdout.decode().strip().splitlines()[-1])
    uuids, malformed = expected_from(paths)
    records, errors = stored(db)
    with_uuid = [r["uuid"] for r in records if r["uuid"]]
    assert len(with_uuid) == len(set(with_uuid)), "a uuid was stored twice"
    assert set(with_uuid) == uuids
    assert errors == malformed
    assert summary["parse_errors"] == len(malformed)
    return summary


def test_import_of_own_fixtures(tmp_path):
    root = tmp_path / "projects"
    a = root / "-home-u-app" / "a.jsonl"
    b = root / "-home-u-app" / "b.jsonl"
    a.parent.mkdir(parents=True)
    a.write_bytes(user_line("u1", session="a") + b"{not json\n" + user_line("u2", session="a")
                  + b"\xff\xfe binary\n" + b"[1, 2]\n" + user_line("u3", session="a")[:30])
    # b replays a's first record (a resumed session): stored once.
    b.write_bytes(user_line("u1", session="a") + user_line("u4", session="b")
                  + b'{"type": "brand-new-record", "x": 1}\n')
    summary = check_import([a, b], [str(root)], tmp_path / "t.db")
    assert summary["files"] == 2
    assert summary["parse_errors"] == 4
    assert summary["sessions"] == 2
    records, errors = stored(tmp_path / "t.db")
    assert any(r["type"] == "brand-new-record" for r in records), "unknown types are kept"
    assert (str(a), 6) in errors  # the unterminated, truncated last line

    again = threadline("import", "--db", str(tmp_path / "t.db"), "--json", str(root))
    assert stored(tmp_path / "t.db")[0] == records, "re-importing changes nothing"
    assert json.loads(again.stdout.decode().splitlines()[-1])["files"] == 2


def test_import_of_a_single_file(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(user_line("only", session="s1"))
    summary = check_import([path], [str(path)], tmp_path / "t.db")
    assert summary["files"] == 1 and summary["messages"] == 1


def test_import_of_the_real_corpus(tmp_path, corpus):
    paths = sorted(corpus.rglob("*.jsonl"))
    # Gemini's legacy chats are JSON documents read whole (no uuids, no bad lines).
    documents = [p for p in corpus.rglob("session-*.json") if p.parent.name == "chats"]
    summary = check_import(paths, [str(corpus)], tmp_path / "corpus.db")
    assert summary["files"] == len(paths) + len(documents)


def test_sessions_and_export_commands(tmp_path):
    root = tmp_path / "projects"
    (root / "p").mkdir(parents=True)
    lines = user_line("x1", session="s") + user_line("x2", session="s")
    (root / "p" / "s.jsonl").write_bytes(lines)
    db = str(tmp_path / "t.db")
    threadline("import", "--db", db, str(root))
    sessions = json.loads(threadline("sessions", "--db", db, "--json").stdout)
    assert [(s["session_id"], s["message_count"]) for s in sessions] == [("s", 2)]
    lines = threadline("export", "--db", db, "--format", "jsonl").stdout.splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert [e["uuid"] for e in exported] == ["x1", "x2"]
    first = exported[0]
    for field in ("parent_uuid", "session_id", "type", "role", "timestamp", "source"):
        assert field in first
    assert first["source"]["line_number"] == 1
