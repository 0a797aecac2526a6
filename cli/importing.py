"""`threadline import PATH...`: the services' own pipeline (ingest, analysis, store) run
over files or folders until everything is committed and analysed, then a summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cli.db import open_readonly, reading
from cli.options import existing_paths
from cli.options import settings as resolve_settings
from cli.serve import database_ok, redaction_ok


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

    paths = existing_paths(args.paths, "import")
    if paths is None:
        return 2
    settings = resolve_settings(args, roots=paths, grpc_port=0, follow=False)
    if not redaction_ok(settings, "import"):
        return 2
    if not database_ok(settings, "import"):
        return 1
    security = auth.for_server(settings)  # first: it creates the data folder 0700
    files.private_directory(settings.db.parent)
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
    from threadline.storage.analysis import analysis_backlog

    engine = open_readonly(db)  # a connection a poll: each sees what was committed since
    try:
        last, moved_at = -1, time.monotonic()
        while True:
            supervisor.check()
            with engine.connect() as conn:
                backlog = analysis_backlog(conn)
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
    from threadline.storage.sources import source_summary

    files = [f.source.path for f in status.files]
    with reading(db) as conn:
        counts = source_summary(conn, files)
    return {"files": len(files), **counts, "seconds": round(seconds, 3)}

