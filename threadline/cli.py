"""The `threadline` command.

Heavy modules (gRPC, SQLAlchemy, the services) are imported inside the subcommands that use
them, so `threadline up` (the supervisor) stays small and `--help` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from threadline import config

SERVICES = ("ingest", "analysis", "store", "stream")


def _settings(args: argparse.Namespace, **extra: object) -> config.Settings:
    """Flags that were given override the environment, which overrides defaults."""
    values = {
        "db": getattr(args, "db", None),
        "roots": getattr(args, "root", None) or None,
        "host": getattr(args, "host", None),
        "grpc_port": getattr(args, "grpc_port", None),
        "ws_host": getattr(args, "ws_host", None),
        "ws_port": getattr(args, "ws_port", None),
        "store_addr": getattr(args, "store_addr", None),
        "analysis_addr": getattr(args, "analysis_addr", None),
        "ready_file": getattr(args, "ready_file", None),
        "follow": False if getattr(args, "no_follow", False) else None,
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "tls_ca": getattr(args, "tls_ca", None),
    }
    values.update(extra)
    return config.resolve(values)


# --- serve ---------------------------------------------------------------------------------

def _ports(values: list[str] | None, services: list[str]) -> dict[str, int | None]:
    """`--port N` (one service) or `--port NAME=N` (repeatable, several services)."""
    ports: dict[str, int | None] = dict.fromkeys(services)
    for value in values or []:
        name, _, number = value.rpartition("=")
        if not name:
            if len(services) != 1:
                raise SystemExit("threadline serve: give --port NAME=N for each service")
            name = services[0]
        if name not in ports:
            raise SystemExit(f"threadline serve: --port names {name!r}, which is not served")
        ports[name] = int(number)
    return ports


async def _serve(services: list[str], settings: config.Settings,
                 ports: dict[str, int | None]) -> None:
    import importlib

    from threadline import bootstrap

    async def start():
        running = []
        ready: dict = {"ports": {}}
        try:
            for name in services:
                module = importlib.import_module(f"services.{name}.server")
                port = ports[name]
                service = await module.start(settings if port is None
                                             else settings.replace(port=port))
                running.append(service)
                ready["ports"][name] = service.port
                where = f"gRPC on {settings.host}:{service.port}"
                if hasattr(service, "ws_port"):
                    ready["ws_port"] = service.ws_port
                    scheme = "wss" if settings.tls_cert else "ws"
                    where += f", WebSocket on {scheme}://{settings.ws_host}:{service.ws_port}/ws"
                print(f"threadline {name}: serving {where}", file=sys.stderr, flush=True)
        except BaseException:
            for service in reversed(running):
                await service.stop()
            raise
        if settings.ready_file is not None:
            tmp = settings.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(ready))
            tmp.replace(settings.ready_file)

        async def stop():
            for service in reversed(running):
                await service.stop()
        return stop

    await bootstrap.run_until_stopped(start)


def _exposure_refused(settings: config.Settings, gateway: bool) -> str | None:
    """Why the services may not listen where they are told to (checked before anything
    starts; each server checks again as it binds), or None."""
    from threadline import auth

    try:
        security = auth.for_server(settings)
        security.check_exposure(settings.host, "gRPC server")
        if gateway:
            security.check_exposure(settings.ws_host, "WebSocket gateway")
    except (OSError, auth.RefusedToStart) as exc:
        return str(exc)
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from threadline import telemetry
    from threadline.auth import RefusedToStart
    from threadline.dblock import DatabaseLocked

    services = list(dict.fromkeys(args.services))
    ports = _ports(args.port, services)
    settings = _settings(args)
    if (reason := _exposure_refused(settings, "stream" in services)) is not None:
        print(f"threadline serve {' '.join(services)}: {reason}", file=sys.stderr)
        return 1
    telemetry.setup_logging(settings.log_level)
    telemetry.setup_tracing("threadline-" + "-".join(services))
    from threadline.redaction import PatternError

    try:
        asyncio.run(_serve(services, settings, ports))
    except (OSError, DatabaseLocked, RefusedToStart, PatternError) as exc:  # a port or
        # database in use, an exposed port without TLS, a bad redaction pattern...
        print(f"threadline serve {' '.join(services)}: {exc}", file=sys.stderr)
        return 1
    return 0


def _redaction_ok(settings: config.Settings, command: str) -> bool:
    """Whether the `redact_patterns` file loads; its error is said here in one line, before
    services that would fail on it start (their own output may be silenced)."""
    from services.ingest.server import load_redactor
    from threadline.redaction import PatternError

    try:
        load_redactor(settings)
    except (OSError, PatternError) as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return False
    return True


# --- up --------------------------------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    from threadline.storage import files
    from threadline.supervisor import Interrupted, StopSignals, Supervisor

    signals = StopSignals()  # first: a signal at any later instant stops cleanly
    supervisor = None
    try:
        settings = _settings(args)
        # Said here once, rather than by each child as it fails to start.
        if (reason := _exposure_refused(settings, gateway=True)) is not None:
            print(f"threadline up: {reason}", file=sys.stderr)
            return 1
        if not _redaction_ok(settings, "up"):
            return 2
        files.private_directory(config.data_folder(settings.db))
        supervisor = Supervisor(settings, command="threadline up", signals=signals)
        return _up(settings, supervisor)
    except Interrupted:
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()


def _up(settings: config.Settings, supervisor) -> int:
    from threadline.dblock import DatabaseLocked

    try:
        supervisor.start()
    except DatabaseLocked as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"threadline up: {exc} (is another instance using ports "
              f"{settings.grpc_port}-{settings.grpc_port + 3} or {settings.ws_port}? "
              "see --grpc-port and --ws-port)", file=sys.stderr)
        return 1
    roots = ", ".join(str(r) for r in settings.roots)
    processes = ", ".join(f"{c.name} (pid {c.process.pid})" for c in supervisor.children.values())
    print(f"""threadline is running (Ctrl-C to stop)
  database:    {settings.db}
  watching:    {roots}
  WebSocket:   {"wss" if settings.tls_cert else "ws"}://{settings.ws_host}:{supervisor.ports['ws']}/ws
  gRPC store:  {supervisor.address('store')}   (queries, Changes)
  gRPC stream: {supervisor.address('stream')}   (Subscribe)
  gRPC ingest: {supervisor.address('ingest')}   analysis: {supervisor.address('analysis')}
  processes:   {processes}""",
          flush=True)
    supervisor.run_forever()
    return 0


# --- import ----------------------------------------------------------------------------------

def _ingest_status(address: str, security):
    from threadline import access
    from threadline.v1 import ingest_pb2, ingest_pb2_grpc

    with access.sync_channel(address, security) as channel:
        return ingest_pb2_grpc.IngestServiceStub(channel).GetStatus(
            ingest_pb2.GetIngestStatusRequest(), timeout=10)


def _store_write_error(address: str) -> str:
    """Why the store cannot write right now ("database or disk is full at ..."), or ""."""
    import grpc

    from threadline.v1 import store_pb2, store_pb2_grpc

    try:
        with grpc.insecure_channel(address) as channel:
            return store_pb2_grpc.StoreServiceStub(channel).GetStats(
                store_pb2.GetStatsRequest(), timeout=10).write_error
    except grpc.RpcError:
        return ""  # the store is restarting: nothing to say about its writes yet


def _existing_paths(given: list[str], command: str) -> list[Path] | None:
    """The paths given, resolved; None (after saying which) if any does not exist."""
    paths = [Path(p).expanduser().resolve() for p in given]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"threadline {command}: no such file or folder: {', '.join(missing)}",
              file=sys.stderr)
        return None
    return paths


def cmd_import(args: argparse.Namespace) -> int:
    from threadline.supervisor import Interrupted, StopSignals

    signals = StopSignals()  # first: a signal at any later instant stops cleanly
    try:
        return _import(args, signals)
    except Interrupted as stop:
        print(f"threadline import: stopped by {stop}; what was stored is kept, and the same "
              "import run again finishes the job", file=sys.stderr)
        return 128 + stop.signum


def _import(args: argparse.Namespace, signals) -> int:
    import grpc

    from threadline import auth
    from threadline.dblock import DatabaseLocked
    from threadline.storage import files
    from threadline.supervisor import Supervisor

    paths = _existing_paths(args.paths, "import")
    if paths is None:
        return 2
    settings = _settings(args, roots=paths, grpc_port=0, follow=False)
    if not _redaction_ok(settings, "import"):
        return 2
    security = auth.for_server(settings)  # first: it creates the data folder 0700
    files.private_directory(config.data_folder(settings.db))
    started = time.monotonic()
    supervisor = Supervisor(settings, services=("store", "analysis", "ingest"), follow=False,
                            quiet=not args.verbose, command="threadline import",
                            signals=signals)
    progress = None
    try:
        try:
            supervisor.start()
        except DatabaseLocked as exc:
            print(f"threadline: {exc}", file=sys.stderr)
            return 1
        except RuntimeError as exc:  # a service that could not start
            print(f"threadline import: {exc}", file=sys.stderr)
            return 1
        if sys.stderr.isatty() and not args.json:
            from tqdm import tqdm

            progress = tqdm(total=0, unit="B", unit_scale=True, desc="importing", leave=False)
        last_progress, moved_at = -1, time.monotonic()
        write_error, asked_at = "", 0.0
        while True:
            supervisor.check()  # a service that died is restarted and resumes
            try:
                status = _ingest_status(supervisor.address("ingest"), security)
            except grpc.RpcError:
                status = None  # ingest is restarting
            if status is not None:
                if status.idle:
                    break
                durable = sum(f.durable_offset for f in status.files)
                if progress is not None:
                    progress.total = sum(f.size for f in status.files)
                    progress.n = durable
                    progress.refresh()
                if durable != last_progress:
                    last_progress, moved_at = durable, time.monotonic()
            now = time.monotonic()
            # Stalled: ask the store why, once a second. A full disk is said once, in one line,
            # and waited out: the batches are kept and written as soon as there is space.
            if now - moved_at > 1.0 and now - asked_at > 1.0:
                asked_at = now
                error = _store_write_error(supervisor.address("store"))
                if error and error != write_error:
                    print(f"threadline import: {error}; waiting (the import resumes by itself "
                          "once the store can write)", file=sys.stderr, flush=True)
                elif write_error and not error:
                    print("threadline import: the store writes again; resuming",
                          file=sys.stderr, flush=True)
                write_error = error
            if now - moved_at > args.stall_seconds:
                reason = f" ({write_error})" if write_error else ""
                print(f"threadline import: nothing committed for {args.stall_seconds:.0f} s"
                      f"{reason}; giving up (rerun with --verbose to see the services' logs)",
                      file=sys.stderr)
                return 1
            time.sleep(0.1)
        if settings.analyse and not _wait_for_analysis(supervisor, settings.db,
                                                       args.stall_seconds):
            print(f"threadline import: analysis made no progress for {args.stall_seconds:.0f} "
                  "s; the records are stored, their analysis resumes on the next start",
                  file=sys.stderr)
            return 1
    finally:
        if progress is not None:
            progress.close()
        supervisor.stop()
    summary = import_summary(settings.db, status, time.monotonic() - started)
    if args.json:
        print(json.dumps(summary))
    else:
        print("imported " + ", ".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def _wait_for_analysis(supervisor, db: Path, stall_seconds: float) -> bool:
    """Wait until the analysis follower has analysed every stored message (it trails the
    import); False when it stops making progress."""
    from threadline.storage import analysis_reads, queries

    engine = queries.open_readonly(db)
    try:
        last, moved_at = -1, time.monotonic()
        while True:
            supervisor.check()
            with engine.connect() as conn:
                backlog = analysis_reads.analysis_backlog(conn)
            if not backlog:
                return True
            if backlog != last:
                last, moved_at = backlog, time.monotonic()
            elif time.monotonic() - moved_at > stall_seconds:
                return False
            time.sleep(0.1)
    finally:
        engine.dispose()


def import_summary(db: Path, status, seconds: float) -> dict:
    from threadline.storage import queries

    files = [f.source.path for f in status.files]
    with queries.open_readonly(db).connect() as conn:
        counts = queries.source_summary(conn, files)
    return {"files": len(files), **counts, "seconds": round(seconds, 3)}


# --- read commands ---------------------------------------------------------------------------

def _read(command: str, args: argparse.Namespace, fn, *fn_args):
    """`fn(conn, *fn_args)` on the database, read-only; None after saying, in one line, why
    it could not (no database, an ambiguous project or session name...)."""
    from threadline.storage import queries
    from threadline.storage.errors import StoreError

    try:
        engine = queries.open_readonly(_settings(args).db)
        try:
            with engine.connect() as conn:
                return fn(conn, *fn_args)
        finally:
            engine.dispose()
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None


def cmd_sessions(args: argparse.Namespace) -> int:
    from threadline.storage import queries
    from threadline.tables import render

    sessions = _read("sessions", args, queries.list_sessions, args.project or "")
    if sessions is None:
        return 2
    if args.json:
        print(json.dumps(sessions, default=str))
        return 0
    print(render(["SESSION", "PROJECT", "MESSAGES", "FIRST", "LAST", "TITLE"],
                 [[s["session_id"], s["project_name"], s["message_count"],
                   _when(s["first_timestamp"] or ""), _when(s["last_timestamp"] or ""),
                   s["title"]] for s in sessions], right=[2], max_width=60))
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    from threadline.storage import queries
    from threadline.tables import render

    projects = _read("projects", args, queries.list_projects)
    if projects is None:
        return 2
    if args.json:
        print(json.dumps(projects, default=str))
        return 0
    print(render(["PROJECT", "PATH", "SESSIONS", "MESSAGES", "LAST", "ALIASES"],
                 [[p["name"], p["key"], p["session_count"], p["message_count"],
                   _when(p["last_timestamp"] or ""), ", ".join(p["aliases"])]
                  for p in projects], right=[2, 3], max_width=70))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import orjson

    from threadline.storage import queries

    out = sys.stdout.buffer
    with queries.open_readonly(_settings(args).db).connect() as conn:
        for record in queries.iter_export(conn):
            out.write(orjson.dumps(record, default=str) + b"\n")
    out.flush()
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from threadline.storage import accounting, queries
    from threadline.storage.errors import StoreError

    settings = _settings(args, pricing_file=args.pricing)
    try:
        query = accounting.usage_query(args.by, args.since or "", args.until or "",
                                       args.timezone or "", args.agent or "")
        engine = queries.open_readonly(settings.db)
        try:
            with engine.connect() as conn:
                found = accounting.usage(conn, query, settings.pricing_file)
        finally:
            engine.dispose()
    except StoreError as exc:
        print(f"threadline usage: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found.rows))
        return 0
    print(usage_table(found.rows, found.total, query.by))
    zone = query.tz_name or f"local time ({time.strftime('%Z')})"
    print(f"dates in {zone}; prices: {found.pricing_date} table")
    total = found.total
    if total["unpriced_messages"]:
        print(f"* {total['unpriced_messages']} responses of models without a price are not in "
              f"the cost: {', '.join(total['unpriced_models'])} (add them with --pricing FILE)")
    return 0


def usage_table(rows: list[dict], total: dict, by: str) -> str:
    """Report rows as aligned columns, with a total line."""
    head = ["SESSION" if by == "session" else by.upper(), "MODELS", "INPUT", "OUTPUT",
            "CACHE WRITE", "CACHE READ", "TOTAL TOKENS", "COST (USD)", "MESSAGES"]

    def cells(r: dict) -> list[str]:
        models = ", ".join(r["models"])
        cost = f"{r['cost_usd']:,.2f}" + ("*" if r["unpriced_messages"] else "")
        return [r["period"], models if len(models) <= 40 else models[:39] + "…",
                *(f"{r[k]:,}" for k in ("input_tokens", "output_tokens",
                                         "cache_creation_tokens", "cache_read_tokens",
                                         "total_tokens")),
                cost, f"{r['messages']:,}"]

    body = [cells(r) for r in rows] + [cells(total)]
    if by == "model":  # the period is the model
        head, body = head[:1] + head[2:], [line[:1] + line[2:] for line in body]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < len(head) - 7 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), *(fmt(line) for line in body[:-1]), rule, fmt(body[-1])])


def cmd_tools(args: argparse.Namespace) -> int:
    import dataclasses

    from services.analysis import views
    from threadline.storage import queries
    from threadline.storage.errors import StoreError

    settings = _settings(args)
    try:
        engine = queries.open_readonly(settings.db)
        try:
            with engine.connect() as conn:
                report = views.tool_report(conn, args.project or "", args.session or "",
                                           args.since or "", args.until or "",
                                           args.timezone or "", args.by,
                                           settings.pricing_file)
        finally:
            engine.dispose()
    except (StoreError, ValueError) as exc:
        print(f"threadline tools: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
        return 0
    print(tools_text(report))
    return 0


def tools_text(report) -> str:
    """A tool-usage report (services/analysis/tool_report.py) as tables, then its
    recommendations with their evidence."""
    from services.analysis.tool_report import percent
    from threadline.tables import render

    def seconds(ms: float, timed: int) -> str:
        return f"{ms / 1000:.1f}" if timed else ""

    grouped = report.by != "tool"
    head = [*(["SESSION" if report.by == "session" else "PROJECT"] if grouped else []),
            "TOOL", "CALLS", "ERRORS", "REJECTED", "INTERRUPTED", "FAILED", "FAIL%", "P50 S",
            "P95 S", "RETRIES", "SWITCHES", "REACTIONS", "SENTIMENT", "ERROR CLASSES"]

    # FAILED and FAIL% are the figures the failing_tool recommendation quotes: errors less
    # the rejections and interruptions, which are a person's decision.
    def cells(r) -> list:
        classes = ", ".join(f"{c} {n}" for c, n in r.error_classes.items())
        return [*([r.group] if grouped else []), r.tool, r.calls, r.errors, r.rejections,
                r.interruptions, r.failures, percent(r.failures, r.calls),
                seconds(r.latency_p50_ms, r.timed_calls), seconds(r.latency_p95_ms, r.timed_calls),
                r.retries, r.switches, r.reactions,
                f"{r.reaction_sentiment_mean:+.2f}" if r.reactions else "", classes]

    first = 1 if grouped else 0
    out = [f"{report.total.calls:,} tool calls in {report.total.sessions:,} sessions; "
           f"times in {report.timezone}", "",
           render(head, [cells(r) for r in report.rows] + [cells(report.total)],
                  right=range(first + 1, first + 13), max_width=70)]
    if report.sequences:
        out += ["", "frequent sequences (consecutive calls)",
                render(["TOOLS", "SUPPORT", "CONFIDENCE"],
                       [[" > ".join(q.tools), q.support, f"{q.confidence:.2f}"]
                        for q in report.sequences[:15]], right=[1, 2])]
    if report.switches:
        out += ["", "after a failure: the next call used another tool",
                render(["FROM", "TO", "COUNT", "NEXT SUCCEEDED"],
                       [[s.from_tool, s.to_tool, s.count, f"{100 * s.success_rate:.0f}%"]
                        for s in report.switches[:15]], right=[2, 3])]
    if report.loops:
        out += ["", "loops (identical calls repeated without progress)",
                render(["SESSION", "TOOL", "REPEATS", "FIRST", "INPUT"],
                       [[lp.session_id, lp.tool, lp.repeats, lp.first_timestamp,
                         lp.input_excerpt] for lp in report.loops[:15]], right=[2])]
    if report.churn:
        out += ["", "edit churn (most edited files)",
                render(["PATH", "EDITS", "SESSIONS", "FAILED"],
                       [[c.path, c.edits, c.sessions, c.failed_edits] for c in report.churn],
                       right=[1, 2, 3], max_width=90)]
    if report.subagents:
        costly = sorted(report.subagents, key=lambda a: -a.cost_usd)[:10]
        out += ["", f"subagents ({len(report.subagents)}; the most expensive)",
                render(["TOOL CALL", "AGENT", "SESSION", "MSGS", "SECONDS", "TOKENS", "COST"],
                       [[a.tool_use_id, a.agent_id, a.session_id, a.messages,
                         f"{a.duration_seconds:.1f}", f"{a.tokens:,}", f"{a.cost_usd:.2f}"]
                        for a in costly], right=[3, 4, 5, 6])]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for title, buckets, names in (("hour", report.by_hour, [f"{b.slot:02d}" for b in
                                                              report.by_hour]),
                                  ("weekday", report.by_weekday, days)):
        out += ["", f"calls and errors by {title} ({report.timezone})",
                render([title.upper(), *names],
                       [["calls", *(b.calls for b in buckets)],
                        ["errors", *(b.errors for b in buckets)]],
                       right=range(1, len(names) + 1))]
    out += ["", "recommendations" if report.recommendations
            else "recommendations: none (not enough evidence for any rule)"]
    for r in report.recommendations:
        out.append(f"[{r.strength:.2f}] {r.kind}{f' ({r.tool})' if r.tool else ''}: {r.text}")
        out += [f"    - {e}" for e in r.evidence]
    return "\n".join(out)


def error_record(row: dict) -> dict:
    """A stored parse error as JSON-ready values; the excerpt is text, bytes that are not
    UTF-8 escaped (backslashreplace)."""
    return {"path": row["path"], "line_number": row["line_number"],
            "byte_offset": row["byte_offset"], "byte_length": row["byte_length"],
            "reason": row["reason"], "detail": row["detail"],
            "excerpt": row["excerpt"].decode("utf-8", "backslashreplace"),
            "project_key": row["project_key"]}


def _one_line(text: str, width: int) -> str:
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:width])
    return shown[:width] + ("..." if len(shown) > width or len(text) > width else "")


def cmd_errors(args: argparse.Namespace) -> int:
    from threadline.storage import queries
    from threadline.storage.errors import DatabaseMissing

    if args.limit < 0:
        print("threadline errors: --limit must be >= 0", file=sys.stderr)
        return 2
    try:
        engine = queries.open_readonly(_settings(args).db)
    except DatabaseMissing as exc:
        print(f"threadline errors: {exc}", file=sys.stderr)
        return 1
    with engine.connect() as conn:
        found = queries.parse_errors(conn, args.limit or None, args.reason or "",
                                     args.path or "")
        counts = queries.parse_error_counts(conn, args.reason or "", args.path or "")
    engine.dispose()
    records = [error_record(e) for e in found]
    if args.json:
        print(json.dumps(records))
        return 0
    if records:
        print(f"{'LOCATION':50} {'OFFSET':>10}  {'REASON':16} EXCERPT")
    for e in records:
        if e["byte_offset"] < 0:  # a file or folder not read at all: say why instead
            print(f"{e['path']:50} {'-':>10}  {e['reason']:16} {_one_line(e['detail'], 60)}")
            continue
        where = f"{e['path']}:{e['line_number']}"
        print(f"{where:50} {e['byte_offset']:>10}  {e['reason']:16} "
              f"{_one_line(e['excerpt'], 60)}")
    total = sum(counts.values())
    by_reason = ", ".join(f"{reason} {n}" for reason, n in counts.items())
    shown = f" ({len(records)} shown)" if len(records) < total else ""
    print(f"{total} parse error{'' if total == 1 else 's'}{shown}"
          + (f": {by_reason}" if by_reason else ""))
    return 0


def cmd_reparse(args: argparse.Namespace) -> int:
    from services.ingest import parser
    from services.ingest.server import load_redactor
    from services.store.reparse import reparse
    from threadline.redaction import PatternError
    from threadline.storage.errors import StoreError

    settings = _settings(args)
    try:
        parser.use_redactor(load_redactor(settings))  # reparsed text is redacted as ingested
        report = reparse(settings.db, dry_run=args.dry_run, wait_seconds=args.wait)
    except (StoreError, OSError, PatternError) as exc:
        print(f"threadline reparse: {exc}", file=sys.stderr)
        return 1
    summary = report.as_dict()
    if args.json:
        print(json.dumps(summary))
        return 0
    columns = ", ".join(f"{c} {n}" for c, n in summary["columns"].items())
    verb = "would change" if report.dry_run else "changed"
    print(f"reparsed {report.messages} messages in {report.seconds:.1f} s: {report.changed} "
          f"{verb}" + (f" ({columns})" if columns else ""))
    before, after = summary["drift"]["before"], summary["drift"]["after"]
    for reason in dict.fromkeys([*before, *after]):
        print(f"  drift {reason}: {before.get(reason, 0)} -> {after.get(reason, 0)}")
    print(f"tool calls rebuilt: {report.tool_calls_rebuilt} ({report.tool_calls_changed} "
          f"changed); sessions updated: {report.sessions_updated}; projects updated: "
          f"{report.projects_updated}")
    if report.columns_added:
        print(f"columns added: {', '.join(report.columns_added)}")
    if report.unparsable:
        print(f"{report.unparsable} stored lines no longer parse (kept unchanged), e.g.:")
        for u in summary["unparsable_examples"]:
            print(f"  {u['path']}:{u['line_number']}  {u['reason']}  {u['detail']}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from threadline import access, auth

    # Health needs no token; TLS trust comes from the settings (THREADLINE_TLS_CA/CERT).
    settings = _settings(args)
    security = auth.Security(tls_cert=settings.tls_cert, tls_ca=settings.tls_ca)
    try:
        with access.sync_channel(args.address, security) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {name}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def cmd_token(args: argparse.Namespace) -> int:
    from threadline import auth

    settings = _settings(args)
    try:
        token = auth.for_server(settings).token
    except OSError as exc:
        print(f"threadline token: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def cmd_config(args: argparse.Namespace) -> int:  # noqa: ARG001 - uniform signature
    for env, default, help_text in config.describe():
        print(f"{env:32} {default:40} {help_text}")
    return 0


def _session_view(args: argparse.Namespace, command: str, fn_name: str,
                  *extra: object) -> dict | None:
    """Run services.analysis.views.<fn_name> on the database; prints why when it cannot."""
    from services.analysis import views
    from threadline.storage import queries
    from threadline.storage.errors import StoreError

    try:
        engine = queries.open_readonly(_settings(args).db)
    except StoreError as exc:
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None
    try:
        with engine.connect() as conn:
            found = getattr(views, fn_name)(conn, args.session, *extra)
    except StoreError as exc:  # an ambiguous or too short session id prefix
        print(f"threadline {command}: {exc}", file=sys.stderr)
        return None
    finally:
        engine.dispose()
    if found is None:
        print(f"threadline {command}: no session {args.session!r} (see `threadline sessions`)",
              file=sys.stderr)
    return found


def _when(ts: str) -> str:
    return ts[:19].replace("T", " ") if ts else ""


def cmd_threads(args: argparse.Namespace) -> int:
    from threadline.tables import render

    found = _session_view(args, "threads", "threads", _settings(args).pricing_file)
    if found is None:
        return 2
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    nodes = found["nodes"]
    inferred = sum(1 for n in nodes if n["parent_source"] == "inferred")
    print(f"session {found['session_id']}: {len(nodes)} records, {inferred} parents inferred"
          + (f"; continues {found['resumed_from']}" if found["resumed_from"] else "")
          + (f"; continued by {', '.join(found['resumed_by'])}" if found["resumed_by"] else ""))
    print("\nsegments")
    print(render(["#", "START", "END", "MSGS", "PROMPTS", "TOOLS", "BOUNDARY", "SCORE", "TITLE"],
                 [[g["index"], _when(g["first_timestamp"]), _when(g["last_timestamp"]),
                   g["message_count"], g["prompt_count"], g["tool_call_count"],
                   g["boundary_reason"], f"{g['boundary_score']:.2f}", g["title"]]
                  for g in found["segments"]], right=[0, 3, 4, 5, 7]))
    if found["branches"]:
        print("\nbranches (rewinds and edited prompts)")
        print(render(["PARENT", "ALTERNATIVES"],
                     [[b["parent_uuid"], ", ".join(b["child_uuids"])] for b in found["branches"]],
                     max_width=120))
    if found["subagents"]:
        print("\nsubagents")
        print(render(["TOOL CALL", "AGENT", "MSGS", "SECONDS", "TOKENS", "COST"],
                     [[a["tool_use_id"], a["agent_id"], a["messages"],
                       f"{a['duration_seconds']:.1f}", f"{a['tokens']:,}",
                       f"{a['cost_usd']:.2f}"] for a in found["subagents"]],
                     right=[2, 3, 4, 5]))
    if found["compactions"]:
        print("\ncompactions")
        print(render(["AT", "TRIGGER", "TOKENS BEFORE", "CONTINUES FROM"],
                     [[_when(c["timestamp"]), c["trigger"], f"{c['pre_tokens']:,}",
                       c["logical_parent_uuid"]] for c in found["compactions"]], right=[2]))
    if args.tree:
        print("\nreply tree (indent = depth; ~ inferred parent)")
        depth: dict[str, int] = {}
        for n in nodes:
            d = depth.get(n["parent_uuid"], -1) + 1 if n["parent_uuid"] else 0
            depth[n["uuid"] or n["key"]] = d  # formats without ids link by key
            mark = "~" if n["parent_source"] == "inferred" else " "
            label = n["type"] + (f"/{n['role']}" if n["role"] and n["role"] != n["type"] else "")
            print(f"{mark}{'  ' * min(d, 40)}{label}: {' '.join(n['excerpt'].split())[:80]}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from threadline.tables import render

    found = _session_view(args, "analyze", "analysis")
    if found is None:
        return 2
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    s = found["summary"]
    prompts = s.get("prompts", 0)
    responses = s.get("responses", 0)
    print(f"session {s['session_id']}: {s.get('messages', 0)} records, {prompts} prompts, "
          f"{s.get('assistant_messages', 0)} assistant records, {s.get('segments', 0)} segments")
    print(f"  {_when(s.get('first_timestamp', ''))} .. {_when(s.get('last_timestamp', ''))}; "
          f"interruptions {s.get('interruptions', 0)}"
          + (f" ({s['interruptions'] / prompts:.0%} of prompts)" if prompts else "")
          + (f"; mean response {s['response_seconds_sum'] / responses:.1f} s"
             if responses else "")
          + (f"; mean sentiment {s['sentiment_sum'] / prompts:+.2f}" if prompts else "")
          + f"; branches {s.get('branches', 0)}, compactions {s.get('compactions', 0)}, "
            f"subagents {s.get('subagents', 0)}")
    if found["intents"]:
        print("  intents: " + ", ".join(f"{k} {v}" for k, v in found["intents"].items()))
    print("\nsegments")
    print(render(["#", "MSGS", "PROMPTS", "BOUNDARY", "SCORE", "COHERENCE", "TITLE", "KEYWORDS"],
                 [[g["index"], g["message_count"], g["prompt_count"], g["boundary_reason"],
                   f"{g['boundary_score']:.2f}", f"{g['coherence']:.2f}", g["title"],
                   ", ".join(g["keywords"][:5])] for g in found["segments"]],
                 right=[0, 1, 2, 4, 5], max_width=50))
    print("\nprompts")
    print(render(["AT", "SEG", "INTENT", "CONF", "SENTIMENT", "URGENCY", "CLARITY", "GRADE",
                  "SIM", "PROMPT"],
                 [[_when(t["timestamp"]), t["segment_index"], t["intent"],
                   f"{t['intent_confidence']:.2f}", f"{t['sentiment']:+.2f}",
                   f"{t['urgency']:.2f}", f"{t['clarity']:.2f}", f"{t['complexity']:.1f}",
                   f"{t['similarity_previous']:.2f}", t["excerpt"]] for t in found["turns"]],
                 right=[1, 3, 4, 5, 6, 7, 8], max_width=60))
    linked = [r for r in found["relationships"]
              if r["kind"] in ("reference", "topic_follow_up")]
    if linked:
        print("\nreferences and follow-ups")
        print(render(["KIND", "FROM", "TO", "CONF", "EVIDENCE"],
                     [[r["kind"], r["source_key"], r["target_key"], f"{r['confidence']:.2f}",
                       r["evidence"]] for r in linked], right=[3]))
    return 0


def cmd_eval_threading(args: argparse.Namespace) -> int:
    from threadline import thread_eval

    paths = _existing_paths(args.paths, "eval")
    if paths is None:
        return 2
    scores = thread_eval.evaluate(paths)
    if args.json:
        print(json.dumps(thread_eval.as_json(scores), indent=2))
    else:
        print("reply-tree inference: parent links removed, imported, thread parents compared")
        print(thread_eval.table(scores))
    return 0


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description=__doc__.splitlines()[0])
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

    sessions = sub.add_parser("sessions", help="list stored sessions")
    db_flag(sessions)
    sessions.add_argument("--project", help="only this project: its path, short name or an "
                                            "alias (see `threadline projects`)")
    sessions.add_argument("--json", action="store_true")
    sessions.set_defaults(func=cmd_sessions)

    export = sub.add_parser("export", help="write every stored record, one JSON object a line")
    db_flag(export)
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(func=cmd_export)

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

    cfg = sub.add_parser("config", help="list every setting with its variable and default")
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
    from threadline.tables import PrintableStream

    args = build_parser().parse_args(argv)
    # Session ids, paths, titles and text come from transcripts: their control characters are
    # escaped on the way out, on stdout and on stderr (messages name them too). JSON output
    # holds none (JSON escapes them); `export` writes JSON bytes to the underlying buffer.
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(stdout), PrintableStream(stderr)
    try:
        return args.func(args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
