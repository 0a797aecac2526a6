"""The Analyser's incremental contract: results do not depend on how records are chunked,
on evictions (state rebuilt from what is stored), or on records arriving twice."""

from __future__ import annotations

from dataclasses import asdict

from session_records import Session

from services.analysis.model import SessionChanges
from services.analysis.sessions import Analyser


class Stored:
    """What a store would hold after applying each update in order (the loaders read it)."""

    def __init__(self) -> None:
        self.records: list = []  # (record, link) in store order
        self.turns: dict[str, int] = {}  # key -> segment index
        self.segments: dict[tuple[str, int], object] = {}
        self.summaries: dict[str, dict] = {}
        self.merges = 0

    def apply(self, records, links, changes: dict[str, SessionChanges]) -> None:
        known = {r.key for r, _ in self.records}
        self.records += [(r, t) for r, t in zip(records, links, strict=True)
                         if r.key not in known]
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

    def session_records(self, session_id: str):
        return [(r, t) for r, t in self.records if r.session_id == session_id]

    def file_records(self, path: str, session_id: str):
        return sorted((r for r, _ in self.records
                       if r.source.path == path and r.session_id == session_id),
                      key=lambda r: r.source.byte_offset)

    def stored_keys(self, keys) -> set[str]:
        known = {r.key for r, _ in self.records}
        return {k for k in keys if k in known}


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
    store = Stored()
    analyser = Analyser(store.session_records, store.file_records, store.stored_keys,
                        max_sessions=max_sessions, max_files=max_sessions)
    by_file: dict[str, list] = {}
    for rec in records:
        by_file.setdefault(rec.source.path, []).append(rec)
    # Feed in arrival order, `chunk` records of one file at a time.
    pending = list(records)
    while pending:
        path = pending[0].source.path
        batch = [r for r in pending if r.source.path == path][:chunk]
        for r in batch:
            pending.remove(r)
        links, changes = analyser.process(batch)
        store.apply(batch, links, changes)
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


def test_a_record_seen_again_is_not_counted_twice():
    records = two_sessions()
    store = Stored()
    analyser = Analyser(store.session_records, store.file_records, store.stored_keys)
    first = [r for r in records if r.session_id == "sa"][:6]
    links, changes = analyser.process(first)
    store.apply(first, links, changes)
    before = dict(store.summaries["sa"])
    # The same records again (a resent batch, or history replayed by a resumed session).
    links, changes = analyser.process(first)
    store.apply(first, links, changes)
    assert not changes or store.summaries["sa"] == before
    # And after the state was dropped (the service resets on a broken stream).
    analyser.reset()
    links, changes = analyser.process(first)
    assert not changes
    assert analyser.rebuilds == 0  # nothing new to analyse: no session was rebuilt
