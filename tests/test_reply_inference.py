"""Reply-tree inference: one small hand-written file per rule, then the real corpus."""

from __future__ import annotations

import json

import orjson

from evaluation import threading as threading_eval
from services.analysis.reply_inference import infer_parents
from threadline.records import Block, Position, Record

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
