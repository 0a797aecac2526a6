"""The incremental contract of threading and session analysis: results do not depend on how
records are chunked, on evictions (state rebuilt from what is stored), or on records arriving
twice."""

from __future__ import annotations

from dataclasses import asdict

from session_records import Session

from services.analysis.sessions import FileThreading, SessionAnalyser
from threadline.domain.analysis import SessionChanges
from threadline.domain.links import ThreadLink


class Stored:
    """A store: records once each, in sequence order, and each analysis update applied in
    order (the loaders read it, as the services' loaders read the database)."""

    def __init__(self) -> None:
        self.records: list = []  # (seq, record, link)
        self.turns: dict[str, int] = {}  # key -> segment index
        self.segments: dict[tuple[str, int], object] = {}
        self.summaries: dict[str, dict] = {}
        self.merges = 0

    def store(self, records, links) -> list:
        """The new ones, numbered (a record already stored is ignored)."""
        known = {r.key for _, r, _ in self.records}
        new = []
        for rec, link in zip(records, links, strict=True):
            if rec.key not in known:
                known.add(rec.key)
                new.append((len(self.records) + 1, rec, link))
                self.records.append(new[-1])
        return new

    def apply(self, changes: dict[str, SessionChanges]) -> None:
        for session, change in changes.items():
            self.merges += len(change.merged)
            for index in change.merged:
                self.segments.pop((session, index), None)
                for key, seg in self.turns.items():
                    if seg == index:
                        self.turns[key] = index - 1
            for index, segment in change.segments.items():
                self.segments[(session, index)] = segment
            for turn in change.turns:
                self.turns.setdefault(turn.key, turn.segment_index)
            self.summaries[session] = asdict(change.summary)

    def session_records(self, session_id: str, before_seq: int):
        return [(r, t) for seq, r, t in self.records
                if r.session_id == session_id and seq < before_seq]

    def file_records(self, path: str, session_id: str):
        return sorted((r for _, r, _ in self.records
                       if r.source.path == path and r.session_id == session_id),
                      key=lambda r: r.source.byte_offset)


def two_sessions() -> list:
    """Two interleaved sessions with topic changes, pauses, a merge candidate and tools."""
    a, b = Session("sa", "/repo"), Session("sb", "/other")
    out = []
    for n in range(6):
        out.append(a.wait(60).prompt(f"refactor the parser module step {n}"))
        out.append(a.wait(20).tool("Read", file_path=f"/repo/parser_{n}.py"))
        out.append(a.wait(5).reply(f"Done with step {n}."))
        out.append(b.wait(90).prompt(f"why is the nginx config reload failing {n}?"))
        out.append(b.wait(30).reply("Because the include path is wrong."))
    out.append(a.wait(700).prompt("Improve the error messages of the parser module"))
    out.append(a.wait(20).reply("Updated the error messages."))
    out.append(a.wait(30).prompt("unrelated: rotate the nginx logs on the web servers"))
    out.append(a.wait(20).tool("Bash", command="logrotate -f /etc/logrotate.conf"))
    out.append(a.wait(5).reply("Rotated."))
    for rec in out:  # each session's records come from its own file
        rec.source.path = f"{rec.session_id}.jsonl"
    return out


def run(records, chunk: int, max_sessions: int = 256) -> Stored:
    """Feed records in arrival order, `chunk` records of one file at a time: threaded as a
    batch passes, stored, then analysed in store order."""
    store = Stored()
    threading = FileThreading(store.file_records, max_files=max_sessions)
    analyser = SessionAnalyser(store.session_records, max_sessions=max_sessions)
    pending = list(records)
    while pending:
        path = pending[0].source.path
        batch = [r for r in pending if r.source.path == path][:chunk]
        for r in batch:
            pending.remove(r)
        links, _resumed = threading.thread(batch)
        store.apply(analyser.analyse(store.store(batch, links)))
    return store


def test_results_do_not_depend_on_chunking_or_eviction():
    records = two_sessions()
    whole = run(records, chunk=1000)
    single = run(records, chunk=1)
    evicting = run(records, chunk=1, max_sessions=1)
    assert single.summaries == whole.summaries == evicting.summaries
    assert single.turns == whole.turns == evicting.turns
    assert single.segments.keys() == whole.segments.keys() == evicting.segments.keys()
    assert whole.summaries["sa"]["prompts"] == 8 and whole.summaries["sb"]["prompts"] == 6
    # The short segment after the pause was merged back, and its prompt moved with it.
    assert single.merges == evicting.merges == 1
    assert [index for _, index in sorted(whole.turns.items()) if _.startswith("sa")] == [
        0] * 7 + [1]
    # Every turn points at a stored segment of its session.
    sessions = {r.key: r.session_id for r in records}
    assert all((sessions[key], index) in whole.segments for key, index in whole.turns.items())


def test_threading_a_file_again_after_a_reset_continues_from_what_is_stored():
    """After a broken stream the service drops its threaders: a resent record then gets
    the link it got the first time, rebuilt from the stored records of its file."""
    records = [r for r in two_sessions() if r.session_id == "sa"]
    store = Stored()
    threading = FileThreading(store.file_records)
    first, rest = records[:6], records[6:]
    links, _ = threading.thread(first)
    store.store(first, links)
    expected, _ = threading.thread(rest)
    threading.reset()
    again, _ = threading.thread(rest)
    assert again == expected
    assert any(link.parent_uuid for link in again)


def test_a_file_holding_two_sessions_shows_a_resumption():
    a, b = Session("old", "/repo"), Session("new", "/repo")
    records = [a.prompt("first question about the parser"), a.reply("answer"),
               b.prompt("continue where we left off"), b.reply("sure")]
    for n, rec in enumerate(records):  # one file, in this order
        rec.source.path, rec.source.byte_offset = "new.jsonl", n * 100
    _links, resumed = FileThreading().thread(records)
    assert resumed == {"new": "old"}


def test_the_pipeline_view_of_a_message_threads_like_the_whole_record(corpus):
    """Inline threading reads a reduced view of each message (servicer.thread_view): on
    real transcripts of every format it must give exactly the links the full record gives."""
    from services.analysis.normalize import message_key, session_of
    from services.analysis.servicer import thread_view
    from services.ingest.parser import parse_line
    from threadline.convert import message_to_pb
    from threadline.domain.records import Position, Record

    compared = 0
    for path in sorted(corpus.rglob("*.jsonl"))[::3]:
        records, offset = [], 0
        for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
            parsed = parse_line(line, Position(str(path), offset, number, len(line)))
            offset += len(line) + 1
            for rec in parsed if isinstance(parsed, list) else [parsed]:
                if isinstance(rec, Record):
                    rec.key = message_key(rec.uuid, "p", str(path), rec.source.byte_offset,
                                          rec.raw)
                    rec.session_id = session_of(str(path), rec.session_id)
                    records.append(rec)
        full, _ = FileThreading().thread(records)
        viewed, _ = FileThreading().thread([thread_view(message_to_pb(r)) for r in records])
        assert viewed == full, path
        compared += len(records)
    assert compared > 5000


def test_records_of_one_document_share_a_position_and_are_all_threaded():
    """A Gemini chat file or an OpenAI-style `messages` line yields several records at the
    same source position: each must still get its link."""
    s = Session("doc", "/repo")
    records = [s.prompt("How does the cache work?"), s.reply("It keeps pages hot."),
               s.prompt("Thanks, now add a test for it.")]
    for rec in records:
        rec.source.path, rec.source.byte_offset, rec.source.byte_length = "chat.json", 0, 900
    links, _ = FileThreading().thread(records)
    assert [link.parent_uuid for link in links] == ["", records[0].uuid, records[1].uuid]


def test_a_resumed_file_names_the_session_it_continues():
    """Claude Code's --resume writes B.jsonl: lines naming no session (they take the file's
    name, B), the old session A replayed, then B. B continues A, never the reverse."""
    a, b = Session("A", "/repo"), Session("B", "/repo")
    snapshot = b.prompt("")
    snapshot.uuid, snapshot.type = "", "file-history-snapshot"
    records = [snapshot, a.prompt("first question"), a.reply("answer"),
               b.prompt("continue where we left off"), b.reply("sure")]
    for n, rec in enumerate(records):
        rec.source.path, rec.source.byte_offset = "B.jsonl", n * 100
    _links, resumed = FileThreading().thread(records)
    assert resumed == {"B": "A"}


def in_file(path: str, records: list) -> list:
    for n, rec in enumerate(records):
        rec.source.path, rec.source.byte_offset = path, n * 100
    return records


def old_resumed_file() -> list:
    """Claude Code 1.0.x's --resume: NEW.jsonl copies OLD's history, but only the user lines
    keep OLD's session id; the copied assistant lines carry NEW's, so the two alternate."""
    old, new = Session("OLD", "/repo"), Session("NEW", "/repo")
    return in_file("/p/NEW.jsonl", [
        old.compact_summary(), new.reply("reading the parser"),
        old.prompt("now the lexer"), new.reply("lexer done"),
        old.prompt("and the tests"), new.reply("tests pass"),
        new.prompt("continue: release it"), new.reply("released")])


def test_a_resumed_file_whose_sessions_alternate_continues_one_way_only():
    _links, resumed = FileThreading().thread(old_resumed_file())
    assert resumed == {"NEW": "OLD"}


def test_the_session_a_file_is_named_after_continues_the_other_even_when_it_comes_first():
    old, new = Session("OLD", "/repo"), Session("NEW", "/repo")
    records = in_file("/p/NEW.jsonl", [new.reply("copied answer"), new.reply("another"),
                                       old.prompt("a copied prompt"), new.prompt("go on")])
    _links, resumed = FileThreading().thread(records)
    assert resumed == {"NEW": "OLD"}


def test_a_chain_of_resumptions_continues_the_last_session_copied():
    """C resumed B, which had resumed A: C's file holds copies of both; C continues B."""
    a, b, c = Session("A"), Session("B"), Session("C")
    records = in_file("/p/C.jsonl", [c.reply("copied"), a.prompt("oldest prompt"),
                                     c.reply("copied"), b.prompt("newer prompt"),
                                     c.reply("copied"), b.prompt("newest prompt"),
                                     c.prompt("and now?")])
    for chunk in (1, len(records)):
        threading, found = FileThreading(), {}
        for start in range(0, len(records), chunk):
            found.update(threading.thread(records[start:start + chunk])[1])
        assert found == {"C": "B"}


def test_a_run_touching_more_sessions_than_are_held_is_analysed_whole():
    sessions = [Session(f"s{n}") for n in range(5)]
    items = [(n + 1, s.prompt(f"question {n} about the parser"), ThreadLink())
             for n, s in enumerate(sessions)]
    store = Stored()
    changes = SessionAnalyser(store.session_records, max_sessions=2).analyse(items)
    assert sorted(changes) == [s.session_id for s in sessions]
    assert all(c.summary.prompts == 1 for c in changes.values())


def test_the_follower_stands_aside_while_a_bulk_import_grows_its_backlog():
    from services.analysis.follower import BULK_BACKLOG, MAX_YIELD_SECONDS, BulkImport

    bulk = BulkImport()
    big = BULK_BACKLOG + 1
    assert bulk.under_way(head=big, checkpoint=0, now=0.0)  # large and growing
    assert bulk.under_way(head=2 * big, checkpoint=0, now=1.0)
    assert not bulk.under_way(head=2 * big, checkpoint=0, now=2.0)  # the import ended
    assert not BulkImport().under_way(head=100, checkpoint=0, now=0.0)  # live traffic
    endless = BulkImport()
    assert endless.under_way(head=big, checkpoint=0, now=0.0)
    assert not endless.under_way(head=3 * big, checkpoint=0, now=MAX_YIELD_SECONDS + 1)


def test_a_prompt_written_later_under_a_parent_that_has_a_child_is_a_branch(monkeypatch):
    from services.analysis import sessions

    s = Session()
    first = s.prompt("add a cache to the loader")
    answer = s.reply("Done: the loader caches by path.")
    follow_up = s.wait(30).prompt("now make the cache size configurable")
    # The user rewinds to the answer and types a different prompt a minute later.
    rewound = s.wait(60).prompt("actually, drop the cache and batch the reads")
    links = {first.key: "", answer.key: first.key, follow_up.key: answer.key,
             rewound.key: answer.key}
    analyser = SessionAnalyser()
    items = [(n, rec, ThreadLink(parent_uuid=links[rec.key]))
             for n, rec in enumerate((first, answer, follow_up, rewound), 1)]
    changes = analyser.analyse(items)
    assert changes["s1"].summary.branches == 1 and changes["s1"].thread_changed
    # Counted once: a third alternative under the same parent adds nothing.
    again = analyser.analyse([(5, s.wait(60).prompt("or cache only small files"),
                               ThreadLink(parent_uuid=answer.key))])
    assert again["s1"].summary.branches == 1 and not again["s1"].thread_changed

    # Parents are remembered up to MAX_PARENTS, oldest forgotten first.
    monkeypatch.setattr(sessions, "MAX_PARENTS", 2)
    small = SessionAnalyser()
    t = Session("s2")
    root = t.prompt("first")
    r1, r2 = t.reply("one"), t.reply("two")
    small.analyse([(1, root, ThreadLink()), (2, r1, ThreadLink(parent_uuid=root.key)),
                   (3, r2, ThreadLink(parent_uuid=r1.key)),
                   (4, t.wait(5).reply("three"), ThreadLink(parent_uuid=r2.key))])
    late = small.analyse([(5, t.wait(60).prompt("back to the start"),
                           ThreadLink(parent_uuid=root.key))])
    assert late["s2"].summary.branches == 0  # `root` was forgotten

    # A second child written at the same moment as the first (parallel lines of one turn) is
    # no alternative.
    u = Session("s3")
    ask, reply = u.prompt("run both checks"), u.reply("Running them.")
    same = SessionAnalyser().analyse([
        (1, ask, ThreadLink()), (2, reply, ThreadLink(parent_uuid=ask.key)),
        (3, u.wait(10).prompt("first line"), ThreadLink(parent_uuid=reply.key)),
        (4, u.prompt("second line"), ThreadLink(parent_uuid=reply.key))])
    assert same["s3"].summary.branches == 0
