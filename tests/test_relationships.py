"""References and topic follow-ups: targets, and confidence that follows the evidence."""

from __future__ import annotations

import pytest
from session_records import Session, figures

from services.analysis import relationships
from services.analysis.relationships import RelationshipFinder, mentions
from services.analysis.segments import SegmentTracker
from threadline.domain.analysis import Relationship


class Run:
    """A SegmentTracker and a RelationshipFinder fed the same hand-made session."""

    def __init__(self, start_keys: bool = True) -> None:
        self.s = Session()
        self.tracker = SegmentTracker("s1")
        self.finder = RelationshipFinder("s1")
        self.start_keys = start_keys
        self.found: list[Relationship] = []

    def feed(self, rec, prompt=None, analysis=None) -> list[Relationship]:
        self.tracker.add(rec, prompt, analysis)
        start = self.tracker.current_start_key if self.start_keys else ""
        found = self.finder.add(rec, prompt, analysis, self.tracker.current_index, start)
        self.found.extend(found)
        return found

    def ask(self, text: str, pause: float = 30.0, intent: str = "request"
            ) -> tuple[object, list[Relationship]]:
        rec = self.s.wait(pause).prompt(text)
        return rec, self.feed(rec, text, figures(text, intent))

    def answer(self, text: str):
        rec = self.s.wait(10).reply(text)
        self.feed(rec)
        return rec


def _writer_work() -> tuple[Run, object, object]:
    """A turn whose Edit names services/store/writer.py; the answer does not repeat it."""
    run = Run()
    run.ask("make the store faster")
    edit = run.s.wait(5).tool("Edit", file_path="/repo/services/store/writer.py",
                              old_string="commit()", new_string="commit_batch()")
    run.feed(edit)
    run.feed(run.s.wait(1).result("The file has been updated."))
    answer = run.answer("Done: batching is in place.")
    return run, edit, answer


def _only(found: list[Relationship], kind: str = "reference") -> Relationship:
    assert [r.kind for r in found] == [kind], found
    return found[0]


# --- references ----------------------------------------------------------------------------

def test_a_quoted_path_is_strong_a_bare_one_weaker_a_file_name_weaker_still():
    confidences = {}
    for label, text in [
        ("quoted", "the `services/store/writer.py` change breaks startup"),
        ("bare", "services/store/writer.py breaks startup now"),
        ("name", "writer.py breaks startup now"),
    ]:
        run, edit, _answer = _writer_work()
        rec, found = run.ask(text)
        rel = _only(found)
        assert rel.target_key == edit.key and rel.source_key == rec.key
        confidences[label] = rel.confidence
    # 0.7 / 0.55 / 0.45, less 30 % x (4 records back / 500)
    assert confidences["quoted"] == pytest.approx(0.7 * (1 - 0.3 * 4 / 500), abs=1e-3)
    assert confidences["bare"] == pytest.approx(0.55 * (1 - 0.3 * 4 / 500), abs=1e-3)
    assert confidences["name"] == pytest.approx(0.45 * (1 - 0.3 * 4 / 500), abs=1e-3)


def test_a_phrase_alone_is_weak_and_a_phrase_with_a_path_is_stronger_than_either():
    run, edit, answer = _writer_work()
    _rec, found = run.ask("it should work like before")
    rel = _only(found)
    assert rel.confidence == relationships.GENERIC_PHRASE
    assert 'phrase "like before"' in rel.evidence
    assert rel.target_key == answer.key  # the latest assistant text

    run, edit, _answer = _writer_work()
    _rec, found = run.ask("the file you just edited, `services/store/writer.py`, breaks startup")
    rel = _only(found)
    quoted = 0.7 * (1 - 0.3 * 4 / 500)
    assert rel.target_key == edit.key
    assert rel.confidence == pytest.approx(1 - (1 - quoted) * (1 - 0.45), abs=1e-3)
    assert "quoted path" in rel.evidence and "the file you just edited" in rel.evidence


def test_named_phrases_point_at_the_latest_message_of_their_kind():
    run = Run()
    first, _ = run.ask("run the test suite please")
    run.feed(run.s.wait(5).tool("Bash", command="pytest -q"))
    failure = run.s.wait(5).result("FAILED tests/test_api.py::test_login - KeyError",
                                   is_error=True)
    run.feed(failure)
    answer = run.answer("The login test fails because the session key is missing.")
    _rec, found = run.ask("can you explain that error in more detail?")
    assert _only(found).target_key == failure.key
    said, found = run.ask("as you said, the session key is missing; add it")
    assert _only(found).target_key == answer.key
    _rec, found = run.ask("as I said, only the login flow matters")
    assert _only(found).target_key == said.key  # the user's own previous prompt
    assert [r.confidence for r in run.found] == [relationships.NAMED_PHRASE] * 3
    assert first.key not in {r.target_key for r in run.found}


def test_distance_lowers_confidence_and_the_window_ends_it():
    near, _edit, _answer = _writer_work()
    near_rel = _only(near.ask("check `services/store/writer.py` again")[1])
    far, _edit, _answer = _writer_work()
    for n in range(300):
        far.answer(f"step {n} finished")
    far_rel = _only(far.ask("check `services/store/writer.py` again")[1])
    assert far_rel.confidence < near_rel.confidence
    assert far_rel.confidence == pytest.approx(0.7 * (1 - 0.3 * 304 / 500), abs=1e-3)
    gone, _edit, _answer = _writer_work()
    for n in range(relationships.REFERENCE_WINDOW + 5):
        gone.answer(f"step {n} finished")
    assert gone.ask("check `services/store/writer.py` again")[1] == []


def test_no_reference_without_evidence_and_none_from_commands_or_interruptions():
    run, _edit, _answer = _writer_work()
    assert run.ask("add a test for the tokenizer")[1] == []
    assert run.ask("/review services/store/writer.py", intent="command")[1] == []
    assert run.ask("[Request interrupted by user]", intent="interruption")[1] == []
    # A product name alone is too weak; pasted output past the start of a prompt is ignored.
    run.answer("GitHub Actions can run this.")
    assert run.ask("does GitHub support that")[1] == []
    assert run.ask("x " * 400 + "services/store/writer.py")[1] == []


def test_mentions_are_paths_file_names_and_identifiers_not_fractions_or_mime_types():
    found = mentions("see /work/main/services/store/writer.py and ./tests/test_x.py, @src/app.tsx;"
                     " e.g. fooBar, snake_case, text.keywords() v1.2 at 1/8 as text/html, y/N",
                     cwd="/work/main")
    assert found == ["services/store/writer.py", "writer.py", "tests/test_x.py", "test_x.py",
                     "src/app.tsx", "app.tsx", "fooBar", "snake_case", "text.keywords"]


# --- topic follow-ups ----------------------------------------------------------------------

def _two_topics(run: Run):
    """Segment 0 on a postgres migration, segment 1 on navbar colours; returns the first
    record of segment 0."""
    first, _found = run.ask("write a postgres migration for the users table schema")
    run.answer("Added migration 0042 creating the users table.")
    run.ask("the postgres migration needs a rollback for the users schema")
    run.answer("Rollback added.")
    run.ask("unrelated: the navbar button colors look wrong in dark mode")
    run.answer("Adjusted the navbar colors.")
    run.ask("make the navbar button hover color lighter")
    run.answer("Done.")
    return first


def test_a_prompt_back_on_an_earlier_topic_follows_it_up_with_its_similarity():
    run = Run()
    first = _two_topics(run)
    assert not [r for r in run.found if r.kind == "topic_follow_up"]
    _rec, found = run.ask("back to the postgres users migration: add an index to the schema")
    rel = _only(found, "topic_follow_up")
    assert rel.target_key == first.key  # the first message of segment 0
    assert run.tracker.current_index == 2
    assert "segment 0" in rel.evidence and "postgres" in rel.evidence
    strong = rel.confidence

    weak_run = Run()
    _two_topics(weak_run)
    _rec, found = weak_run.ask("back to the users table: seed the schema with demo accounts")
    weak = _only(found, "topic_follow_up").confidence
    assert relationships.FOLLOW_SIMILARITY <= weak < strong <= relationships.MAX_CONFIDENCE


def test_continuing_the_current_topic_or_a_new_one_is_no_follow_up():
    run = Run()
    _two_topics(run)
    assert run.ask("the navbar button colors should match the footer too")[1] == []
    assert run.ask("write a haiku about autumn leaves falling")[1] == []
    assert run.ask("ok postgres", intent="approval")[1] == []  # too few words to compare


def test_a_merged_segment_counts_with_the_one_it_was_merged_into():
    def scenario(start_keys: bool) -> tuple[object, list[Relationship]]:
        run = Run(start_keys)
        first = None
        for n in range(6):
            rec, _found = run.ask(f"tune the sqlite writer batch size step {n}", pause=60)
            first = first or rec
        # A weak pause opens a one-prompt segment on the same topic; the switch after it
        # merges it back into segment 0.
        run.ask("the sqlite writer commit latency spikes", pause=700)
        run.ask("unrelated: the navbar button colors in dark mode", pause=30)
        assert run.tracker.merges == 1 and run.tracker.current_index == 1
        _rec, found = run.ask("back to the sqlite writer commit latency spikes", pause=30)
        return first, found

    first, found = scenario(start_keys=True)
    rel = _only(found, "topic_follow_up")
    assert rel.target_key == first.key and "segment 0" in rel.evidence
    # Told apart by index alone, the merged prompt stays with the segment that reused its
    # index (the navbar one), and the follow-up points at the merged prompt instead.
    _first, found = scenario(start_keys=False)
    assert _only(found, "topic_follow_up").target_key == "s1-00007"


def test_follow_up_state_is_bounded():
    run = Run()
    for n in range(40):
        run.ask(f"unrelated: topic{n} alpha{n} beta{n} gamma{n}")
        run.answer(f"answer {n}")
    sizes = run.finder.state_sizes()
    assert sizes["closed"] == relationships.FOLLOW_SEGMENTS
    assert run.tracker.current_index == 39
