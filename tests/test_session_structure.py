"""A session's structure through the whole pipeline (`threadline import`, then the answers of
`threads` and `analyze`): compactions, and sessions resumed from others."""

from __future__ import annotations

from pathlib import Path

import orjson
from test_import import threadline

from services.analysis import views
from services.store import queries

PROJECT = "-home-u-app"


def claude(kind: str, uid: str, parent: str | None, session: str, ts: str, content,
           version: str = "1.0.89", **extra) -> bytes:
    message: dict = {"role": "assistant" if kind == "assistant" else "user",
                     "content": content}
    if kind == "assistant":
        message.update(id=f"msg_{uid}", model="claude-sonnet-4-5")
    return orjson.dumps({"parentUuid": parent, "isSidechain": False, "type": kind,
                         "sessionId": session, "cwd": "/home/u/app", "version": version,
                         "uuid": uid, "timestamp": ts, "message": message, **extra}) + b"\n"


def transcript(root: Path, session: str, lines: list[bytes]) -> Path:
    path = root / PROJECT / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


def answers(db: Path, session: str) -> tuple[dict, dict]:
    engine = queries.open_readonly(db)
    try:
        with engine.connect() as conn:
            return views.threads(conn, session), views.analysis(conn, session)
    finally:
        engine.dispose()


# --- compactions ---------------------------------------------------------------------------

def old_compactions(session: str) -> tuple[list[bytes], list[str]]:
    """Claude Code 1.0.x: each compaction is only a summary line that starts a new root
    (`isCompactSummary`, no parent). Three of them, each followed by a prompt and a reply."""
    lines, times = [claude("user", "p0", None, session, "2025-08-14T19:00:00.000Z",
                           "set up the parser")], []
    for n in range(1, 4):
        at = f"2025-08-14T2{n}:00:00.000Z"
        times.append(at)
        lines += [
            claude("user", f"c{n}", None, session, at,
                   "This session is being continued from a previous conversation that ran "
                   "out of context.", isCompactSummary=True),
            claude("user", f"p{n}", f"c{n}", session, f"2025-08-14T2{n}:01:00.000Z",
                   f"go on with step {n}"),
            claude("assistant", f"a{n}", f"p{n}", session, f"2025-08-14T2{n}:02:00.000Z",
                   [{"type": "text", "text": f"step {n} done"}])]
    return lines, times


def new_compaction(session: str) -> tuple[list[bytes], str]:
    """Claude Code 2.x: a `compact_boundary`, then the summary line parented to it."""
    at = "2025-11-02T10:05:00.000Z"
    boundary = orjson.dumps({
        "parentUuid": None, "logicalParentUuid": "a0", "isSidechain": False, "type": "system",
        "subtype": "compact_boundary", "content": "Conversation compacted",
        "sessionId": session, "cwd": "/home/u/app", "version": "2.0.76", "uuid": "b1",
        "timestamp": at, "compactMetadata": {"trigger": "manual", "preTokens": 150000}}) + b"\n"
    return [
        claude("user", "q0", None, session, "2025-11-02T10:00:00.000Z", "set up the lexer",
               version="2.0.76"),
        claude("assistant", "a0", "q0", session, "2025-11-02T10:01:00.000Z",
               [{"type": "text", "text": "done"}], version="2.0.76"),
        boundary,
        claude("user", "s1", "b1", session, "2025-11-02T10:05:01.000Z",
               "This session is being continued from a previous conversation.",
               version="2.0.76", isCompactSummary=True, isVisibleInTranscriptOnly=True),
        claude("user", "q1", "s1", session, "2025-11-02T10:06:00.000Z", "go on",
               version="2.0.76"),
    ], at


def test_every_compaction_of_a_session_is_listed_as_analyze_counts_it(tmp_path):
    root = tmp_path / "projects"
    old_lines, old_times = old_compactions("s-old")
    new_lines, boundary_at = new_compaction("s-new")
    transcript(root, "s-old", old_lines)
    transcript(root, "s-new", new_lines)
    db = tmp_path / "t.db"
    threadline("import", "--db", str(db), str(root))

    threads, analysis = answers(db, "s-old")
    assert [c["timestamp"] for c in threads["compactions"]] == old_times
    assert analysis["summary"]["compactions"] == 3
    # 2.x: the boundary stands for the compaction, its summary line is not another one.
    threads, analysis = answers(db, "s-new")
    assert [(c["boundary_uuid"], c["trigger"], c["pre_tokens"], c["timestamp"])
            for c in threads["compactions"]] == [("b1", "manual", 150000, boundary_at)]
    assert analysis["summary"]["compactions"] == 1
