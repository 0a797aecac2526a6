"""The commands that read the database: sessions, projects, export, usage, tools, errors,
threads and analyze.

Each reads through the storage layer (or the analysis views built on it) on a read-only
connection from cli/db.py, then prints JSON or the text from cli/render.py. Whatever keeps a
read from happening (no database, an ambiguous project or session name, a bad date) is said
in one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli import render
from cli.db import reading
from cli.options import settings


def _read(command: str, args: argparse.Namespace, fn, *fn_args):
    """`fn(conn, *fn_args)` on the database, read-only; None after saying, in one line, why
    it could not (no database, an ambiguous project or session name...)."""
    from threadline.storage.errors import StoreError

    try:
        with reading(settings(args).db) as conn:
            return fn(conn, *fn_args)
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None


def cmd_sessions(args: argparse.Namespace) -> int:
    from threadline.storage.sessions import list_sessions
    from threadline.tables import render as table

    for flag in ("since", "until"):
        value = getattr(args, flag) or ""
        if value and not render.is_date(value):
            print(f"threadline sessions: --{flag} {value!r} is not a date (YYYY-MM-DD)",
                  file=sys.stderr)
            return 2
    sessions = _read("sessions", args, list_sessions, args.project or "", args.since or "",
                     args.until or "")
    if sessions is None:
        return 2
    if args.json:
        print(json.dumps(sessions, default=str))
        return 0
    short = render.short_ids([s["session_id"] for s in sessions])
    print(table(["SESSION", "PROJECT", "STARTED", "DURATION", "MESSAGES", "TITLE"],
                [[short[s["session_id"]], s["project_name"],
                  render.when(s["first_timestamp"] or ""),
                  render.duration(s["duration_seconds"]), s["message_count"], s["title"]]
                 for s in sessions], right=[3, 4], max_width=60))
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    from threadline.storage.sessions import list_projects
    from threadline.tables import render as table

    projects = _read("projects", args, list_projects)
    if projects is None:
        return 2
    if args.json:
        print(json.dumps(projects, default=str))
        return 0
    print(table(["PROJECT", "PATH", "SESSIONS", "MESSAGES", "LAST", "ALIASES"],
                [[p["name"], p["key"], p["session_count"], p["message_count"],
                  render.when(p["last_timestamp"] or ""), ", ".join(p["aliases"])]
                 for p in projects], right=[2, 3], max_width=70))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format != "jsonl":
        from cli.show import export_session

        return export_session(args)
    import orjson

    from threadline.storage.messages import iter_export

    out = sys.stdout.buffer
    with reading(settings(args).db) as conn:
        for record in iter_export(conn):
            out.write(orjson.dumps(record, default=str) + b"\n")
    out.flush()
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from threadline.storage import accounting
    from threadline.storage.errors import StoreError
    from threadline.storage.usage import usage

    resolved = settings(args, pricing_file=args.pricing)
    try:
        query = accounting.usage_query(args.by, args.since or "", args.until or "",
                                       args.timezone or "", args.agent or "")
        with reading(resolved.db) as conn:
            found = usage(conn, query, resolved.pricing_file)
    except StoreError as exc:
        print(f"threadline usage: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found.rows))
        return 0
    print(render.usage_text(found, query))
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    import dataclasses

    from services.analysis import views
    from threadline.storage.errors import StoreError

    resolved = settings(args)
    try:
        with reading(resolved.db) as conn:
            report = views.tool_report(conn, args.project or "", args.session or "",
                                       args.since or "", args.until or "",
                                       args.timezone or "", args.by, resolved.pricing_file)
    except (StoreError, ValueError) as exc:
        print(f"threadline tools: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
        return 0
    print(render.tools_text(report))
    return 0


def error_record(row: dict) -> dict:
    """A stored parse error as JSON-ready values; the excerpt is text, bytes that are not
    UTF-8 escaped (backslashreplace)."""
    return {"path": row["path"], "line_number": row["line_number"],
            "byte_offset": row["byte_offset"], "byte_length": row["byte_length"],
            "reason": row["reason"], "detail": row["detail"],
            "excerpt": row["excerpt"].decode("utf-8", "backslashreplace"),
            "project_key": row["project_key"]}


def cmd_errors(args: argparse.Namespace) -> int:
    from threadline.storage.errors import StoreError
    from threadline.storage.parse_errors import parse_error_counts, parse_errors

    if args.limit < 0:
        print("threadline errors: --limit must be >= 0", file=sys.stderr)
        return 2
    try:
        with reading(settings(args).db) as conn:
            found = parse_errors(conn, args.limit or None, args.reason or "",
                                         args.path or "")
            counts = parse_error_counts(conn, args.reason or "", args.path or "")
    except StoreError as exc:
        print(f"threadline errors: {exc}", file=sys.stderr)
        return 1
    records = [error_record(e) for e in found]
    if args.json:
        print(json.dumps(records))
        return 0
    print(render.errors_text(records, counts))
    return 0


def _session_view(args: argparse.Namespace, command: str, fn_name: str,
                  *extra: object) -> dict | None:
    """Run services.analysis.views.<fn_name> on the database; prints why when it cannot
    (no database, an ambiguous or too short session id prefix, no such session)."""
    from services.analysis import views
    from threadline.storage.errors import StoreError

    try:
        with reading(settings(args).db) as conn:
            found = getattr(views, fn_name)(conn, args.session, *extra)
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None
    if found is None:
        print(f"threadline {command}: no session {args.session!r} (see `threadline sessions`)",
              file=sys.stderr)
    return found


def cmd_threads(args: argparse.Namespace) -> int:
    found = _session_view(args, "threads", "threads", settings(args).pricing_file)
    if found is None:
        return 2
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(render.threads_text(found, args.tree))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    found = _session_view(args, "analyze", "analysis")
    if found is None:
        return 2
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(render.analysis_text(found))
    return 0
