"""Tool-usage analysis on hand-written calls: every figure, the error classes of real result
texts, what is learned from the data (switches, sequences, loops, churn), time zones, and
recommendations that need enough evidence and grow stronger with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.analysis import recommendations, tool_patterns, tool_wire
from services.analysis.recommendations import recommend, wilson_lower
from services.analysis.tool_patterns import classify_error, summarise
from threadline.domain.analysis import ToolFact

BASE = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fact(seq: int, name: str, *, session: str = "s1", project: str = "p1", input: object = None,
         error: bool = False, result: str = "ok", seconds: float | None = 1.0,
         start: datetime | None = None, caller: str = "", **extra: object) -> ToolFact:
    started = start or BASE + timedelta(minutes=seq)
    data = {"n": seq} if input is None else input
    return ToolFact(
        tool_use_id=f"{session}-{caller}-{seq}", session_id=session, project_key=project,
        name=name, input_json=orjson.dumps(data), is_error=error, result_text=result,
        started_at=iso(started),
        finished_at="" if seconds is None else iso(started + timedelta(seconds=seconds)),
        sequence=seq, use_message_key=f"m-{session}-{caller}-{seq}", caller=caller,
        **extra)  # type: ignore[arg-type]


def row(report, tool: str, group: str = ""):
    found = [r for r in report.rows if r.tool == tool and r.group == group]
    assert len(found) == 1, (tool, group, report.rows)
    return found[0]


# --- per tool ----------------------------------------------------------------------------------

def test_per_tool_counts_errors_and_latency():
    facts = [
        fact(1, "Bash", seconds=1.0), fact(2, "Bash", seconds=2.0),
        fact(3, "Bash", seconds=3.0, error=True, result="Exit code 1\nboom"),
        fact(4, "Bash", seconds=4.0),
        fact(5, "Read", seconds=None),  # no result yet: not timed
        fact(6, "Edit", seconds=-5.0),  # result before the call: not timed
        fact(7, "Edit", error=True, result="The user doesn't want to proceed with this tool "
                                           "use. The tool use was rejected."),
        fact(8, "Bash", seconds=None, error=True,
             result="[Request interrupted by user for tool use]"),
    ]
    report = summarise(facts)
    bash = row(report, "Bash")
    assert (bash.calls, bash.errors, bash.rejections, bash.interruptions) == (5, 2, 0, 1)
    assert bash.error_classes == {"command_failed": 1, "interrupted": 1}
    assert bash.timed_calls == 4
    assert bash.latency_p50_ms == pytest.approx(2500.0)  # between 2 s and 3 s
    assert bash.latency_p95_ms == pytest.approx(3850.0)  # 3 s + 0.85 of the way to 4 s
    assert bash.failures == 1
    edit = row(report, "Edit")
    assert (edit.calls, edit.errors, edit.rejections, edit.timed_calls) == (2, 1, 1, 1)
    assert row(report, "Read").timed_calls == 0
    total = report.total
    assert (total.tool, total.calls, total.errors, total.rejections, total.interruptions) == (
        tool_patterns.TOTAL, 8, 3, 1, 1)
    assert [r.tool for r in report.rows] == ["Bash", "Edit", "Read"]  # most calls first


def test_rows_per_session_and_per_project():
    facts = [fact(1, "Bash", session="a", project="p1"), fact(2, "Read", session="a"),
             fact(1, "Bash", session="b", project="p2", error=True, result="Exit code 1")]
    by_session = summarise(facts, by="session")
    assert [(r.group, r.tool, r.calls) for r in by_session.rows] == [
        ("a", "Bash", 1), ("a", "Read", 1), ("b", "Bash", 1)]
    assert row(by_session, "Bash", "b").errors == 1
    by_project = summarise(facts, by="project")
    assert [(r.group, r.tool, r.calls) for r in by_project.rows] == [
        ("p1", "Bash", 1), ("p1", "Read", 1), ("p2", "Bash", 1)]
    # Recommendations judge tools as a whole whatever the grouping.
    assert [(t.tool, t.calls) for t in by_project.tools] == [("Bash", 2), ("Read", 1)]


def test_bad_grouping_or_time_zone_is_a_clear_error():
    with pytest.raises(ValueError, match="by: expected one of tool, session, project"):
        summarise([], by="day")
    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Base'"):
        summarise([], timezone="Mars/Base")


# --- error classes (texts as the real transcripts carry them) --------------------------------

@pytest.mark.parametrize(("tool", "text", "expected"), [
    ("Bash", "The user doesn't want to proceed with this tool use. The tool use was rejected "
             "(eg. if it was a file edit, the new_string was NOT written to the file).",
     "user_rejected"),
    ("Edit", "The user doesn't want to take this action right now. STOP what you are doing and "
             "wait for the user to tell you how to proceed.", "user_rejected"),
    ("Bash", "[Request interrupted by user for tool use]\n\x1b[0;36m═══ build", "interrupted"),
    ("Read", "Interrupted by user", "interrupted"),
    ("Write", "<tool_use_error>File has not been read yet. Read it first before writing to "
              "it.</tool_use_error>", "not_read_first"),
    ("Edit", "<tool_use_error>File has been modified since read, either by the user or by a "
             "linter. Read it again before attempting to write it.</tool_use_error>",
     "stale_read"),
    ("Edit", "<tool_use_error>String to replace not found in file.\nString:   defp render",
     "string_not_found"),
    ("Edit", "<tool_use_error>Found 2 matches of the string to replace, but replace_all is "
             "false.", "ambiguous_match"),
    ("Edit", "<tool_use_error>No changes to make: old_string and new_string are exactly the "
             "same.</tool_use_error>", "no_change"),
    ("Read", "<tool_use_error>Sibling tool call errored</tool_use_error>", "sibling_failed"),
    ("TodoWrite", "<tool_use_error>InputValidationError: TodoWrite failed due to the following "
                  "issue:\nThe required parameter `todos` is missing</tool_use_error>",
     "validation"),
    ("Task", "Agent type 'Director' not found. Available agents: general-purpose",
     "validation"),
    ("Read", "File content (85812 tokens) exceeds maximum allowed tokens (25000).", "too_large"),
    ("Bash", "Command timed out after 2m 0.0s\nstill building", "timeout"),
    ("WebFetch", "Request failed with status code 404", "network"),
    ("Bash", "This command requires approval", "permission_denied"),
    ("WebSearch", "Claude requested permissions to use WebSearch, but you haven't granted it "
                  "yet.", "permission_denied"),
    ("Read", "<tool_use_error>File does not exist.</tool_use_error>", "file_not_found"),
    ("Read", "EISDIR: illegal operation on a directory, read", "file_not_found"),
    ("Bash", "Exit code 1\n(eval):1: parse error near `('", "command_failed"),
    ("Bash", "Error", "command_failed"),  # 1.0.x: any error of a shell tool
    ("FailingTool", "Exit code 3", "command_failed"),
    # A long command output may quote anything further down: only its head is read.
    ("Bash", "Exit code 1\n" + "x" * 500 + " No such file or directory", "command_failed"),
    ("KillShell", "Shell dce0af is not running, so cannot be killed (status: killed)", "other"),
])
def test_error_classes_of_real_result_texts(tool, text, expected):
    assert classify_error(tool, text) == expected


# --- what follows a failure ------------------------------------------------------------------

def test_retries_and_switches_are_learned_from_the_data():
    facts = [
        fact(1, "Edit", error=True, result="<tool_use_error>File has not been read yet."),
        fact(2, "Read"), fact(3, "Edit"),
        fact(4, "Edit", error=True, result="<tool_use_error>String to replace not found"),
        fact(5, "Read"),
        fact(6, "Bash", error=True, result="Exit code 1"), fact(7, "Bash"),  # a retry
        # After a rejection the next call is the person's decision: neither retry nor switch.
        fact(8, "Bash", error=True, result="The user doesn't want to proceed with this tool "
                                           "use."),
        fact(9, "Grep"),
        fact(10, "Glob", error=True, result="boom"),
        fact(11, "Write", error=True, result="<tool_use_error>File has not been read yet."),
        fact(12, "Bash", error=True, result="Exit code 2"),  # the last call: nothing follows
    ]
    report = summarise(facts)
    assert (row(report, "Edit").retries, row(report, "Edit").switches) == (0, 2)
    assert (row(report, "Bash").retries, row(report, "Bash").switches) == (1, 0)
    assert (row(report, "Write").retries, row(report, "Write").switches) == (0, 1)
    switches = {(s.from_tool, s.to_tool): (s.count, s.success_rate) for s in report.switches}
    assert switches == {("Edit", "Read"): (2, 1.0), ("Glob", "Write"): (1, 0.0),
                        ("Write", "Bash"): (1, 0.0)}
    assert report.switches[0].from_tool == "Edit"  # most frequent first


def test_a_subagent_is_its_own_run_of_calls():
    facts = [fact(1, "Bash", error=True, result="Exit code 1"),
             fact(2, "Read", caller="agent-1"),  # stored between, asked for by the subagent
             fact(3, "Bash"),
             fact(4, "Grep", caller="agent-1", error=True, result="boom"),
             fact(5, "Glob", caller="agent-1")]
    report = summarise(facts)
    assert row(report, "Bash").retries == 1
    assert [(s.from_tool, s.to_tool) for s in report.switches] == [("Grep", "Glob")]


def test_frequent_sequences_with_support_and_confidence():
    assert tool_patterns.MIN_SEQUENCE_SUPPORT == 5
    names = ["Read", "Edit"] * 6 + ["Bash"]  # R E R E R E R E R E R E B
    report = summarise([fact(i, n) for i, n in enumerate(names, start=1)])
    found = [(q.tools, q.support, q.confidence) for q in report.sequences]
    assert found == [
        (["Read", "Edit"], 6, 1.0),  # every Read followed by a call is followed by Edit
        (["Read", "Edit", "Read", "Edit"], 5, 1.0),
        (["Edit", "Read", "Edit"], 5, 1.0),
        (["Read", "Edit", "Read"], 5, pytest.approx(5 / 6, abs=1e-4)),  # 1 of 6: Bash
        (["Edit", "Read"], 5, pytest.approx(5 / 6, abs=1e-4)),
    ]


def test_loops_are_identical_calls_without_progress():
    make = {"command": "make"}
    facts = [
        *(fact(i, "Bash", input=make, error=True, result="Exit code 2\nfail") for i in (1, 2, 3)),
        # The same result three times is no progress either.
        *(fact(i, "Read", input={"file_path": "/a"}, result="same") for i in (4, 5, 6)),
        # Polling whose output changes is progress.
        *(fact(i, "BashOutput", input={"bash_id": "1"}, result=f"line {i}")
          for i in (7, 8, 9, 10)),
        # Twice is not a loop.
        *(fact(i, "Grep", input={"pattern": "x"}, error=True, result="boom") for i in (11, 12)),
        # A success with a new result breaks the run.
        fact(13, "Edit", input=make, error=True, result="e"),
        fact(14, "Edit", input=make, result="changed"),
        fact(15, "Edit", input=make, error=True, result="e"),
    ]
    report = summarise(facts)
    assert [(lp.tool, lp.repeats, lp.first_key, lp.input_excerpt) for lp in report.loops] == [
        ("Bash", 3, "m-s1--1", '{"command":"make"}'),
        ("Read", 3, "m-s1--4", '{"file_path":"/a"}')]
    assert report.loops[0].first_timestamp == iso(BASE + timedelta(minutes=1))


def test_edit_churn_reads_paths_from_the_inputs():
    patch = "*** Begin Patch\n*** Update File: src/x.py\n@@\n*** Add File: src/y.py\n"
    facts = [
        fact(1, "Edit", input={"file_path": "/a", "old_string": "x", "new_string": "y"}),
        fact(2, "Edit", input={"file_path": "/a"}, error=True, result="String to replace not "
                                                                      "found"),
        fact(3, "MultiEdit", session="s2", input={"file_path": "/a", "edits": []}),
        fact(4, "Write", input={"file_path": "/b", "content": ""}),
        fact(5, "NotebookEdit", input={"notebook_path": "/n.ipynb"}),
        fact(6, "NotebookEdit", input={"notebook_path": "/n.ipynb"}),
        fact(7, "apply_patch", input={"input": patch}),
        fact(8, "apply_patch", input="*** Begin Patch\n*** Update File: src/x.py\n"),
        fact(9, "Read", input={"file_path": "/a"}),  # reading is not editing
    ]
    report = summarise(facts)
    assert [(c.path, c.edits, c.sessions, c.failed_edits) for c in report.churn] == [
        ("/a", 3, 2, 1), ("/n.ipynb", 2, 1, 0), ("src/x.py", 2, 1, 0)]


def test_subagent_links():
    facts = [fact(1, "Task", agent_id="a1", seconds=90.5, subagent_messages=12,
                  subagent_tokens=3400, subagent_cost_usd=0.25), fact(2, "Read")]
    [link] = summarise(facts).subagents
    assert (link.tool_use_id, link.agent_id, link.tool_name, link.messages, link.tokens,
            link.cost_usd, link.duration_seconds, link.session_id, link.use_message_key) == (
        "s1--1", "a1", "Task", 12, 3400, 0.25, 90.5, "s1", "m-s1--1")


def test_reactions_per_tool():
    facts = [
        fact(1, "Bash", reaction_intent="feedback", reaction_sentiment=0.5),
        fact(2, "Bash", reaction_intent="rejection", reaction_sentiment=-0.4),
        fact(3, "Bash", reaction_intent="interruption", reaction_sentiment=0.0),
        # The marker written when this call was interrupted is not a reaction to a result.
        fact(4, "Bash", error=True, result="[Request interrupted by user for tool use]",
             reaction_intent="interruption", reaction_sentiment=0.0),
        fact(5, "Bash"),
    ]
    bash = row(summarise(facts), "Bash")
    assert (bash.reactions, bash.reaction_interruptions, bash.reaction_rejections,
            bash.interruptions) == (3, 1, 1, 1)
    assert bash.reaction_sentiment_mean == pytest.approx(0.1 / 3, abs=1e-4)


def test_hour_and_weekday_buckets_follow_the_time_zone():
    late_sunday = datetime(2025, 3, 2, 23, 30, tzinfo=UTC)
    facts = [fact(1, "Bash", start=late_sunday, error=True, result="Exit code 1"),
             fact(2, "Read", start=late_sunday + timedelta(hours=12))]  # Monday 11:30 UTC

    def slots(zone: str) -> tuple[dict, dict]:
        report = summarise(facts, timezone=zone)
        assert [b.slot for b in report.by_hour] == list(range(24))
        assert [b.slot for b in report.by_weekday] == list(range(1, 8))
        return ({b.slot: (b.calls, b.errors) for b in report.by_hour if b.calls},
                {b.slot: (b.calls, b.errors) for b in report.by_weekday if b.calls})

    assert slots("UTC") == ({23: (1, 1), 11: (1, 0)}, {7: (1, 1), 1: (1, 0)})
    # Berlin is one hour ahead in March (before summer time): Sunday 23:30 is Monday 00:30.
    assert slots("Europe/Berlin") == ({0: (1, 1), 12: (1, 0)}, {1: (2, 1)})
    assert slots("America/New_York") == ({18: (1, 1), 6: (1, 0)}, {7: (1, 1), 1: (1, 0)})
    assert summarise(facts, timezone="Europe/Berlin").timezone == "Europe/Berlin"


# --- recommendations -----------------------------------------------------------------------

def kinds(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in report.recommendations:
        out.setdefault(r.kind, []).append(r)
    return out


def failing(calls: int, failures: int) -> list[ToolFact]:
    return [fact(i, "Fetch", error=i <= failures, result="boom" if i <= failures else "ok")
            for i in range(1, calls + 1)]


def test_wilson_lower_bound():
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(3, 5) == pytest.approx(0.2307, abs=1e-4)
    assert wilson_lower(30, 50) == pytest.approx(0.4618, abs=1e-4)
    assert wilson_lower(10, 10) < 1.0


def test_failing_tool_needs_enough_evidence_and_grows_with_it():
    assert "failing_tool" not in kinds(summarise(failing(4, 2)))  # 50%, but 4 calls
    assert "failing_tool" not in kinds(summarise(failing(40, 4)))  # enough calls, 10%: not sure
    [weak] = kinds(summarise(failing(20, 10)))["failing_tool"]
    [strong] = kinds(summarise(failing(40, 20)))["failing_tool"]
    assert weak.tool == "Fetch"
    assert 0 < weak.strength < strong.strength < 1
    assert weak.strength == pytest.approx(wilson_lower(10, 20), abs=1e-4)
    assert weak.evidence[0].startswith("10 failures in 20 calls (50.0%")


def test_error_class_remedy_needs_enough_errors():
    def edits(n: int) -> list[ToolFact]:
        return [fact(i, "Edit", error=True, result="<tool_use_error>File has not been read yet.")
                for i in range(1, n + 1)]

    assert recommendations.MIN_CLASS_ERRORS == 5
    assert "read_before_edit" not in kinds(summarise(edits(4)))
    [five] = kinds(summarise(edits(5)))["read_before_edit"]
    [ten] = kinds(summarise(edits(10)))["read_before_edit"]
    assert five.tool == "Edit" and "Read a file before editing" in five.text
    assert five.evidence[0].startswith("5 of 5 errors of Edit are not_read_first")
    assert five.strength < ten.strength


def test_switch_recommendation_comes_from_the_data():
    def recoveries(n: int) -> list[ToolFact]:
        out = []
        for i in range(n):
            out += [fact(3 * i + 1, "Edit", error=True, result="String to replace not found"),
                    fact(3 * i + 2, "Read"), fact(3 * i + 3, "Edit")]
        return out

    assert "switch_after_failure" not in kinds(summarise(recoveries(4)))
    [five] = kinds(summarise(recoveries(5)))["switch_after_failure"]
    [twenty] = kinds(summarise(recoveries(20)))["switch_after_failure"]
    assert "When Edit fails" in five.text and "Read" in five.text
    assert five.evidence[0].startswith("5 of 5 failed Edit calls")
    assert five.strength < twenty.strength


def test_loop_churn_and_subagent_recommendations_need_enough_evidence():
    def loop(repeats: int) -> list[ToolFact]:
        return [fact(i, "Bash", input={"command": "make"}, error=True, result="Exit code 2")
                for i in range(1, repeats + 1)]

    assert "retry_loop" not in kinds(summarise(loop(3)))  # 2 repeated calls
    [rec] = kinds(summarise(loop(5)))["retry_loop"]
    assert rec.strength == pytest.approx(4 / (4 + recommendations.LOOP_HALF), abs=1e-4)
    assert rec.evidence[0] == "1 loop, 4 repeated calls without progress"

    def churn(edits: int) -> list[ToolFact]:
        return [fact(i, "Edit", input={"file_path": "/src/app.py"}) for i in range(edits)]

    assert "edit_churn" not in kinds(summarise(churn(14)))
    [rec] = kinds(summarise(churn(15)))["edit_churn"]
    assert "/src/app.py" in rec.text
    assert rec.evidence[0].startswith("15 edits in 1 session (15.0 per")

    def subagents(count: int, cost: float) -> list[ToolFact]:
        return [fact(i, "Task", agent_id=f"a{i}", subagent_cost_usd=cost,
                     subagent_tokens=1000) for i in range(count)]

    assert "costly_subagents" not in kinds(summarise(subagents(2, 1.0)))  # too few
    assert "costly_subagents" not in kinds(summarise(subagents(5, 0.1)))  # too cheap
    [few] = kinds(summarise(subagents(3, 0.5)))["costly_subagents"]
    [many] = kinds(summarise(subagents(30, 0.5)))["costly_subagents"]
    assert few.strength < many.strength
    assert few.evidence[0].startswith("3 subagent runs cost $1.50")


def test_no_recommendation_without_evidence():
    assert recommend(summarise([])) == []
    assert summarise([fact(1, "Bash", error=True, result="Exit code 1")]).recommendations == []


def test_wire_mapping():
    facts = [*failing(20, 10), fact(30, "Task", agent_id="a1", subagent_tokens=5),
             fact(31, "Edit", input={"file_path": "/a"}), fact(32, "Edit",
                                                              input={"file_path": "/a"})]
    report = summarise(facts, timezone="Europe/Berlin")
    pb = tool_wire.report_to_pb(report)
    assert [r.tool for r in pb.rows] == [r.tool for r in report.rows]
    fetch = next(r for r in pb.rows if r.tool == "Fetch")
    assert (fetch.calls, fetch.errors, dict(fetch.error_classes)) == (20, 10, {"other": 10})
    assert pb.total.calls == 23 and pb.timezone == "Europe/Berlin"
    assert len(pb.by_hour) == 24 and len(pb.by_weekday) == 7
    assert [(c.path, c.edits) for c in pb.churn] == [("/a", 2)]
    assert [(s.agent_id, s.tokens) for s in pb.subagents] == [("a1", 5)]
    assert [r.kind for r in pb.recommendations] == [r.kind for r in report.recommendations]
    assert pb.recommendations[0].evidence == report.recommendations[0].evidence
    listed = tool_wire.recommendations_to_pb(report.recommendations)
    assert list(listed.recommendations) == list(pb.recommendations)
