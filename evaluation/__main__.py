"""`make eval`: figures on the real transcripts in ../shared/corpus (or --corpus PATH).

1. Import: files, lines, records, sessions and parse errors, through the real pipeline.
2. Census: records by format and type, format drift by format/version/reason, parse errors
   by reason (what the parser did not understand is counted, never dropped); then tokens per
   day (UTC) beside an independent recount read straight from the files
   (evaluation/recount.py, the billing rule of docs/accounting.md): every day must match.
3. Reply-structure inference: parent links removed from real Claude Code transcripts, the
   copies imported through the pipeline and the stored thread parents compared per source
   folder, a root counting as correct when both sides are empty (`threadline eval
   threading`, cli/thread_eval.py); then the same files threaded directly beside two
   baselines, and the leave-one-folder-out check of the rules (evaluation/threading.py).
4. Token accounting beside ccusage 20.0.24 (evaluation/ccusage.py): days and sessions that
   match exactly, and every difference with its cause. Needs npm to install ccusage once
   (into .tools/ccusage), not when it is there.
5. Intent classification against hand labels (evaluation/intent.py,
   evaluation/data/intent_labels.csv): per-class precision, recall and F1, accuracy,
   macro-F1, a confusion matrix and the time analyse_prompt takes per prompt.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from evaluation import ccusage, recount
from evaluation.corpus import DEFAULT_CORPUS, import_folder
from threadline.storage import stats
from threadline.storage.readonly import open_readonly


def _table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns]
    print("    " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("    " + "  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(prog="make eval")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"make eval: no transcript folder at {args.corpus} (pass --corpus PATH)")
        return 2

    with tempfile.TemporaryDirectory(prefix="threadline-eval-") as tmp:
        db = Path(tmp) / "eval.db"
        summary = import_folder(args.corpus, db)
        print(f"corpus {args.corpus}")
        print("  import: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                                       for k, v in summary.items()))
        with open_readonly(db).connect() as conn:
            census = stats.census(conn)
        print("  records by format and type:")
        _table(census["records"], ["format", "type", "count"])
        drifted = sum(r["count"] for r in census["drift"])
        print(f"  format drift (records stored but not fully understood): {drifted:,}")
        _table(census["drift"], ["format", "version", "drift", "count"])
        print("  parse errors by reason:")
        _table(census["parse_errors"], ["reason", "count"])
        independent = recount.count(args.corpus)
        days = recount.compare(recount.threadline_days(db), independent.days)
        recount.print_comparison(days, independent)
        counted = 0 if all(d["match"] for d in days) else 1
    print(flush=True)
    imported = subprocess.run([sys.executable, "-m", "cli", "eval", "threading",
                               str(args.corpus)], check=False).returncode
    print(flush=True)
    inferred = subprocess.run([sys.executable, "-m", "evaluation.threading", "--corpus",
                                str(args.corpus)], check=False).returncode or imported
    print(flush=True)
    installed = ccusage.TOOLS / "node_modules" / ".bin" / "ccusage"
    compared = 0
    if not installed.exists() and shutil.which("npm") is None:
        print(f"ccusage comparison skipped: npm is not installed (needed once to install "
              f"ccusage into {ccusage.TOOLS})")
    else:
        compared = subprocess.run([sys.executable, "-m", "evaluation.ccusage", "--corpus",
                                   str(args.corpus)], check=False).returncode
    print(flush=True)
    classified = subprocess.run([sys.executable, "-m", "evaluation.intent", "--corpus",
                                 str(args.corpus)], check=False).returncode
    return counted or inferred or compared or classified


if __name__ == "__main__":
    raise SystemExit(main())
