"""The reply-structure evaluations on small synthetic corpora: roots, the real import
pipeline, and the leave-one-folder-out check of the rules."""

from __future__ import annotations

from claude_lines import (
    answer,
    hook_after_a_later_line,
    local_commands_after_a_caveat,
    prompt,
    renamed,
    response_written_out_of_order,
    said,
    write,
)

from cli import thread_eval
from evaluation import threading as threading_eval


def test_the_pipeline_threads_late_lines_by_their_timestamps_and_tool_ids(tmp_path):
    """Through `threadline import` (ingest, analysis, store): what the analysis service hands
    the threader must carry the timestamps, response ids and hook tool ids the rules read.
    Two lines cannot be placed right (their parent is written after them); every other
    record is, roots included (a root is right when both sides are empty)."""
    corpus = tmp_path / "corpus"
    write(corpus / "p" / "out_of_order.jsonl", renamed(response_written_out_of_order(), "o-"))
    write(corpus / "p" / "hooks.jsonl", renamed(hook_after_a_later_line(), "h-"))
    write(corpus / "p" / "caveat.jsonl", renamed(local_commands_after_a_caveat(), "c-"))
    scores = thread_eval.evaluate([corpus])
    overall = scores["overall"]
    total = (len(response_written_out_of_order()) + len(hook_after_a_later_line())
             + len(local_commands_after_a_caveat()))
    assert (overall.total, overall.correct, overall.unreachable) == (total, total - 2, 0)
    assert (overall.roots, overall.roots_correct) == (3, 3)
    assert "a root counts as correct when both" in thread_eval.table(scores)


def test_a_root_given_a_parent_is_a_miss(tmp_path):
    """A record written with `parentUuid: null` in the middle of a file (here a second
    prompt Claude Code wrote as a root) counts as a root that was not inferred as one."""
    path = write(tmp_path / "c" / "p" / "s.jsonl", [
        prompt("u1", None, 0, "first"), answer("a1", "u1", 2, "m1", said("one")),
        prompt("u2", None, 9, "second")])
    score = threading_eval.score_file(threading_eval.read_file(path, "p/s.jsonl"))
    assert (score.total, score.roots, score.roots_correct) == (3, 2, 1)
    assert score.correct["inferred"] == 2


def test_leave_one_folder_out_switches_off_a_rule_only_one_folder_backs(tmp_path):
    corpus = tmp_path / "corpus"
    write(corpus / "alpha" / "caveat.jsonl", local_commands_after_a_caveat())
    write(corpus / "beta" / "caveat.jsonl", local_commands_after_a_caveat())
    write(corpus / "gamma" / "hooks.jsonl", hook_after_a_later_line())
    rules, outcome = threading_eval.leave_one_folder_out(corpus)

    assert rules["local_command"].decided == {"alpha": 2, "beta": 2, "gamma": 0}
    assert rules["local_command"].gain == {"alpha": 1, "beta": 1, "gamma": 0}
    assert rules["hook_after_result"].gain["gamma"] == 2  # the hook and the line after it
    # The caveat rule is backed by another folder wherever it counts; the hook rule is not.
    assert outcome["alpha"].held_out == outcome["alpha"].correct == 7
    assert outcome["gamma"].switched_off == ["hook_after_result", "tool_result"]
    assert outcome["gamma"].held_out < outcome["gamma"].correct
    assert outcome["overall"].correct - outcome["overall"].held_out == \
        outcome["gamma"].correct - outcome["gamma"].held_out


def test_rule_precision_is_fitted_leaving_one_folder_out(tmp_path):
    """The stored confidence of a rule is its lowest precision with one folder held out, so
    a folder where the rule does well cannot raise it."""
    corpus = tmp_path / "corpus"
    write(corpus / "alpha" / "caveat.jsonl", local_commands_after_a_caveat())
    write(corpus / "beta" / "order.jsonl", response_written_out_of_order())
    fitted = threading_eval.rule_precision(corpus)
    chain = fitted["previous_in_chain"]
    assert chain["folders"] == 2
    assert chain["precision"] < chain["correct"] / chain["total"]
    assert fitted["local_command"] == {"correct": 2, "total": 2, "folders": 1, "precision": 1.0}
