"""The `threadline` command.

The parser and the dispatch to the commands, which live by topic beside this module (serve,
importing, reads, jobs, installation). Heavy modules (gRPC, SQLAlchemy, the services) are
imported inside the commands that use them, so `threadline up` (the supervisor) stays small
and `--help` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from cli.importing import cmd_import
from cli.installation import cmd_config, cmd_health, cmd_token
from cli.jobs import cmd_eval_threading, cmd_reparse
from cli.reads import (
    cmd_analyze,
    cmd_errors,
    cmd_export,
    cmd_projects,
    cmd_sessions,
    cmd_threads,
    cmd_tools,
    cmd_usage,
)
from cli.search import cmd_search
from cli.serve import SERVICES, cmd_serve, cmd_up
from cli.show import cmd_show


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (what is wrong, and where the help is) rather
    than the whole usage: the usage of this many commands would bury the reason."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("threadline")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "not installed"


class VersionAction(argparse.Action):
    """`--version`, looked up only when asked for: package metadata is read from disk, and
    every service process the supervisor starts builds this parser."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None):  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        sys.stdout.write(f"threadline {version()}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="threadline", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def db_flag(p):
        p.add_argument("--db", help="SQLite database file or postgresql:// URL (default: "
                                    "THREADLINE_DB or the user data folder)")

    up = sub.add_parser("up", help="run all four services on this machine")
    up.add_argument("--root", action="append", type=Path,
                    help="transcript folder to watch (repeatable; default ~/.claude/projects)")
    db_flag(up)
    up.add_argument("--ws-port", type=int, help="WebSocket gateway port (default 8765)")
    up.add_argument("--grpc-port", type=int,
                    help="first gRPC port: store, analysis, ingest, stream (default 50051)")
    up.add_argument("--host", help="address the gRPC servers bind to")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run one service (what docker compose runs), or "
                                          "several in one process")
    serve.add_argument("services", nargs="+", choices=SERVICES, metavar="SERVICE",
                       help=f"one or more of: {', '.join(SERVICES)}")
    serve.add_argument("--host")
    serve.add_argument("--port", action="append",
                       help="gRPC port (default THREADLINE_PORT); with several services, "
                            "NAME=PORT for each")
    db_flag(serve)
    serve.add_argument("--root", action="append", type=Path)
    serve.add_argument("--store-addr")
    serve.add_argument("--analysis-addr")
    serve.add_argument("--ws-host")
    serve.add_argument("--ws-port", type=int)
    serve.add_argument("--no-follow", action="store_true",
                       help="ingest: read what exists, then stop following")
    serve.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    serve.add_argument("--tls-cert", type=Path,
                       help="TLS certificate (PEM): serve gRPC over TLS and the gateway as wss")
    serve.add_argument("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    serve.set_defaults(func=cmd_serve)

    imp = sub.add_parser("import", help="import files or folders, then exit with a summary")
    db_flag(imp)
    imp.add_argument("--json", action="store_true", help="one JSON object on the last line")
    imp.add_argument("--verbose", action="store_true", help="show the services' logs")
    imp.add_argument("--stall-seconds", type=float, default=300.0,
                     help="give up when nothing is committed for this long (default 300)")
    imp.add_argument("paths", nargs="+")
    imp.set_defaults(func=cmd_import)

    projects = sub.add_parser("projects", help="list projects: the working directories "
                                               "sessions ran in")
    db_flag(projects)
    projects.add_argument("--json", action="store_true")
    projects.set_defaults(func=cmd_projects)

    sessions = sub.add_parser(
        "sessions", help="list stored sessions, latest first",
        epilog="examples:\n  threadline sessions --project app --since 2026-03-01\n"
               "  threadline show $(threadline sessions --json | jq -r '.[0].session_id')",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    db_flag(sessions)
    sessions.add_argument("--project", help="only this project: its path, short name, an "
                                            "alias (see `threadline projects`) or any part "
                                            "of its path")
    sessions.add_argument("--since", metavar="YYYY-MM-DD", help="only sessions active on or "
                                                                "after this day (UTC)")
    sessions.add_argument("--until", metavar="YYYY-MM-DD", help="only sessions active on or "
                                                                "before this day (UTC)")
    sessions.add_argument("--json", action="store_true")
    sessions.set_defaults(func=cmd_sessions)

    export = sub.add_parser(
        "export", help="every stored record as JSON lines, or one session as Markdown or HTML",
        epilog="examples:\n  threadline export > all.jsonl\n"
               "  threadline export --format html --session 5e55 --output chat.html",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    db_flag(export)
    export.add_argument("--format", choices=["jsonl", "md", "html"], default="jsonl",
                        help="jsonl (every record, default), md or html (one session)")
    export.add_argument("--session", help="md and html: the session (an id or a unique "
                                          "prefix of it)")
    export.add_argument("--output", type=Path, help="write here (0600) instead of stdout")
    export.set_defaults(func=cmd_export)

    show = sub.add_parser(
        "show", help="a session as a conversation: prompts, answers, one line per tool call",
        epilog="examples:\n  threadline show 5e55\n  threadline show 5e55 --full | less -R",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("session", help="a session id, or a unique prefix of it")
    db_flag(show)
    show.add_argument("--full", action="store_true",
                      help="expand every tool call's input and result, thinking and summaries")
    show.add_argument("--thinking", action="store_true", help="show thinking blocks in full")
    show.set_defaults(func=cmd_show)

    usage = sub.add_parser("usage", help="tokens and cost per day, week, month, session, "
                                         "project or model")
    db_flag(usage)
    usage.add_argument("--by", default="day", metavar="GROUPING",
                       help="day (default), week (ISO, Monday to Sunday), month, session, "
                            "project or model")
    usage.add_argument("--since", help="first date, YYYY-MM-DD (inclusive)")
    usage.add_argument("--until", help="last date, YYYY-MM-DD (inclusive)")
    usage.add_argument("--timezone", help="IANA time zone of the dates (default: this "
                                          "machine's)")
    usage.add_argument("--agent", help="only claude, codex or gemini")
    usage.add_argument("--pricing", type=Path, help="JSON price table merged over the bundled "
                                                    "one (default THREADLINE_PRICING_FILE)")
    usage.add_argument("--json", action="store_true", help="a JSON list, one object a period")
    usage.set_defaults(func=cmd_usage)

    tools = sub.add_parser("tools", help="tool usage: errors, latency, retries, sequences, "
                                         "loops, edit churn, subagents, recommendations")
    db_flag(tools)
    tools.add_argument("--project", help="only this project: its path, short name or an "
                                         "alias")
    tools.add_argument("--session", help="only this session (its id or a unique prefix)")
    tools.add_argument("--since", help="first date, YYYY-MM-DD (inclusive)")
    tools.add_argument("--until", help="last date, YYYY-MM-DD (inclusive)")
    tools.add_argument("--timezone", help="IANA time zone of the dates and the hour/weekday "
                                          "patterns (default UTC)")
    tools.add_argument("--by", default="tool", choices=["tool", "session", "project"],
                       help="rows per tool (default), or per tool within each session or "
                            "project")
    tools.add_argument("--json", action="store_true", help="the whole report as one JSON "
                                                           "object")
    tools.set_defaults(func=cmd_tools)

    find = sub.add_parser(
        "search", help="full-text search of the stored messages, best match first",
        epilog="query: words (all must occur), \"a phrase\", prefix*, -excluded, and the "
               "filters project: session: role: tool: model: since: until: in:\n"
               "examples:\n  threadline search parser tail\n"
               "  threadline search 'parser \"last line\"'   (a phrase keeps its quotes)\n"
               "  threadline search 'pars* -test role:user since:2026-11-01'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    find.add_argument("query", nargs="*", help="the query; quote it whole when it starts "
                                               "with -excluded words")
    db_flag(find)
    find.add_argument("--limit", type=int, default=20, help="hits to show: 1 to 500 "
                                                            "(default 20)")
    find.add_argument("--json", action="store_true", help="one JSON object: hits, more, "
                                                          "recent_only, expression")
    find.add_argument("--rebuild", action="store_true",
                      help="index every stored message again (for a damaged index); takes "
                           "the writer's lock, so run it while the services are stopped")
    find.set_defaults(func=cmd_search)

    errors = sub.add_parser("errors", help="list the lines that could not become records")
    db_flag(errors)
    errors.add_argument("--json", action="store_true", help="a JSON list of objects")
    errors.add_argument("--reason", help="only this reason (e.g. invalid_json)")
    errors.add_argument("--path", help="only files whose path contains this text")
    errors.add_argument("--limit", type=int, default=1000,
                        help="show at most this many, in the order stored (default 1000; "
                             "0: all)")
    errors.set_defaults(func=cmd_errors)

    rep = sub.add_parser("reparse", help="parse every stored line again with this version's "
                                         "parser and update what is derived from it (run "
                                         "while the services are stopped)")
    db_flag(rep)
    rep.add_argument("--json", action="store_true", help="the report as one JSON object")
    rep.add_argument("--dry-run", action="store_true",
                     help="report what would change, change nothing")
    rep.add_argument("--wait", type=float, default=2.0,
                     help="seconds to wait for other users of the database to close it "
                          "before refusing (default 2)")
    rep.set_defaults(func=cmd_reparse)

    token = sub.add_parser("token", help="print this installation's token (created if "
                                         "missing), for clients in other languages")
    db_flag(token)
    token.set_defaults(func=cmd_token)

    health = sub.add_parser("health", help="check a service's gRPC health (exit 0 if serving)")
    health.add_argument("address", help="host:port")
    health.add_argument("--service", default="", help="service name (default: the server)")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=cmd_health)

    cfg = sub.add_parser("config", help="every setting's value in effect and where it came "
                                        "from (a flag, its environment variable, the default)")
    db_flag(cfg)
    cfg.add_argument("--root", action="append", type=Path, help="transcript folder")
    cfg.add_argument("--host")
    cfg.add_argument("--grpc-port", type=int)
    cfg.add_argument("--ws-host")
    cfg.add_argument("--ws-port", type=int)
    cfg.add_argument("--tls-cert", type=Path)
    cfg.add_argument("--tls-key", type=Path)
    cfg.add_argument("--json", action="store_true", help="a JSON list, one object a setting")
    cfg.set_defaults(func=cmd_config)

    threads = sub.add_parser("threads", help="a session's structure: segments, branches, "
                                              "subagents, compactions, the reply tree")
    threads.add_argument("session", help="a session id, or a unique prefix of it")
    db_flag(threads)
    threads.add_argument("--tree", action="store_true", help="also print the reply tree")
    threads.add_argument("--json", action="store_true")
    threads.set_defaults(func=cmd_threads)

    analyze = sub.add_parser("analyze", help="a session's analysis: intents, sentiment, "
                                             "segments, references, engagement")
    analyze.add_argument("session", help="a session id, or a unique prefix of it")
    db_flag(analyze)
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(func=cmd_analyze)

    ev = sub.add_parser("eval", help="measure threadline on your own transcripts")
    ev_sub = ev.add_subparsers(dest="evaluation", required=True)
    ev_threads = ev_sub.add_parser(
        "threading", help="remove Claude Code's parent links, import, and score the inferred "
                          "reply tree per folder")
    ev_threads.add_argument("paths", nargs="+", metavar="PATH",
                            help="transcript files or folders (read, never changed)")
    ev_threads.add_argument("--json", action="store_true")
    ev_threads.set_defaults(func=cmd_eval_threading)
    return parser


def main(argv: list[str] | None = None) -> int:
    from threadline.storage.errors import StoreError
    from threadline.tables import PrintableStream

    args = build_parser().parse_args(argv)
    # Session ids, paths, titles and text come from transcripts: their control characters are
    # escaped on the way out, on stdout and on stderr (messages name them too). JSON output
    # holds none (JSON escapes them); `export` writes JSON bytes to the underlying buffer.
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(stdout), PrintableStream(stderr)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone by now is noticed below
        return code
    except BrokenPipeError:
        # The reader stopped reading (`threadline sessions | head -1`): what it wanted was
        # written. Silent, as `cat` and `ls` are; exit as a process killed by SIGPIPE would.
        _discard_stdout(stdout)
        return 128 + 13
    except StoreError as exc:  # what a command did not say itself: no database, a foreign one
        print(f"threadline {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _discard_stdout(stdout) -> None:
    """Point stdout at /dev/null, so the interpreter's last flush on exit does not hit the
    closed pipe again and print a traceback of its own."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's StringIO): nothing to flush
        pass
