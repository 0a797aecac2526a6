"""Offline jobs: `threadline reparse` (stored lines parsed again with this version's parser,
cli/reparse.py) and `threadline eval threading` (the reply tree inferred from your own
transcripts, scored, cli/thread_eval.py)."""

from __future__ import annotations

import argparse
import json
import sys

from cli import render
from cli.db import refuse_foreign
from cli.options import existing_paths, settings


def cmd_reparse(args: argparse.Namespace) -> int:
    from cli.reparse import reparse
    from services.ingest import parser
    from services.ingest.server import load_redactor
    from threadline.redaction import PatternError
    from threadline.storage.errors import StoreError

    resolved = settings(args)
    try:
        refuse_foreign(resolved.db)
        parser.use_redactor(load_redactor(resolved))  # reparsed text is redacted as ingested
        report = reparse(resolved.db, dry_run=args.dry_run, wait_seconds=args.wait)
    except (StoreError, OSError, PatternError) as exc:
        print(f"threadline reparse: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    print(render.reparse_text(report))
    return 0


def cmd_eval_threading(args: argparse.Namespace) -> int:
    from cli import thread_eval

    paths = existing_paths(args.paths, "eval")
    if paths is None:
        return 2
    scores = thread_eval.evaluate(paths)
    if args.json:
        print(json.dumps(thread_eval.as_json(scores), indent=2))
    else:
        print("reply-tree inference: parent links removed, imported, thread parents compared")
        print(thread_eval.table(scores))
    return 0

