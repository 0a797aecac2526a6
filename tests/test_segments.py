"""Topical segments: each boundary reason, the adaptive pause, merging, titles, coherence,
bounded state and replay; and structural properties on real sessions."""

from __future__ import annotations

from collections import deque

import pytest
from session_records import PromptReader, Session, corpus_sessions, figures

from services.analysis import relationships, segments
from services.analysis.relationships import RelationshipFinder
from services.analysis.segments import SegmentTracker, title_of
from threadline.domain.analysis import Segment


class Run:
    """A tracker fed through a hand-made session; keeps the segments as a store would."""

    def __init__(self, session: Session | None = None) -> None:
        self.s = session or Session()
        self.tracker = SegmentTracker(self.s.session_id)
        self.segments: dict[int, Segment] = {}
        self.records = []

    def feed(self, rec, prompt=None, analysis=None) -> list[Segment]:
        self.records.append((rec, prompt, analysis))
        changed = self.tracker.add(rec, prompt, analysis)
        for seg in changed:  # in order: a merged segment is dropped before its index reopens
            if seg.merged:
                self.segments.pop(seg.index, None)
            else:
                self.segments[seg.index] = seg
        return changed

    def ask(self, text: str, pause: float = 60.0, intent: str = "request",
            similarity: float = 0.0) -> list[Segment]:
        """A prompt after `pause` seconds of quiet, and a short answer 20 s later."""
        changed = self.feed(self.s.wait(pause).prompt(text), text,
                            figures(text, intent, similarity))
        self.feed(self.s.wait(20).reply(f"Done: {text[:40]}"))
        return changed

    def command(self, name: str, pause: float = 30.0) -> list[Segment]:
        rec = self.s.wait(pause).prompt(f"<command-name>/{name}</command-name>\n"
                                        f"<command-message>{name}</command-message>")
        return self.feed(rec, f"/{name}", figures(f"/{name}", "command"))

    def touch(self, *paths: str) -> None:
        """The assistant reads each file (one tool call per file)."""
        for path in paths:
            self.feed(self.s.wait(5).tool("Read", file_path=f"/repo/{path}"))

    def ordered(self) -> list[Segment]:
        return [self.segments[i] for i in sorted(self.segments)]


def opened(changed: list[Segment]) -> Segment | None:
    """The segment a record opened: the last of several returned (closed/merged ones first)."""
    return changed[-1] if len(changed) > 1 else None


def warm_up(run: Run, pause: float, prompts: int = 8) -> None:
    for n in range(prompts):
        run.ask(f"refactor parser module step {n}", pause=pause)


# --- time gap ------------------------------------------------------------------------------

def test_the_same_twenty_minute_pause_is_a_boundary_only_in_a_fast_session():
    fast, slow = Run(), Run()
    warm_up(fast, pause=60)  # answers within a minute
    warm_up(slow, pause=25 * 60)  # the user comes back every 25 minutes
    assert fast.tracker.gap_threshold() == segments.GAP_FLOOR
    assert slow.tracker.gap_threshold() == pytest.approx(4 * 25 * 60)
    assert [s.index for s in slow.ordered()] == [0]

    seg = opened(fast.ask("write the release notes for version two", pause=20 * 60))
    assert seg is not None and seg.boundary_reason == "time_gap" and seg.index == 1
    assert seg.boundary_score == pytest.approx(1200 / (1200 + 600), abs=1e-3)
    assert opened(slow.ask("write the release notes for version two", pause=20 * 60)) is None
    assert slow.tracker.current_index == 0


def test_before_a_session_shows_its_pace_the_default_threshold_applies():
    run = Run()
    run.ask("set up the project", pause=0)
    assert run.tracker.gap_threshold() == segments.GAP_DEFAULT
    assert opened(run.ask("add a logger", pause=20 * 60)) is None  # 20 min < 30 min default
    seg = opened(run.ask("write the deployment guide", pause=45 * 60))
    assert seg is not None and seg.boundary_reason == "time_gap"


def test_a_pause_before_an_approval_or_a_command_does_not_open_a_segment_there():
    run = Run()
    warm_up(run, pause=60)
    assert opened(run.ask("yes, go ahead", pause=40 * 60, intent="approval")) is None
    assert not opened(run.command("model", pause=40 * 60))
    # The pause before the command is carried to the next prompt that can open a topic.
    seg = opened(run.ask("now write the changelog", pause=10))
    assert seg is not None and seg.boundary_reason == "time_gap"
    assert seg.title == "now write the changelog"


def test_unreadable_and_backwards_timestamps_give_no_pause():
    run = Run()
    warm_up(run, pause=60)
    rec = run.s.prompt("deploy it to staging", timestamp="")
    assert opened(run.feed(rec, "deploy it to staging", figures("deploy it to staging"))) is None
    rec = run.s.wait(-3600).prompt("check the logs", timestamp="2025-03-01T08:00:00Z")
    assert opened(run.feed(rec, "check the logs", figures("check the logs"))) is None


# --- /clear and compaction -----------------------------------------------------------------

def test_clear_opens_a_segment_titled_by_the_next_real_prompt():
    run = Run()
    warm_up(run, pause=60, prompts=3)
    seg = opened(run.command("clear"))
    assert seg.boundary_reason == "clear" and seg.boundary_score == 1.0
    assert seg.title == "/clear"
    run.ask("Write a haiku about borrow checking", pause=5)
    assert run.segments[1].title == "Write a haiku about borrow checking"
    assert run.segments[1].prompt_count == 2


def test_a_compaction_boundary_and_its_summary_make_one_boundary():
    run = Run()
    warm_up(run, pause=60, prompts=3)
    seg = opened(run.feed(run.s.wait(5).compact_boundary("manual")))
    assert seg.boundary_reason == "compaction" and seg.boundary_score == 0.8
    assert seg.title == "" and seg.prompt_count == 0
    assert run.feed(run.s.compact_summary())[-1].index == 1
    run.ask("continue with the parser", pause=5)
    assert [s.index for s in run.ordered()] == [0, 1]
    assert run.segments[1].boundary_score == 0.8
    assert run.segments[1].title == "continue with the parser"


def test_an_automatic_compaction_is_weaker_and_an_old_summary_line_counts_alone():
    run = Run()
    warm_up(run, pause=60, prompts=2)
    assert opened(run.feed(run.s.compact_boundary("auto"))).boundary_score == 0.5
    run.ask("keep going with the lexer", pause=5)
    old = Run()
    warm_up(old, pause=60, prompts=2)
    seg = opened(old.feed(old.s.compact_summary()))  # 1.0.x: the summary line alone
    assert seg.boundary_reason == "compaction" and seg.boundary_score == 0.6


def bookkeeping(run: Run, kind: str, timestamp: str, subtype: str = "", role: str = ""):
    """A record outside the conversation written at `timestamp` (a file-history snapshot
    carries the time of the message it backs up; a system line its own time)."""
    rec = run.s.prompt("", timestamp=timestamp)
    rec.type, rec.subtype, rec.role, rec.content = kind, subtype, role, []
    return rec


def test_a_segment_starts_at_the_record_that_opened_it_not_before():
    run = Run()
    snapshot = bookkeeping(run, "file-history-snapshot", "2025-03-01T08:10:00Z")
    run.feed(snapshot)  # the session's first line, written 50 minutes before its first prompt
    warm_up(run, pause=60, prompts=3)
    boundary = run.s.wait(5).compact_boundary("auto")
    boundary.role = "system"
    run.feed(boundary)
    # Read after the boundary, written before it: a snapshot of an older message, a reply
    # whose line carries an earlier time (timestamps are not file order).
    run.feed(bookkeeping(run, "file-history-snapshot", "2025-03-01T09:02:00Z"))
    run.feed(run.s.compact_summary())
    early = run.s.reply("picking up where we left off")
    early.timestamp = "2025-03-01T09:03:00Z"
    run.feed(early)
    run.ask("continue with the parser", pause=5)
    last_reply = run.records[-1][0]
    # After the last reply: a hook summary line stamped an hour later.
    run.feed(bookkeeping(run, "system", "2025-03-01T11:00:00Z", "stop_hook_summary", "system"))

    first, second = run.ordered()
    assert first.first_timestamp == run.records[1][0].timestamp  # the first prompt
    assert second.boundary_reason == "compaction"
    assert second.first_timestamp == boundary.timestamp
    assert second.last_timestamp == last_reply.timestamp


# --- explicit switches ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "score"), [
    ("Unrelated: how do I rotate nginx logs?", 0.9),
    ("New topic - the billing export is slow", 0.9),
    ("Different question: what does the --frozen flag do", 0.9),
    ("OK, let's move on to the README", 0.6),
    ("next task: add a health endpoint", 0.6),
    ("New feature: we support .zip, but archives can hold tar.gz too", 0.6),
    ("back to the parser: the lexer drops tabs", 0.6),
    ("switching to the frontend now, the navbar is broken", 0.5),
])
def test_explicit_switch_phrases_score_by_how_unambiguous_they_are(text, score):
    run = Run()
    warm_up(run, pause=30, prompts=3)
    seg = opened(run.ask(text, pause=30))
    assert seg is not None and seg.boundary_reason == "explicit_switch"
    assert seg.boundary_score == score


def test_switch_phrases_only_count_near_the_start():
    run = Run()
    warm_up(run, pause=30, prompts=3)
    long = "the parser drops the last line " * 8 + "; unrelated: the logs are noisy"
    assert opened(run.ask(long, pause=30)) is None


def test_a_pause_and_a_switch_together_add_up():
    run = Run()
    warm_up(run, pause=60)
    seg = opened(run.ask("new topic: the billing export", pause=20 * 60))
    assert seg.boundary_reason == "time_gap+explicit_switch"
    assert seg.boundary_score == pytest.approx(1 - (1 - 1200 / 1800) * (1 - 0.9), abs=1e-3)


# --- working set ---------------------------------------------------------------------------

def _parser_work(run: Run) -> None:
    run.ask("fix the tokenizer in the parser", pause=30)
    run.touch("src/parser/lexer.py", "src/parser/tokens.py", "tests/test_lexer.py")
    run.ask("also handle tabs in the tokenizer", pause=30)
    run.touch("src/parser/lexer.py", "src/parser/grammar.py", "tests/test_grammar.py")
    run.ask("the tokenizer should keep comments", pause=30)
    # This turn went somewhere else entirely (what the assistant touched, not what was said).
    run.touch("web/css/navbar.css", "web/css/theme.css", "web/html/index.html",
              "web/html/about.html")


def test_a_turn_that_works_elsewhere_opens_a_segment_at_the_next_opening_prompt():
    run = Run()
    _parser_work(run)
    seg = opened(run.ask("make the navbar sticky on mobile screens", pause=30))
    assert seg is not None and seg.boundary_reason == "working_set"
    # Disjoint (distance 1.0); evidence min(6 items this turn: 4 files and 2 folders, 7 in
    # the segment) / 8; the prompt's words are all new to the segment (novelty 1.0).
    assert seg.boundary_score == pytest.approx(6 / 8, abs=1e-3)


def test_a_working_set_change_is_no_boundary_at_an_approval_or_a_prompt_in_the_same_words():
    run = Run()
    _parser_work(run)
    assert opened(run.ask("yes", pause=30, intent="approval")) is None
    again = Run()
    _parser_work(again)
    assert opened(again.ask("tokenizer parser comments tabs", pause=30)) is None


def test_side_chain_work_does_not_count_in_the_working_set():
    run = Run()
    run.ask("fix the tokenizer in the parser", pause=30)
    run.touch("src/parser/lexer.py", "src/parser/tokens.py", "tests/test_lexer.py")
    run.ask("also handle tabs in the tokenizer", pause=30)
    run.touch("src/parser/lexer.py", "src/parser/grammar.py", "tests/test_grammar.py")
    run.ask("the tokenizer should keep comments", pause=30)
    for path in ("docs/a.md", "docs/b.md", "web/x.css", "web/y.css"):
        rec = run.s.wait(5).tool("Read", file_path=f"/repo/{path}")
        rec.is_sidechain, rec.agent_id = True, "a1b2c3"
        run.feed(rec)
    assert opened(run.ask("make the navbar sticky on mobile screens", pause=30)) is None


# --- merging -------------------------------------------------------------------------------

def test_a_short_segment_behind_a_weak_pause_is_merged_into_the_one_before():
    run = Run()
    warm_up(run, pause=60)
    seg = opened(run.ask("and the error messages too", pause=700))  # 700/(700+600) = 0.54
    assert seg.boundary_reason == "time_gap" and seg.boundary_score < segments.WEAK_GAP_SCORE
    changed = run.ask("unrelated: rotate the nginx logs", pause=30)
    merged, extended, new = changed
    assert merged.merged and merged.index == 1 and merged.prompt_count == 1
    assert not extended.merged and extended.index == 0 and extended.prompt_count == 9
    assert new.index == 1 and new.boundary_reason == "explicit_switch"
    assert [s.index for s in run.ordered()] == [0, 1]
    assert extended.end_key == merged.end_key
    assert sum(s.message_count for s in run.ordered()) == len(run.records)
    assert run.tracker.merges == 1


def test_a_short_segment_like_the_one_before_is_merged():
    run = Run()
    for n in range(4):
        run.ask(f"speed up the sqlite writer batch commit {n}", pause=60)
    opened(run.feed(run.s.wait(5).compact_boundary("auto")))
    run.ask("the sqlite writer batch commit is still slow", pause=10)
    changed = run.ask("unrelated: rotate the nginx logs", pause=30)
    assert [(s.index, s.merged) for s in changed] == [(1, True), (0, False), (1, False)]
    assert changed[1].prompt_count == 5


def test_segments_the_user_asked_for_or_long_ones_are_not_merged():
    run = Run()
    warm_up(run, pause=60, prompts=4)
    run.ask("new topic: refactor parser module step 9", pause=30)  # similar words, but said
    changed = run.ask("unrelated: rotate the nginx logs", pause=30)
    assert not any(s.merged for s in changed)
    strong = Run()
    warm_up(strong, pause=60)
    strong.ask("write a poem about autumn", pause=3 * 3600)  # a strong pause, other words
    assert not any(s.merged for s in strong.ask("next task: fix ci", pause=30))
    long = Run()
    warm_up(long, pause=60)
    long.ask("and the error messages too", pause=700)
    for n in range(3):
        long.ask(f"more error messages {n}", pause=30)
    assert not any(s.merged for s in long.ask("unrelated: nginx", pause=30))


# --- titles, keywords, coherence, counts ---------------------------------------------------

def test_titles_are_cut_on_a_word_boundary():
    text = "Please refactor the ingestion pipeline so that every stage reports its own " \
           "metrics and errors to the tracing backend"
    title = title_of(text)
    assert title.endswith("…") and len(title) <= segments.TITLE_CHARS + 1
    assert text.startswith(title[:-1]) and text[len(title) - 1] == " "
    assert title_of("  short\n prompt ") == "short prompt"
    assert title_of("x" * 200) == "x" * 80 + "…"


def test_coherence_is_the_mean_similarity_of_consecutive_prompts_inside_the_segment():
    run = Run()
    run.ask("add retries to the uploader", pause=10, similarity=0.0)
    assert run.segments[0].coherence == 1.0  # one prompt
    run.ask("retries should back off", pause=10, similarity=0.5)
    run.ask("cap the retries at five", pause=10, similarity=0.3)
    assert run.segments[0].coherence == pytest.approx(0.4)
    seg = opened(run.ask("unrelated: what is a monad", pause=10, similarity=0.9))
    assert seg.coherence == 1.0  # its first prompt's similarity is with the segment before


def test_counts_keys_timestamps_and_keywords():
    run = Run()
    run.ask("add retries to the uploader for flaky networks", pause=10)
    run.feed(run.s.wait(5).tool("Edit", file_path="/repo/uploader.py", old_string="a",
                                new_string="b"))
    run.feed(run.s.wait(5).result("ok"))
    run.ask("unrelated: document the uploader retry policy", pause=10)
    first, second = run.ordered()
    assert (first.message_count, first.prompt_count, first.tool_call_count) == (4, 1, 1)
    assert first.start_key == run.records[0][0].key
    assert first.end_key == run.records[3][0].key
    assert second.start_key == run.records[4][0].key
    assert first.first_timestamp == run.records[0][0].timestamp
    assert first.last_timestamp == run.records[3][0].timestamp
    assert any("uploader" in k.lower() or "retries" in k.lower() for k in first.keywords)


def test_keywords_of_the_open_segment_follow_its_prompts():
    run = Run()
    for n in range(30):
        run.ask(f"tune the cache eviction policy variant {n}", pause=10)
    assert {"cache", "eviction"} <= set(run.segments[0].keywords[:4])


def test_keywords_rank_what_sets_a_segment_apart_from_the_others():
    """TF-IDF against the session's other segments: a word every segment uses ranks below
    the words only this segment uses, even when it is more frequent."""
    run = Run()
    for n in range(4):
        run.ask(f"python sqlite writer batch commit speed {n}", pause=60)
    run.ask("new topic: python nginx logrotate rotation python config", pause=60)
    for n in range(3):
        run.ask(f"python nginx logrotate rotation again {n}", pause=60)
    run.ask("unrelated: write the release notes", pause=60)
    second = run.segments[1]
    assert second.boundary_reason.startswith("explicit_switch")
    assert "nginx" in second.keywords[:3]
    assert second.keywords.index("python") > second.keywords.index("nginx")


# --- bounded state and replay --------------------------------------------------------------

def container_items(obj, seen: set[int] | None = None) -> int:
    """Everything held in containers reachable from `obj` (a tracker or finder)."""
    seen = set() if seen is None else seen
    if isinstance(obj, (str, bytes, int, float, bool, type(None))) or id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, dict):
        return len(obj) + sum(container_items(k, seen) + container_items(v, seen)
                              for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        return len(obj) + sum(container_items(x, seen) for x in obj)
    total = 0
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            total += container_items(getattr(obj, name, None), seen)
    for value in getattr(obj, "__dict__", {}).values():
        total += container_items(value, seen)
    return total


def synthetic_session(records: int, switch_every: int = 70):
    """A long session: a prompt every 10 records, ever new files, words and identifiers, and
    an explicit switch every `switch_every` records (0: never, one endless segment)."""
    s = Session("long")
    for n in range(records):
        s.wait(7)
        if n % 10 == 0:
            switch = "unrelated: " if switch_every and n % switch_every == 0 else ""
            text = (f"{switch}now change handler_{n} in module{n % 13}/file_{n}.py "
                    f"topic{n % 37} word{n}")
            yield s.prompt(text), text, figures(text, similarity_previous=(n % 7) / 7)
        elif n % 10 in (3, 6):
            yield s.tool("Edit", file_path=f"/repo/pkg{n % 29}/mod_{n}.py"), None, None
        else:
            yield s.reply(f"Updated compute_{n} and Widget{n} in lib/part{n}/x{n}.rs"), None, None


@pytest.mark.parametrize("switch_every", [70, 0])
def test_state_stays_bounded_over_twenty_thousand_records(switch_every):
    tracker, finder = SegmentTracker("long"), RelationshipFinder("long")
    sizes = {}
    # Checkpoints at the same place in the 70-record cycle of segments.
    for n, (rec, prompt, analysis) in enumerate(synthetic_session(21_000, switch_every), 1):
        tracker.add(rec, prompt, analysis)
        finder.add(rec, prompt, analysis, tracker.current_index, tracker.current_start_key)
        if n in (7_000, 21_000):
            sizes[n] = (container_items(tracker), container_items(finder))
    if switch_every:
        assert tracker.current_index > 250  # many segments went by
    else:
        assert tracker.current_index == 0
    (t7, f7), (t21, f21) = sizes[7_000], sizes[21_000]
    # Flat: no more than the pruning swing of a term vector (cut back to TERMS_CAP terms when
    # it passes twice that) and of the document frequencies (likewise with DF_CAP) between
    # 7,000 and 21,000 records ...
    assert t21 <= t7 + 2 * segments.TERMS_CAP + 2 * segments.DF_CAP
    assert f21 <= f7 + 2 * relationships.FOLLOW_TERMS_CAP
    # ... and below what the caps allow: two segments' terms, working sets and samples, the
    # pause window and the turn; the mention map (key + (message, number) per entry) and
    # the closed segments' terms.
    per_segment = 2 * segments.TERMS_CAP + segments.WS_SEGMENT_CAP + 40
    assert t21 <= (2 * per_segment + segments.GAP_WINDOW + segments.WS_TURN_CAP
                   + 2 * segments.DF_CAP)
    assert f21 <= 3 * relationships.MENTION_CAP + 20 + (relationships.FOLLOW_SEGMENTS + 1) * (
        2 * relationships.FOLLOW_TERMS_CAP + 5)
    state = tracker.state_sizes()
    assert state["pauses"] <= segments.GAP_WINDOW
    assert state["turn"] <= segments.WS_TURN_CAP
    assert state["current.working"] <= segments.WS_SEGMENT_CAP
    assert state["current.terms"] <= 2 * segments.TERMS_CAP
    assert state["frequency"] <= 2 * segments.DF_CAP
    assert finder.state_sizes()["mentions"] <= 3000


def test_replaying_the_same_records_gives_the_same_results():
    def run_once():
        tracker, finder = SegmentTracker("long"), RelationshipFinder("long")
        out = []
        for rec, prompt, analysis in synthetic_session(3_000):
            out.append(tracker.add(rec, prompt, analysis))
            out.append(finder.add(rec, prompt, analysis, tracker.current_index,
                                  tracker.current_start_key))
        return out

    first, second = run_once(), run_once()
    assert first == second
    assert any(seg.index > 5 for changed in first for seg in changed
               if isinstance(seg, Segment))


# --- real sessions -------------------------------------------------------------------------

def test_real_sessions_are_covered_by_consecutive_segments(corpus):
    sessions = corpus_sessions(corpus, limit=12)
    assert sessions
    for records in sessions:
        tracker = SegmentTracker()
        finder = RelationshipFinder()
        read = PromptReader()
        kept: dict[int, Segment] = {}
        keys_so_far: set[str] = set()
        prompts = 0
        for rec in records:
            prompt, analysis = read(rec)
            prompts += prompt is not None
            for seg in tracker.add(rec, prompt, analysis):
                assert 0.0 <= seg.boundary_score <= 1.0 and 0.0 <= seg.coherence <= 1.0
                if seg.merged:
                    assert kept.pop(seg.index).index == seg.index
                else:
                    kept[seg.index] = seg
            for rel in finder.add(rec, prompt, analysis, tracker.current_index,
                                  tracker.current_start_key):
                assert rel.kind in ("reference", "topic_follow_up")
                assert 0.0 < rel.confidence <= 1.0 and rel.evidence
                assert rel.target_key in keys_so_far and rel.source_key == rec.key
            keys_so_far.add(rec.key)
        ordered = [kept[i] for i in sorted(kept)]
        assert [s.index for s in ordered] == list(range(len(ordered)))
        assert sum(s.message_count for s in ordered) == len(records)
        assert sum(s.prompt_count for s in ordered) == prompts
        assert ordered[0].start_key == records[0].key
        assert ordered[0].boundary_reason == "start"
        for seg in ordered[1:]:
            assert seg.boundary_reason and seg.boundary_reason != "start"
            assert set(seg.boundary_reason.split("+")) <= {
                "time_gap", "clear", "compaction", "explicit_switch", "working_set"}
