"""`make chaos`: kill -9 random services during an import; the database must not notice.

1. A generated corpus (bench/corpus.py) with a few malformed lines planted, so parse errors
   are stored too.
2. `threadline import` of it into a fresh database, while this harness kills -9, at random
   moments (seeded; the seed is printed), a random one of the import's service processes: the
   store, the ingest+analysis process, the analysis follower. The import's supervisor restarts
   them and the pipeline resumes from what was committed.
   Then the same with `threadline up --root` (the stream service joins the targets), stopped
   with SIGTERM once everything is stored and analysed (`--mode` picks one of the two).
   `--settled` kills only processes that finished starting, which leaves out the faults of a
   restart that is itself hit.
3. The same import, uninterrupted, into a reference database.
4. The two databases compared table by table: missing, extra, duplicate and differing rows
   (only columns that legitimately differ between two runs are left out, each named in
   `TABLES` with the reason); `PRAGMA integrity_check`; every change-feed entry present once;
   no process of the run left behind; every port the run listened on free again.
Exit status 0 only when every count is zero and every check passed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.corpus import generate

# The service processes a kill may hit, by a part of their command line.
TARGETS = {
    "store": ("cli", "serve", "store"),
    "analysis+ingest": ("cli", "serve", "analysis", "ingest"),
    "follower": ("services.analysis.follower",),
    "stream": ("cli", "serve", "stream"),  # `threadline up` only
}
# Malformed lines planted in every PLANT_EVERY-th file (parse errors must survive kills too).
PLANT_EVERY = 4
PLANTED = (b'{"type": "user", "message": {"content": "cut off mid-\n', b"not json at all\n")
# After the import returns, its processes get this long to be gone (they are stopped, not
# killed, so a process still there after it is one left behind).
LEFTOVER_GRACE_SECONDS = 3.0
# --settled: the follower counts as started after this long (it checks its parent from then).
FOLLOWER_SETTLE_SECONDS = 3.0
IMPORT_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class TableSpec:
    """How one table is compared: the columns that identify a row, and the columns left out
    (with why)."""

    identity: tuple[str, ...]
    ignored: tuple[str, ...] = ()


# Every table whose content must be the same however often the import was interrupted.
TABLES = {
    # seq: the commit order across files depends on scheduling, so sequence numbers differ
    # between any two runs. The identity is the source position, not the UNIQUE `key`, so a
    # line stored twice under two keys counts as a duplicate.
    "messages": TableSpec(("source_path", "source_byte_offset", "uuid"), ("seq",)),
    "parse_errors": TableSpec(("path", "byte_offset"), ("seq",)),  # seq: as above
    "sessions": TableSpec(("session_id",)),
    "projects": TableSpec(("key",)),
    "tool_calls": TableSpec(("tool_use_id",)),
    # Offsets, line counts and the head hash of every file: where a restart resumes from.
    "sources": TableSpec(("path",)),
    # Analysis results. The follower analyses each session in its own record order (the
    # order of the file) and rebuilds a session it does not hold from the stored records, so
    # its results do not depend on where it was interrupted: compared in full.
    "turns": TableSpec(("key",)),
    "segments": TableSpec(("session_id", "idx")),
    "relationships": TableSpec(("source_key", "target_key", "kind")),
    "session_summaries": TableSpec(("session_id",)),
}
# Not compared row by row:
#  - analysis_progress: one row, the follower's checkpoint, a sequence number (checked instead:
#    nothing is left to analyse);
#  - changes: its seq differs with the commit order and the number of thread_updated /
#    analysis_updated entries with the batching; checked instead by `change_feed_problems`.


# --- corpus ----------------------------------------------------------------------------------

def make_corpus(root: Path, records: int, seed: int) -> list[Path]:
    shutil.rmtree(root, ignore_errors=True)  # with --keep, nothing of an earlier run stays
    files = generate(root, records, projects=5, session_records=500, seed=seed)
    for path in files[::PLANT_EVERY]:
        lines = path.read_bytes().splitlines(keepends=True)
        middle = len(lines) // 2
        path.write_bytes(b"".join([*lines[:middle], *PLANTED, *lines[middle:]]))
    return files


# --- processes -------------------------------------------------------------------------------

def target_of(process: psutil.Process) -> str | None:
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    for name, words in TARGETS.items():
        at = [i for i, arg in enumerate(cmdline) if arg == words[0]]
        if any(cmdline[i:i + len(words)] == list(words) for i in at):
            return name
    return None


def settled(process: psutil.Process) -> bool:
    """Whether a service process has finished starting: it wrote its ready file (the
    supervisor's sign that it is up); the follower, which has none, after FOLLOWER_SETTLE."""
    try:
        cmdline = process.cmdline()
        if "--ready-file" not in cmdline:
            return time.time() - process.create_time() > FOLLOWER_SETTLE_SECONDS
        ready = Path(cmdline[cmdline.index("--ready-file") + 1])
        return ready.exists() and ready.stat().st_mtime >= process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError,
            IndexError):
        return False


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ProcessTracker(threading.Thread):
    """Every process of one run, and every port they listened on, sampled every 100 ms.

    A process is remembered from the first time it is seen as a descendant of the import (or
    as a process whose command line names the run's folder), so one that outlives its parent
    (and is then nobody's descendant) is still found at the end.
    """

    def __init__(self, root: psutil.Process, marker: str):
        super().__init__(daemon=True)
        self.root = root
        self.marker = marker
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.ports: set[int] = set()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        # This harness and whoever started it may name the run's folder too.
        me = psutil.Process()
        self.ours = {me.pid, *(p.pid for p in me.parents())}

    def _candidates(self, everywhere: bool) -> list[psutil.Process]:
        found = []
        try:
            found = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        if everywhere:  # the whole process table: costly, so not on every sample
            for process in psutil.process_iter(["cmdline"]):
                if (process.pid not in self.ours
                        and any(self.marker in arg for arg in process.info["cmdline"] or ())):
                    found.append(process)
        return found

    def sample(self, everywhere: bool = True) -> None:
        for process in self._candidates(everywhere):
            try:
                key = (process.pid, process.create_time())
                listening = {c.laddr.port for c in process.net_connections("inet")
                             if c.status == psutil.CONN_LISTEN}
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            with self.lock:
                self.seen.setdefault(key, process)
                self.ports |= listening

    def run(self) -> None:
        samples = 0
        while not self.stop_event.is_set():
            self.sample(everywhere=samples % 10 == 0)
            samples += 1
            self.stop_event.wait(0.1)

    def targets(self) -> dict[str, list[psutil.Process]]:
        with self.lock:
            processes = list(self.seen.values())
        by_name = defaultdict(list)
        for process in processes:
            if alive(process) and (name := target_of(process)) is not None:
                by_name[name].append(process)
        return by_name

    def leftovers(self) -> list[psutil.Process]:
        self.sample()
        with self.lock:
            return [p for p in self.seen.values() if alive(p)]


def port_in_use(port: int) -> bool:
    """True while something listens on the port, or it cannot be bound the way the services
    bind it (SO_REUSEADDR, so connections in TIME_WAIT do not count)."""
    for conn in psutil.net_connections("inet"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# --- runs ------------------------------------------------------------------------------------

@dataclass
class Run:
    returncode: int
    seconds: float
    output: str
    kills: list[tuple[float, str, int]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    busy_ports: list[int] = field(default_factory=list)
    ports: int = 0


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (`threadline up --grpc-port` takes a base)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000)
        if not any(port_in_use(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


class UpProgress:
    """Whether a `threadline up` has stored and analysed the whole corpus: ingest idle with
    every file acknowledged to its end, and nothing left to analyse."""

    def __init__(self, ingest_addr: str, db: Path, files: int):
        self.ingest_addr, self.db, self.files = ingest_addr, db, files

    def done(self) -> bool:
        import grpc

        from threadline.storage.analysis import analysis_backlog
        from threadline.storage.readonly import open_readonly
        from threadline.v1 import ingest_pb2, ingest_pb2_grpc

        try:
            with grpc.insecure_channel(self.ingest_addr) as channel:
                status = ingest_pb2_grpc.IngestServiceStub(channel).GetStatus(
                    ingest_pb2.GetIngestStatusRequest(), timeout=5)
        except grpc.RpcError:
            return False  # ingest is restarting
        if not (status.idle and len(status.files) >= self.files
                and all(f.durable_offset == f.size for f in status.files)):
            return False
        try:
            engine = open_readonly(self.db)
            try:
                with engine.connect() as conn:
                    return analysis_backlog(conn) == 0
            finally:
                engine.dispose()
        except Exception:  # noqa: BLE001 - the store may be recreating its tables
            return False


def run_pipeline(mode: str, root: Path, db: Path, workdir: Path, kills: int,
                 rng: random.Random | None, gap: tuple[float, float],
                 only_settled: bool = False) -> Run:
    """`threadline import root` (mode "import") or `threadline up --root root` (mode "up",
    stopped with SIGTERM once everything is stored and analysed) into db; with `rng`, kill -9
    `kills` service processes on the way, one every `gap` seconds (uniform); with
    `only_settled`, only processes that finished starting."""
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # a fresh database each time, also with --keep
    progress = None
    if mode == "import":
        args = [sys.executable, "-m", "cli", "import", "--db", str(db), str(root)]
        kinds = set(TARGETS) - {"stream"}
    else:
        base, ws = consecutive_free_ports(4), consecutive_free_ports(1)
        args = [sys.executable, "-m", "cli", "up", "--db", str(db), "--root", str(root),
                "--grpc-port", str(base), "--ws-port", str(ws)]
        kinds = set(TARGETS)
        progress = UpProgress(f"127.0.0.1:{base + 2}", db,
                              sum(1 for _ in root.rglob("*.jsonl")))
    log_path = workdir / f"{db.stem}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in [n for n in env if n.startswith("THREADLINE_")]:
        env.pop(name)  # the run is described by its arguments alone
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        tracker = ProcessTracker(psutil.Process(process.pid), str(workdir))
        tracker.start()
        done: list[tuple[float, str, int]] = []

        def running() -> bool:
            return process.poll() is None and (progress is None or not progress.done())

        try:
            # Kills begin once every kind of target runs: the start-up of the command itself
            # (before it has its services) is not what is under test.
            while rng is not None and running() and set(tracker.targets()) < kinds:
                time.sleep(0.05)
            while rng is not None and len(done) < kills and running():
                time.sleep(rng.uniform(*gap))
                targets = tracker.targets()
                if only_settled:
                    targets = {name: ready for name, processes in targets.items()
                               if (ready := [p for p in processes if settled(p)])}
                if not targets or process.poll() is not None:
                    continue
                name = rng.choice(sorted(targets))
                victim = rng.choice(targets[name])
                try:
                    victim.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    continue
                done.append((time.monotonic() - started, name, victim.pid))
                print(f"  kill -9 #{len(done):2d} at {done[-1][0]:6.2f} s: {name} "
                      f"(pid {victim.pid})", flush=True)
            deadline = time.monotonic() + IMPORT_TIMEOUT_SECONDS
            while running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if progress is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)  # what Ctrl-C or a service manager does
            try:
                process.wait(max(deadline - time.monotonic(), 30))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            seconds = time.monotonic() - started
            deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
            while (left := tracker.leftovers()) and time.monotonic() < deadline:
                time.sleep(0.1)
            tracker.stop_event.set()
            tracker.join()
            described = []
            for leftover in left:
                try:
                    described.append(f"pid {leftover.pid}: {' '.join(leftover.cmdline())}")
                    leftover.kill()  # clean up after reporting it
                except psutil.NoSuchProcess:
                    pass
            if process.poll() is None:
                process.kill()
    busy = sorted(p for p in tracker.ports if port_in_use(p))
    return Run(process.returncode, seconds, log_path.read_text(errors="replace"), done,
               described, busy, len(tracker.ports))


# --- comparison ------------------------------------------------------------------------------

@dataclass
class TableDiff:
    rows: int = 0
    missing: int = 0
    extra: int = 0
    duplicate: int = 0
    differing: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.duplicate or self.differing)


def _rows(conn: sqlite3.Connection, table: str, spec: TableSpec) -> dict[tuple, list[tuple]]:
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")
               if row[1] not in spec.ignored]
    by_identity: dict[tuple, list[tuple]] = defaultdict(list)
    at = [columns.index(c) for c in spec.identity]
    for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"):
        by_identity[tuple(row[i] for i in at)].append(row)
    return by_identity


def compare_table(ref: sqlite3.Connection, got: sqlite3.Connection, table: str,
                  spec: TableSpec) -> TableDiff:
    want, have = _rows(ref, table, spec), _rows(got, table, spec)
    diff = TableDiff(rows=sum(len(v) for v in want.values()))

    def example(kind: str, identity: tuple) -> None:
        if len(diff.examples) < 3:
            diff.examples.append(f"{kind} {identity!r}"[:200])

    for identity, rows in want.items():
        if identity not in have:
            diff.missing += len(rows)
            example("missing", identity)
            continue
        other = have[identity]
        if len(other) > len(rows):
            diff.duplicate += len(other) - len(rows)
            example("duplicate", identity)
        elif len(other) < len(rows):
            diff.missing += len(rows) - len(other)
            example("missing", identity)
        elif sorted(other, key=repr) != sorted(rows, key=repr):  # (counted once per row)
            diff.differing += 1
            example("differing", identity)
    for identity, rows in have.items():
        if identity not in want:
            diff.extra += len(rows)
            example("extra", identity)
    return diff


def change_feed_problems(conn: sqlite3.Connection) -> list[str]:
    """Every message and parse error has exactly one change-feed entry at its own seq (a
    stream client replaying from 0 sees each once), and nothing is left to analyse."""
    problems = []
    checks = {
        "messages without their change entry": """
            SELECT count(*) FROM messages m LEFT JOIN changes c
            ON c.seq = m.seq AND c.kind = 'message' AND c.ref = m.key WHERE c.seq IS NULL""",
        "parse errors without their change entry": """
            SELECT count(*) FROM parse_errors p LEFT JOIN changes c
            ON c.seq = p.seq AND c.kind = 'parse_error'
            AND c.ref = p.path || ':' || p.byte_offset WHERE c.seq IS NULL""",
        "change entries for a message or parse error that is not stored": """
            SELECT count(*) FROM changes c WHERE
            (c.kind = 'message' AND NOT EXISTS
                (SELECT 1 FROM messages m WHERE m.seq = c.seq AND m.key = c.ref))
            OR (c.kind = 'parse_error' AND NOT EXISTS
                (SELECT 1 FROM parse_errors p WHERE p.seq = c.seq))""",
        "messages not yet analysed": """
            SELECT count(*) FROM messages WHERE seq >
            coalesce((SELECT max(seq) FROM analysis_progress), 0)""",
    }
    for what, sql in checks.items():
        if count := conn.execute(sql).fetchone()[0]:
            problems.append(f"{count} {what}")
    return problems


def integrity(conn: sqlite3.Connection) -> str:
    return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


def open_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


# --- main ------------------------------------------------------------------------------------

def describe_run(label: str, run: Run) -> list[str]:
    command = "threadline " + label.split()[0]
    """Report lines for one run; those starting with "FAIL" count as failures."""
    lines = [f"{label}: exit {run.returncode} after {run.seconds:.1f} s, "
             f"{len(run.kills)} kills, {run.ports} ports used"]
    if run.returncode != 0:
        tail = "\n    ".join(run.output.strip().splitlines()[-8:])
        lines.append(f"FAIL {label}: {command} exited with {run.returncode}:\n    {tail}")
    for leftover in run.leftovers:
        lines.append(f"FAIL {label}: process left behind: {leftover[:160]}")
    if run.busy_ports:
        lines.append(f"FAIL {label}: ports still in use afterwards: {run.busy_ports}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the kill schedule (default: random, printed)")
    parser.add_argument("--min-gap", type=float, default=0.3, help="seconds between kills")
    parser.add_argument("--max-gap", type=float, default=1.5)
    parser.add_argument("--settled", action="store_true",
                        help="kill only processes that finished starting (leaves out the "
                             "faults of a restart that is hit again)")
    parser.add_argument("--mode", choices=("import", "up", "both"), default="both",
                        help="interrupt `threadline import`, `threadline up` (which adds the "
                             "stream service to the targets), or one after the other")
    parser.add_argument("--keep", type=Path, help="keep the corpus, databases and logs here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    modes = ("import", "up") if args.mode == "both" else (args.mode,)
    print(f"threadline chaos: seed {seed} (rerun with --seed {seed}), {args.kills} kills per "
          f"run, {args.records:,} records, runs: {', '.join(modes)}", flush=True)

    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="threadline-chaos-") as tmp:
        workdir = args.keep.resolve() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        root = workdir / "projects"
        files = make_corpus(root, args.records, seed)
        print(f"corpus: {len(files)} files under {root}", flush=True)

        interrupted = {}
        for mode in modes:
            print(f"threadline {mode} with kills:", flush=True)
            run = run_pipeline(mode, root, workdir / f"{mode}-killed.db", workdir, args.kills,
                               random.Random(seed), (args.min_gap, args.max_gap),
                               args.settled)
            report += describe_run(f"{mode} with kills", run)
            if len(run.kills) < args.kills:
                report.append(f"FAIL {mode}: only {len(run.kills)} of {args.kills} kills "
                              "landed before it was done (a larger --records or smaller gaps)")
            if run.returncode == 0:
                interrupted[mode] = workdir / f"{mode}-killed.db"
        if interrupted:  # else there is nothing to compare
            print("threadline import uninterrupted (the reference) ...", flush=True)
            reference = run_pipeline("import", root, workdir / "reference.db", workdir, 0,
                                     None, (0, 0))
            report += describe_run("reference import", reference)
            if reference.returncode == 0:
                for mode, db in interrupted.items():
                    report.append(f"{mode} with kills against the reference:")
                    report += compare(workdir / "reference.db", db)

    print()
    print(f"threadline chaos summary (seed {seed})")
    failures = [line for line in report if line.startswith("FAIL")]
    for line in report:
        print(("  " if line.startswith(("FAIL", "import", "up", "reference")) else "    ")
              + line)
    print(f"  {'PASSED' if not failures else f'FAILED: {len(failures)} problem(s)'}")
    return 1 if failures else 0


def compare(reference: Path, chaos: Path) -> list[str]:
    ref, got = open_db(reference), open_db(chaos)
    try:
        lines = [f"{'table':<18}{'rows':>8}{'missing':>9}{'extra':>7}{'duplicate':>11}"
                 f"{'differing':>11}"]
        for table, spec in TABLES.items():
            diff = compare_table(ref, got, table, spec)
            lines.append(f"{table:<18}{diff.rows:>8}{diff.missing:>9}{diff.extra:>7}"
                         f"{diff.duplicate:>11}{diff.differing:>11}")
            if not diff.clean:
                lines.append(f"FAIL {table}: " + "; ".join(diff.examples))
        for label, conn in (("reference", ref), ("interrupted", got)):
            if (verdict := integrity(conn)) != "ok":
                lines.append(f"FAIL integrity_check of the {label} database: {verdict[:300]}")
            for problem in change_feed_problems(conn):
                lines.append(f"FAIL {label} database: {problem}")
        if Counter(r[0] for r in ref.execute("SELECT kind FROM changes")).get("message", 0) == 0:
            lines.append("FAIL the reference import stored no messages")
        if not any(line.startswith("FAIL") for line in lines):
            lines.append("integrity_check ok, change feed complete (both databases)")
        return lines
    finally:
        ref.close()
        got.close()


if __name__ == "__main__":
    raise SystemExit(main())
