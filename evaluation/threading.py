"""How well `services.analysis.reply_inference` recovers Claude Code's reply tree.

    python -m evaluation.threading [--corpus PATH] [--json]

Every `*.jsonl` file under the corpus that holds Claude Code records is read with its parent
links removed (`parentUuid`, `logicalParentUuid`, `isSidechain`, `agentId` deleted from each
line), parsed with the real parser, and its records are threaded by `infer_parents` in file
order. Each user, assistant, system, progress and attachment record is scored against the
`parentUuid` that was removed: a root (`parentUuid` null or absent) counts as correct when the
inferred parent is empty too (`roots`, `roots ok` in the table). Two baselines run
on the same records: the previous uuid-bearing record of the file, and that plus pairing each
tool_result line with the line holding its tool_use. Figures per source folder (the first path
component under the corpus) and overall. A parent that is not in the file at all (a truncated
history) cannot be inferred and is counted as a miss for every method; `unreachable` says how
many there are.

Leave one folder out (`--leave-one-folder-out`, also part of `make eval`): no rule may owe its
gain to a single source folder. Each optional rule (reply_inference.OPTIONAL_RULES) is switched
off in turn; per folder, the records it decides and what it gains (correct with all rules
minus correct without it). A rule counts as supported for folder F when, in the other folders,
it decides at least one record and gains at least as much as it loses there. F is then
threaded with only its supported rules: that is F's held-out accuracy, beside its accuracy
with every rule.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from evaluation.corpus import DEFAULT_CORPUS
from services.analysis.reply_inference import OPTIONAL_RULES, ReplyThreader, infer_parents
from services.analysis.thread_links import CALIBRATION_FILE
from services.ingest.parser import parse_line
from threadline.domain.records import CLAUDE_CODE, Position, Record

REMOVED = ("parentUuid", "logicalParentUuid", "isSidechain", "agentId")
SCORED_TYPES = frozenset({"user", "assistant", "system", "progress", "attachment"})


@dataclass
class ThreadedFile:
    path: str  # relative to the corpus
    records: list[Record]
    truth: list[str]  # the removed parentUuid per record ("" for null or absent)


def read_file(path: Path, relative: str) -> ThreadedFile | None:
    """One file without its parent links; None if it holds no Claude Code record."""
    records: list[Record] = []
    truth: list[str] = []
    offset = 0
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        position = Position(str(path), offset, number, len(line))
        offset += len(line) + 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # blank or broken lines are the parser evaluation's business, not ours
        if not isinstance(obj, dict):
            continue
        parent = obj.get("parentUuid")
        for name in REMOVED:
            obj.pop(name, None)
        parsed = parse_line(orjson.dumps(obj), position)
        for rec in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(rec, Record):
                records.append(rec)
                truth.append(parent if isinstance(parent, str) else "")
    if not any(r.format == CLAUDE_CODE for r in records):
        return None
    return ThreadedFile(relative, records, truth)


def corpus_files(corpus: Path) -> Iterator[ThreadedFile]:
    for path in sorted(corpus.rglob("*.jsonl")):
        threaded = read_file(path, path.relative_to(corpus).as_posix())
        if threaded is not None:
            yield threaded


# --- baselines ---------------------------------------------------------------------------

def previous_record(records: Sequence[Record]) -> list[str]:
    """Baseline: each record's parent is the previous uuid-bearing record of the file."""
    out, last = [], ""
    for rec in records:
        out.append(last)
        if rec.uuid:
            last = rec.uuid
    return out


def previous_with_tool_pairing(records: Sequence[Record]) -> list[str]:
    """Baseline: the previous record, except a tool_result line answers its tool_use's line."""
    out = previous_record(records)
    owner: dict[str, str] = {}
    for i, rec in enumerate(records):
        for block in rec.content:
            if block.kind == "tool_result" and block.tool_use_id in owner:
                out[i] = owner[block.tool_use_id]
                break
        for block in rec.content:
            if block.kind == "tool_use" and block.tool_use_id and rec.uuid:
                owner[block.tool_use_id] = rec.uuid
    return out


METHODS: dict[str, Callable[[Sequence[Record]], list[str]]] = {
    "inferred": infer_parents,
    "previous": previous_record,
    "previous+tool_pairing": previous_with_tool_pairing,
}


@dataclass
class Score:
    total: int = 0
    unreachable: int = 0
    roots: int = 0  # records whose removed parentUuid was null (or absent)
    roots_correct: int = 0  # ... inferred as roots too
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METHODS, 0))

    def add(self, other: Score) -> None:
        self.total += other.total
        self.unreachable += other.unreachable
        self.roots += other.roots
        self.roots_correct += other.roots_correct
        for name, value in other.correct.items():
            self.correct[name] += value

    def as_dict(self) -> dict:
        return {"total": self.total, "unreachable": self.unreachable, "roots": self.roots,
                "roots_correct": self.roots_correct,
                **{name: {"correct": value, "percent": self.percent(name)}
                   for name, value in self.correct.items()}}

    def percent(self, method: str) -> float:
        return round(100.0 * self.correct[method] / self.total, 2) if self.total else 0.0


def score_file(threaded: ThreadedFile) -> Score:
    score = Score()
    guesses = {name: method(threaded.records) for name, method in METHODS.items()}
    uuids = {r.uuid for r in threaded.records if r.uuid}
    for i, (rec, true_parent) in enumerate(zip(threaded.records, threaded.truth, strict=True)):
        if rec.format != CLAUDE_CODE or rec.type not in SCORED_TYPES:
            continue
        score.total += 1
        score.unreachable += bool(true_parent) and true_parent not in uuids
        if not true_parent:
            score.roots += 1
            score.roots_correct += not guesses["inferred"][i]
        for name, guess in guesses.items():
            score.correct[name] += guess[i] == true_parent  # a root: both empty
    return score


def _correct(threaded: ThreadedFile, disabled: frozenset[str]) -> int:
    guess = infer_parents(threaded.records, disabled)
    return sum(g == t for rec, g, t in zip(threaded.records, guess, threaded.truth, strict=True)
               if rec.format == CLAUDE_CODE and rec.type in SCORED_TYPES)


@dataclass
class RuleFigures:
    decided: dict[str, int] = field(default_factory=dict)  # folder -> records it decided
    gain: dict[str, int] = field(default_factory=dict)  # folder -> correct with - without it

    def supported_without(self, folder: str) -> bool:
        """Whether the other folders alone back the rule: it decides records there and gains
        at least as much as it loses."""
        decided = sum(n for f, n in self.decided.items() if f != folder)
        gain = sum(n for f, n in self.gain.items() if f != folder)
        return decided > 0 and gain >= 0


@dataclass
class HeldOut:
    total: int = 0
    correct: int = 0  # with every rule
    held_out: int = 0  # with only the rules the other folders support
    switched_off: list[str] = field(default_factory=list)


def leave_one_folder_out(corpus: Path) -> tuple[dict[str, RuleFigures], dict[str, HeldOut]]:
    """Per optional rule, what it decides and gains per folder; per folder (and "overall"), the
    accuracy with every rule and with only the rules the other folders support."""
    folders: dict[str, list[ThreadedFile]] = {}
    for threaded in corpus_files(corpus):
        folders.setdefault(threaded.path.split("/", 1)[0], []).append(threaded)
    rules = {rule: RuleFigures() for rule in OPTIONAL_RULES}
    outcome: dict[str, HeldOut] = {}
    for folder, files in sorted(folders.items()):
        full = sum(_correct(f, frozenset()) for f in files)
        outcome[folder] = HeldOut(total=sum(score_file(f).total for f in files), correct=full)
        for rule, figures in rules.items():
            figures.gain[folder] = full - sum(_correct(f, frozenset({rule})) for f in files)
            figures.decided[folder] = 0
        for f in files:
            threader = ReplyThreader()
            for rec in f.records:
                rule = threader.step(rec)[1]
                if rule in rules and rec.format == CLAUDE_CODE and rec.type in SCORED_TYPES:
                    rules[rule].decided[folder] += 1
    overall = HeldOut()
    for folder, files in sorted(folders.items()):
        result = outcome[folder]
        off = frozenset(r for r, figures in rules.items() if not figures.supported_without(folder))
        result.switched_off = sorted(r for r in off if rules[r].decided[folder])
        result.held_out = sum(_correct(f, off) for f in files) if off else result.correct
        overall.total += result.total
        overall.correct += result.correct
        overall.held_out += result.held_out
    return rules, {**outcome, "overall": overall}


def print_leave_one_folder_out(corpus: Path) -> None:
    rules, outcome = leave_one_folder_out(corpus)
    print("leave one folder out: per rule, records decided / net gain in each folder "
          "(folders where it decides nothing are left out)")
    for rule, figures in rules.items():
        cells = [f"{folder} {n}/{figures.gain[folder]:+d}"
                 for folder, n in figures.decided.items() if n or figures.gain[folder]]
        print(f"  {rule:<24} " + (", ".join(cells) or "decides nothing in this corpus"))
    print("  per folder: accuracy with every rule, and with only the rules the other folders "
          "support")
    width = max(len(k) for k in outcome)
    for folder, r in outcome.items():
        pct = [round(100.0 * n / r.total, 2) if r.total else 0.0 for n in (r.correct, r.held_out)]
        off = f"  (without {', '.join(r.switched_off)})" if r.switched_off else ""
        print(f"  {folder.ljust(width)}  {r.correct:>6}/{r.total:<6} {pct[0]:6.2f}%  "
              f"held out {r.held_out:>6}/{r.total:<6} {pct[1]:6.2f}%{off}")


def rule_precision(corpus: Path) -> dict[str, dict]:
    """Per inference rule: how many scored records it decided, how many it got right, in how
    many source folders, and its precision fitted leaving one folder out.

    The precision is what thread links report as the confidence of an inferred parent. It is
    the lowest of the precisions measured with one folder held out (each folder in turn), so
    no single folder can raise a rule's confidence. A rule that decides records in one
    folder only has no held-out figure; it keeps the figure of that folder (`folders`: 1)."""
    counts: dict[str, dict[str, list[int]]] = {}
    for threaded in corpus_files(corpus):
        folder = threaded.path.split("/", 1)[0]
        threader = ReplyThreader()
        for rec, true_parent in zip(threaded.records, threaded.truth, strict=True):
            guess, rule = threader.step(rec)
            if rec.format != CLAUDE_CODE or rec.type not in SCORED_TYPES or not guess:
                continue  # a root inferred as none is no link, so has no confidence to report
            tally = counts.setdefault(rule, {}).setdefault(folder, [0, 0])
            tally[0] += guess == true_parent
            tally[1] += 1
    out = {}
    for rule, by_folder in sorted(counts.items()):
        correct = sum(c for c, _ in by_folder.values())
        total = sum(t for _, t in by_folder.values())
        held_out = [(correct - c) / (total - t) for c, t in by_folder.values() if total > t]
        out[rule] = {"correct": correct, "total": total, "folders": len(by_folder),
                     "precision": round(min(held_out, default=correct / total), 4)}
    return out


def write_calibration(corpus: Path) -> dict:
    data = {"about": "Precision of each reply-inference rule on real Claude Code transcripts "
                     "with their parent links removed, the lowest of the figures measured "
                     "with one source folder held out; written by "
                     "`python -m evaluation.threading --write-calibration`.",
            "rules": rule_precision(corpus)}
    CALIBRATION_FILE.write_text(json.dumps(data, indent=2) + "\n")
    return data


def evaluate(corpus: Path) -> dict[str, Score]:
    """Scores per source folder, plus "overall"."""
    folders: dict[str, Score] = {}
    for threaded in corpus_files(corpus):
        folder = threaded.path.split("/", 1)[0]
        folders.setdefault(folder, Score()).add(score_file(threaded))
    overall = Score()
    for score in folders.values():
        overall.add(score)
    return {**dict(sorted(folders.items())), "overall": overall}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.threading")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--leave-one-folder-out", action="store_true",
                        help="only the leave-one-folder-out check of the rules")
    parser.add_argument("--write-calibration", action="store_true",
                        help=f"store each rule's precision in {CALIBRATION_FILE.name}")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"evaluation.threading: no transcript folder at {args.corpus} (pass --corpus PATH)")
        return 2
    if args.write_calibration:
        print(json.dumps(write_calibration(args.corpus)["rules"], indent=2))
        return 0
    if args.leave_one_folder_out:
        print_leave_one_folder_out(args.corpus)
        return 0
    scores = evaluate(args.corpus)
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in scores.items()}, indent=2))
        return 0
    print(f"reply-tree inference on {args.corpus} (parent links removed; correct/total; a "
          f"root counts as correct when both the removed and the inferred parent are empty)")
    names = list(METHODS)
    width = max(len(k) for k in scores)
    print(f"  {'folder'.ljust(width)}  {'records':>7}  {'unreach':>7}  {'roots':>6}  "
          f"{'roots ok':>8}  " + "  ".join(f"{n:>26}" for n in names))
    for folder, score in scores.items():
        cells = [f"{score.correct[n]}/{score.total} {score.percent(n):6.2f}%" for n in names]
        print(f"  {folder.ljust(width)}  {score.total:>7}  {score.unreachable:>7}  "
              f"{score.roots:>6}  {score.roots_correct:>8}  "
              + "  ".join(f"{c:>26}" for c in cells))
    print()
    print_leave_one_folder_out(args.corpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
