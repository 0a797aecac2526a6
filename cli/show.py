"""`threadline show SESSION` and `threadline export --format md|html --session SESSION`: one
stored session read as a person reads it (cli/conversation.py builds and renders it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import conversation
from cli.db import reading
from cli.options import settings


def _load(args: argparse.Namespace, command: str
          ) -> tuple[str, str, list[conversation.Entry]] | None:
    """(session id, title, entries) of the session `args.session` names, or None after
    saying in one line why there is none."""
    from threadline.storage import names
    from threadline.storage.errors import StoreError
    from threadline.storage.records import session_records
    from threadline.storage.sessions import list_sessions
    from threadline.storage.tools import tool_calls

    try:
        with reading(settings(args).db) as conn:
            session_id = names.resolve_session(conn, args.session)
            pairs = list(session_records(conn, session_id, 2**63 - 1))
            if not pairs:
                print(f"threadline {command}: no session {args.session!r} "
                      "(see `threadline sessions`)", file=sys.stderr)
                return None
            calls = tool_calls(conn, session_id)
            title = next((s["title"] for s in list_sessions(conn)
                          if s["session_id"] == session_id), "")
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None
    entries = conversation.build(pairs, calls)
    if not title:  # neither a summary line nor an analysed prompt: the first prompt shown
        first = next((e.text for e in entries if e.kind == "prompt" and e.depth == 0), "")
        title = " ".join(first.split())[:80]
    return session_id, title, entries


def cmd_show(args: argparse.Namespace) -> int:
    loaded = _load(args, "show")
    if loaded is None:
        return 2
    session_id, title, entries = loaded
    print(f"{title}\nsession {session_id}\n")
    print(conversation.as_text(entries, full=args.full, thinking=args.thinking), end="")
    return 0


def export_session(args: argparse.Namespace) -> int:
    """`export --format md|html --session ID [--output FILE]`."""
    if not args.session:
        print(f"threadline export: --format {args.format} needs --session ID",
              file=sys.stderr)
        return 2
    loaded = _load(args, "export")
    if loaded is None:
        return 2
    session_id, title, entries = loaded
    if args.format == "html":
        text = conversation.as_html(entries, title, session_id)
    else:
        text = conversation.as_markdown(entries, title, session_id)
    if args.output:
        out = Path(args.output)
        # The export holds transcript text: private to the user, like the database.
        out.touch(mode=0o600, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
