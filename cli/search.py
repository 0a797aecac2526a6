"""`threadline search`: full-text search of the stored messages, and rebuilding its index.

The query language is the storage layer's (threadline/storage/search_query.py). Hits print as
a table, the matched words of each snippet in [brackets]: the terminal output escapes control
characters (threadline/tables.py), so the marks are plain characters rather than colours.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli.db import reading, writing
from cli.options import settings
from cli.render import when

SNIPPET_CHARS = 160


def marked(snippet: list[tuple[str, bool]]) -> str:
    """A snippet on one line, its highlighted stretches in brackets."""
    return " ".join("".join(f"[{part}]" if lit else part for part, lit in snippet).split())


def hit_dict(hit) -> dict:
    return {"sequence": hit.seq, "key": hit.key, "uuid": hit.uuid,
            "session_id": hit.session_id, "project_key": hit.project_key,
            "timestamp": hit.timestamp, "role": hit.role, "type": hit.type,
            "model": hit.model, "ordinal": hit.ordinal, "score": hit.score,
            "columns": list(hit.columns),
            "snippet": [{"text": text, "highlighted": lit} for text, lit in hit.snippet]}


def cmd_search(args: argparse.Namespace) -> int:
    from threadline.storage import search
    from threadline.storage.errors import StoreError
    from threadline.tables import render as table

    db = settings(args).db
    try:
        if args.rebuild:
            with writing(db, "threadline search --rebuild") as conn:
                indexed = search.rebuild(conn)
            print(f"search index rebuilt: {indexed:,} messages indexed")
            return 0
        if not args.query:
            print("threadline search: give a query (see `threadline search --help`), or "
                  "--rebuild", file=sys.stderr)
            return 2
        with reading(db) as conn:
            found = search.search(conn, " ".join(args.query), args.limit)
    except StoreError as exc:
        print(f"threadline search: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"hits": [hit_dict(h) for h in found.hits], "more": found.more,
                          "recent_only": found.recent_only,
                          "expression": found.expression}))
        return 0
    if not found.hits:
        print("no messages match")
        return 0
    print(table(["TIME", "SESSION", "ROLE", "WHERE", "SNIPPET"],
                [[when(h.timestamp), h.session_id[:8], h.role, ",".join(h.columns),
                  marked(h.snippet)] for h in found.hits], max_width=SNIPPET_CHARS))
    if found.more:
        note = (f"more messages match: showing the best {len(found.hits)}"
                + (" of the most recent ones" if found.recent_only else "")
                + " (--limit shows more)")
        print(note)
    return 0
