"""How well the rule-based intent classifier (services/analysis/context.py) matches hand labels.

    python -m evaluation.intent [--corpus PATH] [--labels PATH] [--json]

`evaluation/data/intent_labels.csv` names real user prompts of the corpus and their intent:
columns `path,line_number,uuid,label` (`#` lines are comments; `path` is relative to the
corpus; for a Gemini JSON chat document `line_number` is the 1-based index in its `messages`
list). Each labelled file is read in order with the real parser; the labelled record is run
through `prompt_text` (a labelled record it does not take for a prompt is counted apart, as
`not_prompt`, and not scored) and then `analyse_prompt`, with the previous real prompt and
the previous assistant text of the same file, as the analysis service passes them.

Figures: per-class precision, recall, F1 and support, accuracy, macro-F1 (the unweighted mean
F1 over the classes that occur in the labels or the predictions), a confusion matrix (rows:
label, columns: prediction), accuracy per confidence band (is the confidence worth
anything?), a majority-class baseline, and the mean time of `analyse_prompt` per prompt (the
first call of a process, which loads the analysers' tables, is timed apart).
Skips (exit 0, with a message) when the corpus or the labels file is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.corpus import DEFAULT_CORPUS
from services.analysis.context import INTENTS, analyse_prompt
from services.analysis.prompts import prompt_text
from services.ingest.discovery import is_document, source_format
from services.ingest.parser import parse_line
from threadline.domain.records import Position, Record

LABELS = Path(__file__).resolve().parent / "data" / "intent_labels.csv"
BANDS = ((0.0, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 1.01))


@dataclass(frozen=True, slots=True)
class Label:
    path: str
    line_number: int
    uuid: str
    label: str


@dataclass(slots=True)
class Scored:
    label: Label
    predicted: str
    confidence: float
    evidence: str
    text: str


def read_labels(path: Path) -> tuple[list[Label], list[str]]:
    """The labelled rows, and a description of each row that could not be read."""
    rows: list[Label] = []
    bad: list[str] = []
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    for number, row in enumerate(csv.DictReader(lines), 2):
        try:
            label = Label(row["path"].strip(), int(row["line_number"]),
                          (row.get("uuid") or "").strip(), row["label"].strip().lower())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            bad.append(f"row {number}: {exc!r}")
            continue
        if label.label not in INTENTS:
            bad.append(f"row {number}: unknown label {label.label!r}")
            continue
        rows.append(label)
    return rows, bad


def file_records(path: Path) -> Iterator[tuple[int, Record]]:
    """(line number, record) in file order; a Gemini JSON document's messages numbered
    1, 2, ... by their index in `messages`."""
    data = path.read_bytes()
    fmt = source_format(str(path))
    if is_document(str(path)):
        parsed = parse_line(data, Position(str(path), 0, 1, len(data)), fmt)
        records = [r for r in (parsed if isinstance(parsed, list) else [parsed])
                   if isinstance(r, Record)]
        for index, rec in enumerate(records[1:], 1):  # records[0] is the chat's metadata
            yield index, rec
        return
    offset = 0
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            parsed = parse_line(line, Position(str(path), offset, number, len(line)), fmt)
            for rec in parsed if isinstance(parsed, list) else [parsed]:
                if isinstance(rec, Record):
                    yield number, rec
        offset += len(line) + 1


def score_file(path: Path, labels: list[Label]) -> tuple[list[Scored], list[Label],
                                                          list[Label], list[float]]:
    """(scored rows, rows that are not prompts, rows not found, seconds of each
    analyse_prompt call)."""
    wanted = {label.line_number: label for label in labels}
    found: set[int] = set()
    scored: list[Scored] = []
    not_prompts: list[Label] = []
    previous_prompt = previous_assistant = ""
    seconds: list[float] = []
    for number, rec in file_records(path):
        label = wanted.get(number)
        target = label is not None and number not in found and (
            not label.uuid or not rec.uuid or rec.uuid == label.uuid)
        if target:
            found.add(number)
        text = prompt_text(rec)
        if text is None:
            if target:
                not_prompts.append(label)
            if rec.role == "assistant" and rec.text and not rec.is_sidechain and not rec.agent_id:
                previous_assistant = rec.text
            continue
        started = time.perf_counter()
        result = analyse_prompt(text, previous_prompt, previous_assistant)
        seconds.append(time.perf_counter() - started)
        previous_prompt = text
        if target:
            scored.append(Scored(label, result.intent, result.intent_confidence,
                                 result.intent_evidence, text))
    missing = [label for n, label in wanted.items() if n not in found]
    return scored, not_prompts, missing, seconds


def metrics(scored: Sequence[Scored]) -> dict:
    classes = [c for c in INTENTS if any(s.label.label == c or s.predicted == c for s in scored)]
    per_class = {}
    for c in classes:
        tp = sum(1 for s in scored if s.label.label == c and s.predicted == c)
        predicted = sum(1 for s in scored if s.predicted == c)
        support = sum(1 for s in scored if s.label.label == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"precision": round(precision, 3), "recall": round(recall, 3),
                        "f1": round(f1, 3), "support": support, "predicted": predicted}
    total = len(scored)
    correct = sum(1 for s in scored if s.label.label == s.predicted)
    confusion = {c: {p: sum(1 for s in scored if s.label.label == c and s.predicted == p)
                     for p in classes} for c in classes}
    bands = []
    for low, high in BANDS:
        inside = [s for s in scored if low <= s.confidence < high]
        if inside:
            bands.append({"confidence": f"{low:.1f}-{min(high, 1.0):.1f}", "prompts": len(inside),
                          "accuracy": round(sum(s.label.label == s.predicted
                                                for s in inside) / len(inside), 3)})
    majority = max(classes, key=lambda c: per_class[c]["support"]) if classes else ""
    return {
        "prompts": total,
        "accuracy": round(correct / total, 3) if total else 0.0,
        "macro_f1": round(sum(v["f1"] for v in per_class.values()) / len(per_class), 3)
        if per_class else 0.0,
        "per_class": per_class,
        "confusion": confusion,
        "by_confidence": bands,
        "majority_baseline": {"label": majority, "accuracy": round(
            per_class[majority]["support"] / total, 3) if total else 0.0},
    }


def _timing(seconds: list[float]) -> dict:
    if not seconds:
        return {"prompts": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(seconds)
    return {"prompts": len(ordered), "mean": round(sum(ordered) / len(ordered) * 1e6, 1),
            "p50": round(ordered[len(ordered) // 2] * 1e6, 1),
            "p95": round(ordered[int(len(ordered) * 0.95)] * 1e6, 1),
            "max": round(ordered[-1] * 1e6, 1)}


def evaluate(corpus: Path, labels_path: Path) -> dict:
    labels, bad = read_labels(labels_path)
    started = time.perf_counter()
    analyse_prompt("Warm up: the first call loads the analysers' tables.")
    first_call = time.perf_counter() - started
    by_file: dict[str, list[Label]] = {}
    for label in labels:
        by_file.setdefault(label.path, []).append(label)
    scored: list[Scored] = []
    not_prompts: list[Label] = []
    missing: list[Label] = []
    seconds: list[float] = []
    for relative, rows in sorted(by_file.items()):
        path = corpus / relative
        if not path.is_file():
            missing.extend(rows)
            continue
        s, n, m, t = score_file(path, rows)
        scored.extend(s)
        not_prompts.extend(n)
        missing.extend(m)
        seconds.extend(t)
    result = metrics(scored)
    result.update({
        "labelled_rows": len(labels) + len(bad),
        "unreadable_rows": bad,
        "not_prompt": [f"{x.path}:{x.line_number} ({x.label})" for x in not_prompts],
        "not_found": [f"{x.path}:{x.line_number} ({x.label})" for x in missing],
        "analyse_prompt_us": _timing(seconds),
        "analyse_prompt_first_call_ms": round(first_call * 1e3, 1),
        "errors": [{"where": f"{s.label.path}:{s.label.line_number}", "label": s.label.label,
                    "predicted": s.predicted, "confidence": s.confidence,
                    "text": s.text[:120], "evidence": s.evidence}
                   for s in scored if s.label.label != s.predicted],
    })
    return result


def _print(result: dict, corpus: Path, labels: Path) -> None:
    print(f"intent classification against {labels.name} on {corpus}")
    print(f"  labelled rows {result['labelled_rows']}, scored {result['prompts']}, "
          f"not a prompt for prompt_text {len(result['not_prompt'])}, "
          f"not found {len(result['not_found'])}, unreadable {len(result['unreadable_rows'])}")
    for name in ("not_prompt", "not_found", "unreadable_rows"):
        for item in result[name]:
            print(f"    {name}: {item}")
    print(f"  {'class':<14}{'precision':>10}{'recall':>8}{'f1':>7}{'support':>9}{'predicted':>11}")
    for c, v in result["per_class"].items():
        print(f"  {c:<14}{v['precision']:>10.3f}{v['recall']:>8.3f}{v['f1']:>7.3f}"
              f"{v['support']:>9}{v['predicted']:>11}")
    base = result["majority_baseline"]
    print(f"  accuracy {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}  "
          f"(always '{base['label']}': accuracy {base['accuracy']:.3f})")
    classes = list(result["confusion"])
    short = [c[:6] for c in classes]
    print("  confusion (rows: label, columns: predicted)")
    print("  " + " " * 14 + "".join(f"{s:>7}" for s in short))
    for c in classes:
        print(f"  {c:<14}" + "".join(f"{result['confusion'][c][p]:>7}" for p in classes))
    print("  accuracy by confidence: " + ", ".join(
        f"{b['confidence']} {b['accuracy']:.2f} ({b['prompts']})"
        for b in result["by_confidence"]))
    t = result["analyse_prompt_us"]
    print(f"  analyse_prompt over the {t['prompts']} prompts of the labelled files: mean "
          f"{t['mean']:.0f} µs, median {t['p50']:.0f} µs, p95 {t['p95']:.0f} µs, max "
          f"{t['max'] / 1000:.1f} ms (the first call of a process, "
          f"{result['analyse_prompt_first_call_ms']:.0f} ms, not counted)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.intent")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--errors", action="store_true",
                        help="also list every misclassified prompt with its evidence")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"intent evaluation skipped: no transcript folder at {args.corpus}")
        return 0
    if not args.labels.is_file():
        print(f"intent evaluation skipped: no labels file at {args.labels}")
        return 0
    result = evaluate(args.corpus, args.labels)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    _print(result, args.corpus, args.labels)
    if args.errors:
        for e in result["errors"]:
            print(f"    {e['where']}: {e['label']} -> {e['predicted']} ({e['confidence']}) "
                  f"{e['text']!r} [{e['evidence']}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
