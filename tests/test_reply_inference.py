"""Reply-tree inference: one small hand-written file per rule, then the real corpus."""

from __future__ import annotations

import json

import orjson
from claude_lines import (
    answer,
    call,
    hook_after_a_later_line,
    local_commands_after_a_caveat,
    outcome,
    progress,
    prompt,
    response_written_out_of_order,
    retry,
    said,
    write,
)

from evaluation import threading as threading_eval
from services.analysis.reply_inference import infer_parents
from threadline.domain.records import Block, Position, Record

_AT = Position("session.jsonl", 0, 1, 0)


def rec(kind: str, uuid: str = "", *, version: str = "2.1.3", subtype: str = "",
        text: str = "", blocks: list[Block] | None = None) -> Record:
    return Record(type=kind, source=_AT, raw=b"{}", uuid=uuid, version=version,
                  subtype=subtype, text=text, content=list(blocks or []))


def use(ident: str, name: str = "Bash", **inputs: object) -> Block:
    return Block("tool_use", tool_use_id=ident, tool_name=name,
                 tool_input_json=orjson.dumps(inputs))


def result(ident: str) -> Block:
    return Block("tool_result", tool_use_id=ident)


def test_first_record_is_a_root_and_lines_without_uuid_are_not_parents():
    records = [rec("summary"), rec("file-history-snapshot"), rec("user", "u1", text="hi"),
               rec("queue-operation"), rec("assistant", "a1", text="hello")]
    assert infer_parents(records) == ["", "", "", "", "u1"]


def test_streaming_split_chains_one_line_per_block():
    records = [rec("user", "u1", text="do it"), rec("assistant", "a1", text="thinking"),
               rec("assistant", "a2", blocks=[use("t1")]),
               rec("user", "u2", blocks=[result("t1")])]
    assert infer_parents(records) == ["", "u1", "a1", "a2"]


def test_parallel_results_are_siblings_from_2_1():
    records = [rec("user", "u1", text="both"), rec("assistant", "a1", blocks=[use("t1")]),
               rec("assistant", "a2", blocks=[use("t2")]),
               rec("user", "r1", blocks=[result("t1")]),
               rec("user", "r2", blocks=[result("t2")]),
               rec("assistant", "a3", text="done")]
    assert infer_parents(records) == ["", "u1", "a1", "a1", "a2", "r2"]


def test_parallel_results_chain_one_after_the_other_before_2_1():
    records = [rec("user", "u1", text="both", version="2.0.76"),
               rec("assistant", "a1", version="2.0.76", blocks=[use("t1")]),
               rec("assistant", "a2", version="2.0.76", blocks=[use("t2")]),
               rec("user", "r1", version="2.0.76", blocks=[result("t1")]),
               rec("user", "r2", version="2.0.76", blocks=[result("t2")])]
    assert infer_parents(records) == ["", "u1", "a1", "a2", "r1"]


def test_compact_boundary_is_a_root_and_the_summary_hangs_off_it():
    records = [rec("user", "u1", text="hi"), rec("assistant", "a1", text="hello"),
               rec("system", "b1", subtype="compact_boundary"),
               rec("user", "s1", subtype="compact_summary", text="This session is being..."),
               rec("assistant", "a2", text="continuing")]
    assert infer_parents(records) == ["", "u1", "", "b1", "s1"]


def test_old_compaction_summary_without_boundary_is_a_root():
    records = [rec("user", "u1", text="hi", version="1.0.80"),
               rec("assistant", "a1", text="hello", version="1.0.80"),
               rec("user", "s1", subtype="compact_summary", version="1.0.80",
                   text="This session is being continued from a previous conversation"),
               rec("assistant", "a2", text="ok", version="1.0.80")]
    assert infer_parents(records) == ["", "u1", "", "s1"]


def test_progress_lines_follow_the_line_before():
    progress = rec("progress", "p1", subtype="hook_progress",
                   blocks=[Block("other", tool_use_id="t1", raw_type="hook_progress")])
    records = [rec("user", "u1", text="go"), rec("assistant", "a1", blocks=[use("t1")]),
               progress, rec("user", "r1", blocks=[result("t1")])]
    assert infer_parents(records) == ["", "u1", "a1", "a1"]


def test_inline_subagent_is_a_side_chain_until_its_result_returns():
    version = "1.0.81"
    records = [
        rec("user", "u1", text="two agents", version=version),
        rec("assistant", "a1", version=version, blocks=[use("t1", "Task", prompt="Audit A")]),
        rec("assistant", "a2", version=version, blocks=[use("t2", "Task", prompt="Audit B")]),
        rec("user", "s1", text="Audit A", version=version),  # subagent 1 starts: a root
        rec("assistant", "s2", text="A is fine", version=version),
        rec("user", "r1", version=version, blocks=[result("t1")]),  # back on the main chain
        rec("user", "s3", text="Audit B", version=version),
        rec("assistant", "s4", blocks=[use("t3", "Read")], version=version),
        rec("user", "s5", blocks=[result("t3")], version=version),
        rec("assistant", "s6", text="B is fine", version=version),
        rec("user", "r2", version=version, blocks=[result("t2")]),
        rec("assistant", "a3", text="both fine", version=version),
    ]
    assert infer_parents(records) == ["", "u1", "a1", "", "s1", "a2", "", "s3", "s4", "s5",
                                      "r1", "r2"]


def test_a_user_text_that_repeats_no_pending_prompt_stays_on_the_main_chain():
    records = [rec("user", "u1", text="Audit A"), rec("assistant", "a1", text="ok"),
               rec("user", "u2", text="Audit A")]
    assert infer_parents(records) == ["", "u1", "a1"]


def test_empty_input():
    assert infer_parents([]) == []


def test_corpus_inference_beats_tool_pairing_baseline(corpus):
    overall = threading_eval.evaluate(corpus)["overall"]
    assert overall.total > 1000
    assert overall.correct["inferred"] >= overall.correct["previous+tool_pairing"]
    assert overall.correct["inferred"] > overall.correct["previous"]


def test_stored_rule_precision_matches_the_corpus(corpus):
    """Inferred links report their rule's precision as confidence: the stored figures must be
    what the evaluation measures now (rerun `--write-calibration` after changing a rule)."""
    from evaluation.threading import rule_precision
    from services.analysis.thread_links import CALIBRATION_FILE

    stored = json.loads(CALIBRATION_FILE.read_text())["rules"]
    assert stored == rule_precision(corpus)
    assert all(0 < rule["precision"] <= 1 for rule in stored.values())


def test_threader_memory_is_bounded():
    from services.analysis.reply_inference import MAX_REMEMBERED_USES, ReplyThreader

    threader = ReplyThreader()
    for i in range(3 * MAX_REMEMBERED_USES):
        threader.step(rec("assistant", f"a{i}", blocks=[use(f"t{i}")]))
    assert len(threader._uses) == MAX_REMEMBERED_USES


# --- small synthetic Claude Code files, read the way the evaluation reads them ---------------
# Each line is written with its true `parentUuid` (tests/claude_lines.py);
# `threading_eval.read_file` removes the links and keeps them as the truth, so a test compares
# the inferred parents with what Claude Code wrote.

def threaded(tmp_path, lines: list[dict]) -> dict[str, tuple[str, str]]:
    """uuid -> (inferred parent, the parent Claude Code wrote) for a synthetic file."""
    path = write(tmp_path / "session.jsonl", lines)
    found = threading_eval.read_file(path, path.name)
    guesses = infer_parents(found.records)
    return {r.uuid: (g, t) for r, g, t in zip(found.records, guesses, found.truth, strict=True)}


def wrong(links: dict[str, tuple[str, str]]) -> list[str]:
    return [uuid for uuid, (guess, truth) in links.items() if guess != truth]


def test_lines_of_one_response_written_out_of_order(tmp_path):
    """Two tool_use blocks of one response written in reverse: the second block's line comes
    first in the file but is stamped after the first block's line. The line written late
    takes the parent of the line before it, which stays the chain tip. The line written
    first cannot be placed right: its parent is only written after it."""
    links = threaded(tmp_path, response_written_out_of_order())
    assert links["a2"] == ("a1", "a1")
    assert wrong(links) == ["a3"]


def test_a_post_tool_use_hook_follows_the_result_of_its_tool(tmp_path):
    """A PostToolUse hook attachment hangs off the line holding its tool's result even when
    another line (a task reminder, stamped after the hook) was written between them; the
    next line continues from that later-stamped line, not from the hook."""
    links = threaded(tmp_path, hook_after_a_later_line())
    assert links["h2"] == ("r2", "r2")
    assert links["a3"] == ("t1", "t1")
    assert wrong(links) == ["t1"]  # its parent, the hook, is written after it


def test_a_prompt_after_retries_that_never_got_an_answer_replaces_the_failed_prompt(tmp_path):
    links = threaded(tmp_path, [
        prompt("u1", None, 0, "first question"),
        answer("a1", "u1", 3, "msg_1", said("First answer.")),
        prompt("u2", "a1", 20, "second question"),
        retry("e1", "u2", 21, 1),
        retry("e2", "e1", 23, 2),
        retry("e3", "e2", 27, 3),
        prompt("u3", "a1", 90, "second question, again"),
        answer("a3", "u3", 93, "msg_3", said("Second answer.")),
        prompt("u4", "a3", 120, "third question"),
    ])
    assert links["u3"] == ("a1", "a1")
    assert wrong(links) == []


def test_retries_that_got_an_answer_leave_the_next_prompt_on_the_chain(tmp_path):
    links = threaded(tmp_path, [
        prompt("u1", None, 0, "a question"),
        retry("e1", "u1", 1, 1),
        answer("a1", "e1", 4, "msg_1", said("An answer.")),
        prompt("u2", "a1", 30, "another question"),
    ])
    assert wrong(links) == []


def test_a_progress_line_written_late_hangs_off_its_tool_call(tmp_path):
    """A progress line stamped minutes before the chain tip hangs off its tool call and the
    next line continues from the tip; one stamped a few seconds before the tip (written
    while the response was still streaming) chains like any other line."""
    links = threaded(tmp_path, [
        prompt("u1", None, 0, "build it"),
        answer("a1", "u1", 1, "msg_1", call("toolu_1")),
        answer("a2", "a1", 5, "msg_1", call("toolu_2")),
        progress("p1", "a2", 1.5, "toolu_1"),  # 3.5 s behind: chains
        outcome("r1", "a1", 2, "toolu_1"),
        outcome("r2", "a2", 6, "toolu_2"),
        answer("a3", "r2", 300, "msg_2", said("Built.")),
        progress("p2", "a2", 7, "toolu_2"),  # written late: hangs off its tool call
        prompt("u2", "a3", 400, "now test it"),
    ])
    assert links["p1"] == ("a2", "a2")
    assert links["p2"] == ("a2", "a2")
    assert links["u2"] == ("a3", "a3")
    assert wrong(links) == []


def test_local_commands_hang_off_the_caveat_line(tmp_path):
    """1.0.x: each local command (slash command or `!` shell command) hangs off the caveat
    meta line written before the first of them, however much conversation came between."""
    links = threaded(tmp_path, local_commands_after_a_caveat())
    assert links["k2"] == ("c1", "c1")
    assert wrong(links) == []


def test_rules_can_be_switched_off_for_the_evaluation(tmp_path):
    from services.analysis.reply_inference import RETRY

    path = write(tmp_path / "session.jsonl", [
        prompt("u1", None, 0, "q"), answer("a1", "u1", 1, "m1", said("a")),
        prompt("u2", "a1", 5, "q2"), retry("e1", "u2", 6, 1), prompt("u3", "a1", 9, "q3")])
    records = threading_eval.read_file(path, "x").records
    assert infer_parents(records)[-1] == "a1"
    assert infer_parents(records, frozenset({RETRY}))[-1] == "e1"
