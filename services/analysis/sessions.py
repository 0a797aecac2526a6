"""Incremental threading and analysis of sessions, record by record, with bounded state.

Two halves, run at two moments:

- `FileThreading.thread(records)` runs inline, as a batch passes from ingest to the store: it
  gives each record of one file its thread link (thread_links.py) and notices a session
  resumed from another (`FileState.resumption`). It is cheap (a few microseconds a record),
  so it never holds the pipeline up.
- `SessionAnalyser.analyse(records)` runs in the analysis follower (follower.py) on records
  the store has committed, in the store's order: per session, the summary counters, each real
  prompt's context figures, the segment tracker and the relationship finder
  (`SessionChanges`). Every stored record reaches it exactly once, in sequence order.

The work per record does not depend on how long its session already is: everything kept per
session is a fixed number of counters, the segment tracker's and relationship finder's
bounded windows, and capped tables. Both halves hold a bounded number of files / sessions
(least recently used go first) and rebuild one that is not in memory from the store: a
file's threader replays the file's stored records; a session's analysis replays the
session's records stored before the one at hand, with their stored links.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.analysis.context import analyse_prompt
from services.analysis.normalize import session_of
from services.analysis.prompts import prompt_text
from services.analysis.relationships import RelationshipFinder
from services.analysis.reply_inference import ReplyThreader
from services.analysis.segments import SegmentTracker
from services.analysis.thread_links import link, node_id
from threadline.domain.analysis import SessionChanges, SessionSummary, Turn
from threadline.domain.links import ThreadLink
from threadline.domain.records import Record

MAX_SESSIONS = 256
MAX_FILES = 1024
# Parents remembered per session for branch detection (a rewind goes back a few turns).
MAX_PARENTS = 2048
MAX_SUBAGENTS = 1024
# Sessions remembered per file for resumptions (a file holds one, or a resumed chain of few).
MAX_FILE_SESSIONS = 64
# A prompt with no assistant reply within this long is not counted as answered late.
MAX_RESPONSE_SECONDS = 6 * 3600.0
EXCERPT_CHARS = 200
# The previous assistant text handed to intent classification (its end is what matters).
ASSISTANT_TAIL_CHARS = 1000
INTERRUPTION = "interruption"
BRANCH_COUNTED = None

# Loaders: a session's records stored before a sequence (with their stored links), in store
# order; the stored records of one file in one session, in file order.
SessionLoader = Callable[[str, int], Iterable[tuple[Record, ThreadLink]]]
FileLoader = Callable[[str, str], Sequence[Record]]


def _time(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts) if ts else None
    except ValueError:
        return None


@dataclass(slots=True)
class FileState:
    threader: ReplyThreader = field(default_factory=ReplyThreader)
    # Keys of the stored records the state was rebuilt from. After a broken stream, ingest
    # resends what was not acknowledged, and some of it may be stored: those are not threaded
    # twice. Dropped at the first record that is not among them.
    replayed: set[str] = field(default_factory=set)
    # Resumptions (see `resumption`): the session the file's name gives, whether a record of
    # it was seen, the last other session seen, the session of the last record that named
    # one, and the sessions seen (capped).
    own: str = ""
    own_seen: bool = False
    earlier: str = ""
    session_id: str = ""
    sessions: set[str] = field(default_factory=set)

    def resumption(self, session: str) -> tuple[str, str] | None:
        """(later session, the session it continues) when this record, of `session`, shows one.

        Claude Code's `--resume` starts a new session in a new file, `<new session>.jsonl`, and
        copies the earlier session's records into it with their own session id: the session
        the file is named after continues every other session whose records its file holds.
        Where the copies of several sessions come (a chain of resumptions), the last one seen
        is the session it continues (the others are older links of the chain). The copies
        are not always first: 1.0.x rewrote the copied assistant lines with the new session's
        id and kept the old id on the user lines, so the two sessions alternate in the file;
        only the file's name tells which one is new. A file that holds no record of the session
        its name gives (a renamed file): a session first seen after another continues the
        one seen just before it. Either way a session never continues one that continues it
        from the same file; `resumed_from` in the store also refuses links that close a cycle
        across files."""
        previous, self.session_id = self.session_id, session
        first = session not in self.sessions
        if first and len(self.sessions) < MAX_FILE_SESSIONS:
            self.sessions.add(session)
        if session == self.own:
            seen, self.own_seen = self.own_seen, True
            return (session, self.earlier) if not seen and self.earlier else None
        changed, self.earlier = session != self.earlier, session
        if self.own_seen:
            return (self.own, session) if changed else None
        if first and previous and previous != session:
            return session, previous
        return None


class SessionState:
    """One session's incremental analysis."""

    def __init__(self, session_id: str, project_key: str):
        self.summary = SessionSummary(session_id, project_key)
        self.segments = SegmentTracker(session_id)
        self.relations = RelationshipFinder(session_id)
        self.previous_prompt = ""
        self.previous_assistant = ""
        self._waiting_since: datetime | None = None
        # Parents seen, oldest first: hash(parent uuid) -> hash(timestamp of its first child),
        # or BRANCH_COUNTED. Hashes, not the strings: a session holds up to MAX_PARENTS of
        # these, and the two strings and a tuple took three times the memory (a collision
        # of 64-bit hashes among 2,048 entries is negligible).
        self._children: dict[int, int | None] = {}
        self._agents: OrderedDict[str, None] = OrderedDict()

    def add(self, rec: Record, thread: ThreadLink, changes: SessionChanges) -> None:
        s = self.summary
        s.messages += 1
        if rec.timestamp:
            if not s.first_timestamp or rec.timestamp < s.first_timestamp:
                s.first_timestamp = rec.timestamp
            if rec.timestamp > s.last_timestamp:
                s.last_timestamp = rec.timestamp
        self._structure(rec, thread, changes)
        if rec.is_sidechain or rec.agent_id:
            return  # subagents' records count for the session, not for its topics and turns

        prompt = prompt_text(rec)
        analysis = None
        if prompt is not None:
            analysis = analyse_prompt(prompt, self.previous_prompt, self.previous_assistant)
            self.previous_prompt = prompt
            s.prompts += 1
            s.sentiment_sum += analysis.sentiment
            if analysis.intent == INTERRUPTION:
                s.interruptions += 1
            else:
                self._waiting_since = _time(rec.timestamp)
            if thread.parent_uuid:
                self._branch(thread.parent_uuid, rec.timestamp, changes)
        elif rec.role == "assistant":
            s.assistant_messages += 1
            if rec.text:
                self.previous_assistant = rec.text[-ASSISTANT_TAIL_CHARS:]
            self._answered(rec.timestamp)

        for segment in self.segments.add(rec, prompt, analysis):
            if not segment.merged:
                changes.segments[segment.index] = segment
                continue
            # Merged into the segment before it; the next segment takes over its index. Its
            # turns move to the one it joined (the store moves those of earlier batches).
            changes.segments.pop(segment.index, None)
            changes.merged.append(segment.index)
            for turn in changes.turns:
                if turn.segment_index == segment.index:
                    turn.segment_index = segment.index - 1
        index = self.segments.current_index
        s.segments = index + 1  # indices stay consecutive through merges
        changes.relationships.extend(self.relations.add(rec, prompt, analysis, index,
                                                        self.segments.current_start_key))
        if analysis is not None:
            changes.turns.append(Turn(rec.key, s.session_id, rec.timestamp, analysis, index,
                                      prompt[:EXCERPT_CHARS]))

    def _structure(self, rec: Record, thread: ThreadLink, changes: SessionChanges) -> None:
        if (rec.type == "system" and rec.subtype == "compact_boundary") or (
                rec.subtype == "compact_summary" and not thread.parent_uuid):
            self.summary.compactions += 1
        for block in rec.content:
            agent = block.agent_id
            if block.kind == "tool_result" and agent and agent not in self._agents:
                self._agents[agent] = None
                if len(self._agents) > MAX_SUBAGENTS:
                    self._agents.popitem(last=False)
                self.summary.subagents += 1

    def _branch(self, parent: str, timestamp: str, changes: SessionChanges) -> None:
        """A typed prompt under a parent that already has a child written at another time is
        a real alternative (a rewind or an edited prompt), not a parallel tool result or a
        progress side line (format notes, section 5)."""
        key = hash(parent)
        if key not in self._children:
            self._remember_child(key, timestamp)
            return
        first = self._children[key]
        if first is not BRANCH_COUNTED and first != hash(timestamp):
            self._children[key] = BRANCH_COUNTED
            self.summary.branches += 1
            changes.thread_changed = True

    def note_child(self, parent: str, timestamp: str) -> None:
        """Any child of a parent, so a later typed prompt under it is seen as a branch."""
        if parent and hash(parent) not in self._children:
            self._remember_child(hash(parent), timestamp)

    def _remember_child(self, key: int, timestamp: str) -> None:
        children = self._children
        children[key] = hash(timestamp)
        if len(children) > MAX_PARENTS:
            del children[next(iter(children))]  # the oldest (dicts keep insertion order)

    def _answered(self, timestamp: str) -> None:
        if self._waiting_since is None:
            return
        at = _time(timestamp)
        if at is None:
            return
        try:
            seconds = (at - self._waiting_since).total_seconds()
        except TypeError:  # one timestamp with a zone, the other without
            seconds = -1.0
        self._waiting_since = None
        if 0 <= seconds <= MAX_RESPONSE_SECONDS:
            self.summary.response_seconds_sum += seconds
            self.summary.responses += 1


class FileThreading:
    """Thread links for records as they pass inline (see the module docstring)."""

    def __init__(self, load_file: FileLoader | None = None, max_files: int = MAX_FILES):
        self._load_file = load_file
        self._files: OrderedDict[str, FileState] = OrderedDict()
        self._max_files = max(1, max_files)

    def reset(self) -> None:
        self._files.clear()

    def thread(self, records: Sequence[Record], restart: bool = False
               ) -> tuple[list[ThreadLink], dict[str, str]]:
        """Links of one file's new records (in file order), and the sessions found resumed
        (session -> the session it continues). `restart`: the file was replaced or truncated
        and is read again from its start, so its threading starts again too."""
        links: list[ThreadLink] = []
        resumed: dict[str, str] = {}
        if restart and records:
            path = records[0].source.path
            self._files[path] = FileState(own=session_of(path, ""))
        for rec in records:
            state = self._file(rec.source.path, rec.session_id)
            if state.replayed:
                if rec.key in state.replayed:
                    links.append(ThreadLink())  # threaded before; the store holds it already
                    continue
                state.replayed = set()
            links.append(link(rec, state.threader))
            if rec.uuid and rec.session_id:
                # Only records that name their session count: a resumed Claude Code file
                # starts with lines that name none (they take the file's).
                found = state.resumption(rec.session_id)
                if found:
                    resumed[found[0]] = found[1]  # a later finding in the file is better
        return links, resumed

    def _file(self, path: str, session_id: str) -> FileState:
        state = self._files.get(path)
        if state is not None:
            self._files.move_to_end(path)
            return state
        state = FileState(own=session_of(path, ""))
        if self._load_file is not None:
            for rec in self._load_file(path, session_id):
                state.threader.step(rec, node_id(rec))
                state.replayed.add(rec.key)
                if rec.uuid and rec.session_id:
                    state.resumption(rec.session_id)  # stored with the records already
        self._files[path] = state
        if len(self._files) > self._max_files:
            self._files.popitem(last=False)
        return state


class SessionAnalyser:
    """Session analysis of committed records, in store order (see the module docstring)."""

    def __init__(self, load_session: SessionLoader | None = None,
                 max_sessions: int = MAX_SESSIONS):
        self._load_session = load_session
        self._sessions: OrderedDict[str, SessionState] = OrderedDict()
        self._max_sessions = max(1, max_sessions)
        self.rebuilds = 0

    def reset(self) -> None:
        self._sessions.clear()

    def analyse(self, records: Iterable[tuple[int, Record, ThreadLink]]
                ) -> dict[str, SessionChanges]:
        """What these stored records (sequence, record, its link; in sequence order) changed,
        per session."""
        changes: dict[str, SessionChanges] = {}
        for seq, rec, thread in records:
            session = self._session(rec.session_id, rec.project_key, seq)
            change = changes.get(rec.session_id)
            if change is None:
                change = changes[rec.session_id] = SessionChanges(rec.session_id)
            session.add(rec, thread, change)
            if thread.parent_uuid:
                session.note_child(thread.parent_uuid, rec.timestamp)
            # The state itself (it may be evicted before the run ends, by other sessions).
            change.summary = session.summary
        return changes

    def _session(self, session_id: str, project_key: str, seq: int) -> SessionState:
        state = self._sessions.get(session_id)
        if state is not None:
            self._sessions.move_to_end(session_id)
            return state
        state = SessionState(session_id, project_key)
        if self._load_session is not None:
            scratch = SessionChanges(session_id)
            replayed = False
            for rec, thread in self._load_session(session_id, seq):
                state.add(rec, thread, scratch)
                if thread.parent_uuid:
                    state.note_child(thread.parent_uuid, rec.timestamp)
                replayed = True
            self.rebuilds += replayed
        self._sessions[session_id] = state
        if len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return state


__all__ = ["FileState", "FileThreading", "SessionAnalyser", "SessionState"]
