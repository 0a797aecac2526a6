"""A session's structure through the whole pipeline (`threadline import`, then the answers of
`threads` and `analyze`): compactions, and sessions resumed from others."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest
from store_support import batch, messages, running_store, write
from test_import import threadline

from services.analysis import views
from threadline.storage import reanalysis
from threadline.storage.analysis import summary as session_summary
from threadline.storage.readonly import open_readonly
from threadline.v1 import analysis_types_pb2 as apb
from threadline.v1 import common_pb2 as pb
from threadline.v1 import store_pb2 as spb

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
    engine = open_readonly(db)
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


# --- resumed sessions ----------------------------------------------------------------------

def resumed_pair() -> tuple[list[bytes], list[bytes]]:
    """OLD's own file, and NEW's as Claude Code 1.0.x's --resume wrote it: OLD's history
    copied with the user lines keeping OLD's session id and the copied assistant lines
    rewritten with NEW's (new uuids, the resume's time), so the two sessions alternate; then
    NEW goes on."""
    old_file = [
        claude("user", "o1", None, "OLD", "2025-08-24T17:00:00.000Z", "build the image"),
        claude("assistant", "o2", "o1", "OLD", "2025-08-24T17:01:00.000Z",
               [{"type": "text", "text": "built"}]),
        claude("user", "o3", "o2", "OLD", "2025-08-24T17:02:00.000Z", "now test it"),
        claude("assistant", "o4", "o3", "OLD", "2025-08-24T17:03:00.000Z",
               [{"type": "text", "text": "tested"}]),
    ]
    at = "2025-08-24T18:00:00.000Z"
    new_file = [
        claude("user", "o1", None, "OLD", "2025-08-24T17:00:00.000Z", "build the image"),
        claude("assistant", "n2", "o1", "NEW", at, [{"type": "text", "text": "built"}]),
        claude("user", "o3", "n2", "OLD", "2025-08-24T17:02:00.000Z", "now test it"),
        claude("assistant", "n4", "o3", "NEW", at, [{"type": "text", "text": "tested"}]),
        claude("user", "n5", "n4", "NEW", "2025-08-24T18:01:00.000Z", "and ship it"),
        claude("assistant", "n6", "n5", "NEW", "2025-08-24T18:02:00.000Z",
               [{"type": "text", "text": "shipped"}]),
    ]
    return old_file, new_file


@pytest.mark.parametrize("order", [("OLD", "NEW"), ("NEW", "OLD")])
def test_a_resumed_session_continues_the_earlier_one_in_whatever_order_files_come(
        tmp_path, order):
    old_file, new_file = resumed_pair()
    db = tmp_path / "t.db"
    for session in order:
        root = tmp_path / session
        transcript(root, session, old_file if session == "OLD" else new_file)
        threadline("import", "--db", str(db), str(root))
    new, _ = answers(db, "NEW")
    old, _ = answers(db, "OLD")
    assert (new["resumed_from"], new["resumed_by"]) == ("OLD", [])
    assert (old["resumed_from"], old["resumed_by"]) == ("", ["NEW"])


def test_the_store_refuses_a_resumption_that_would_close_a_cycle(tmp_path):
    """Whatever threading reports, from files read in any order: A continues B and B
    continues A cannot both be stored, nor a longer cycle; a later finding that closes none
    replaces an earlier one."""
    def update(session: str, earlier: str) -> apb.AnalysisUpdate:
        return apb.AnalysisUpdate(session_id=session, project_key="proj", thread_changed=True,
                                  resumed_from=earlier)

    links = [("B", "A"), ("A", "B"), ("C", "B"), ("A", "C"), ("C", "A"), ("D", "C"),
             ("C", "C")]

    async def scenario():
        async with running_store(tmp_path / "t.db") as (_run, stub):
            call = stub.Changes(spb.ChangesRequest(follow=True))
            feed = call.__aiter__()
            # Live from here on (a replayed change is built from what is stored by then).
            await write(stub, [batch(1, messages(0, 1))])
            assert len((await anext(feed)).changes) == 1
            await write(stub, [pb.Batch(batch_id=n + 2, analysis=[update(*link)])
                               for n, link in enumerate(links)])
            told: list = []
            while len(told) < len(links):
                told += [(c.session_id, c.analysis.resumed_from)
                         for c in (await anext(feed)).changes]
            call.cancel()
            engine = open_readonly(tmp_path / "t.db")
            try:
                with engine.connect() as conn:
                    return told, {s: (session_summary(conn, s) or {}).get(
                        "resumed_from") for s in "ABCD"}
            finally:
                engine.dispose()

    told, stored = asyncio.run(scenario())
    # B<-A kept, A<-B refused; C<-B kept; A<-C refused (A<-C<-B<-A); C<-A replaces C<-B;
    # D<-C kept; C<-C refused.
    assert stored == {"A": None, "B": "A", "C": "A", "D": "C"}  # A has no summary row
    # The live changes say what was stored: a refused link is not told.
    assert told == [("B", "A"), ("A", ""), ("C", "B"), ("A", ""), ("C", "A"), ("D", "C"),
                    ("C", "")]


# --- analysis of an earlier version --------------------------------------------------------

def test_a_database_analysed_by_an_earlier_version_is_analysed_again_on_the_next_start(
        tmp_path):
    root = tmp_path / "projects"
    lines, _times = old_compactions("s-old")
    transcript(root, "s-old", lines)
    db = tmp_path / "t.db"
    threadline("import", "--db", str(db), str(root))
    threads, analysis = answers(db, "s-old")
    assert threads["segments"] and analysis["turns"]

    # As an earlier version left it: its own results, its version, its checkpoint.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE segments SET first_timestamp = '2000-01-01T00:00:00Z'")
        conn.execute("DELETE FROM turns WHERE rowid = (SELECT min(rowid) FROM turns)")
        conn.execute("UPDATE analysis_progress SET version = 0")
    conn.close()

    threadline("import", "--db", str(db), str(root))  # nothing new to read: analysis only
    again_threads, again = answers(db, "s-old")
    assert again_threads["segments"] == threads["segments"]
    assert again["turns"] == analysis["turns"]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version FROM analysis_progress").fetchone() == (
        reanalysis.ANALYSIS_VERSION,)
    conn.close()
