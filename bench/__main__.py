"""`make bench`: the pipeline's figures from one run on a generated corpus.

1. Parsing: the parser alone, records/s, beside a bare `orjson.loads` over the same lines
   (bench/parsing.py), on the generated corpus and on ../shared/corpus when it is present.
2. Bulk import throughput, messages/s end to end (file -> ingest -> analysis -> store commit)
   once the services are up, and counting their start-up, beside a bare `orjson.loads` pass
   over the same lines measured in the same run.
3. Live latency: a line appended to a watched file until its frame arrives at a WebSocket
   client, p50/p99 over many single-line appends.
4. The gateway under many clients: 300 WebSocket clients (in a process of their own)
   subscribed to every change while one session's file is appended steadily, and one client
   subscribed to another session only; its latency from each append to its frame, p50/p99
   (bench/fanout.py).
5. Peak resident memory of all service processes together during the import (sum of RSS,
   sampled every 20 ms with psutil).
6. Full-text search: latency of common words, rare words, phrases and filtered queries, the
   index's share of the database, and the writer's throughput with the index on beside off
   (bench/search.py).
Threading and analysis are on for every figure; the import also runs once with analysis off
(THREADLINE_ANALYSE=false) first, in the same run, as the baseline its cost is compared to.
While nobody subscribes to the stream service, the store's change feed carries heads only
(services/stream/upstream.py); a third import, with a WebSocket client subscribed to every
change throughout, measures what a live UI watching a bulk import costs.

`--db postgresql://...` adds the bulk import figures (analysis off and on, the analysis
follower's catching up) with the store on that PostgreSQL database, each import in a fresh
schema of it, dropped afterwards; every other figure is SQLite's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
import psutil
import websockets

from bench import fanout, parsing
from bench import search as search_bench
from bench.corpus import generate, live_line
from threadline import auth, config
from threadline.supervisor import Supervisor
from threadline.v1 import store_pb2, store_pb2_grpc

TARGETS = {"throughput": 8000.0, "p50_ms": 10.0, "p99_ms": 25.0, "memory_mb": 250.0,
           "parser_ratio": 0.5, "fanout_p99_ms": 50.0}
# Longest wait for the analysis follower to catch up after an import.
ANALYSIS_WAIT_SECONDS = 600.0
REAL_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


class MemorySampler(threading.Thread):
    """Peak memory of a set of processes together, two ways.

    `peak_pss`: the sum of their proportional set sizes (Linux smaps): each resident page
    counted once across the set, shared pages (the interpreter, gRPC's library) split between
    the processes that map them. This is the physical memory the services occupy together
    (their own children, the analysis follower, included).
    `peak_rss`: the plain sum of RSS, which counts every shared page once per process.
    """

    def __init__(self, pids_of):
        super().__init__(daemon=True)
        self.pids_of = pids_of
        self.peak_pss = 0
        self.peak_rss = 0
        self.stop_event = threading.Event()

    def _processes(self) -> list[psutil.Process]:
        """The services and their own children (the analysis follower)."""
        found = []
        for pid in self.pids_of():
            try:
                process = psutil.Process(pid)
                found += [process, *process.children(recursive=True)]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def run(self) -> None:
        while not self.stop_event.is_set():
            pss = rss = 0
            for process in self._processes():
                try:
                    info = process.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                pss += info.pss
                rss += info.rss
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.stop_event.wait(0.02)


def store_stats(address: str) -> store_pb2.StoreStats:
    with grpc.insecure_channel(address) as channel:
        return store_pb2_grpc.StoreServiceStub(channel).GetStats(store_pb2.GetStatsRequest(),
                                                                 timeout=10)


def bearer(settings: config.Settings) -> dict[str, str]:
    """The header a WebSocket client without an Origin presents: the installation's token."""
    return {"Authorization": f"Bearer {auth.for_client(settings).token}"}


async def live_latency(ws_url: str, path: Path, appends: int, gap: float,
                       headers: dict[str, str]) -> list[float]:
    rng = random.Random(11)
    latencies: list[float] = []
    async with fanout.connect(ws_url, headers) as ws:
        await fanout.subscribe(ws)
        session_id = "bench-live-session"
        with path.open("ab") as out:
            for _ in range(appends):
                uid, line = live_line(rng, session_id, "/home/dev/live")
                out.write(line)
                out.flush()
                sent = time.perf_counter()
                while True:
                    frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame.get("message", {}).get("uuid") == uid:
                        latencies.append((time.perf_counter() - sent) * 1000)
                        break
                await asyncio.sleep(gap)
    return latencies


class Watcher(threading.Thread):
    """A WebSocket client subscribed to every change, counting the message frames it gets
    (without decoding them) until it is stopped or the gateway drops it as too slow."""

    def __init__(self, ws_url: str, headers: dict[str, str]):
        super().__init__(daemon=True)
        self.ws_url = ws_url
        self.headers = headers
        self.subscribed = threading.Event()
        self.messages = 0
        self.close_code: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        self._loop, self._stop_requested = asyncio.get_running_loop(), asyncio.Event()
        async with fanout.connect(self.ws_url, self.headers) as ws:
            await fanout.subscribe(ws)
            self.subscribed.set()
            stop = asyncio.create_task(self._stop_requested.wait())
            try:
                while True:
                    frame = asyncio.create_task(ws.recv())
                    await asyncio.wait({frame, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if not frame.done():
                        frame.cancel()
                        return
                    if '"type":"message"' in frame.result()[:40]:
                        self.messages += 1
            except websockets.ConnectionClosed as e:
                self.close_code = e.rcvd.code if e.rcvd else None
            finally:
                stop.cancel()

    def stop(self) -> None:
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        self.join(10)


@dataclass
class ImportRun:
    throughput: float  # messages/s once every service answers
    with_startup: float  # messages/s from launch
    startup: float  # seconds from launch until the services answer
    seconds: float  # from launch until the last message was committed
    stats: store_pb2.StoreStats
    sampler: MemorySampler
    # From the last message committed until the analysis follower had analysed it too.
    analysis_lag: float | None = None
    watcher: Watcher | None = None
    at_ready: int = 0  # messages committed before the rate was counted


def fresh_schema(server_url: str) -> str:
    """A new, empty schema of the PostgreSQL database `server_url`, as the URL to reach it."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options=-csearch_path%3D{name}"


def drop_schema(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.query["options"].rpartition("=")[2]
    server = parsed.difference_update_query(["options"]).render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def import_run(root: Path, db: Path | str, lines: int, analyse: bool,
               live: tuple[int, float, list[float]] | None = None,
               watched: bool = False) -> ImportRun:
    """Import `root` into `db` (a SQLite file, or the URL of an empty PostgreSQL schema) with
    all services; then, if `live` is (appends, gap, out), measure live latency into `out`
    before stopping them. With `watched`, a WebSocket client subscribed to every change from
    the moment the services answer watches the import."""
    on_server = config.is_database_url(db)
    # A database server has no folder here for the installation's token: the run has its own.
    token = {"token": secrets.token_hex(16)} if on_server else {}
    settings = config.resolve({"db": db, "roots": [root], "grpc_port": 0, "ws_port": 0,
                               "analyse": analyse, **token}, environ={})
    supervisor = Supervisor(settings, quiet=True)
    sampler = MemorySampler(supervisor.pids)
    sampler.start()
    launched = time.monotonic()
    supervisor.start()
    try:
        # Every service process is launched at once and ingest reads as soon as it runs.
        # The import rate is counted from the moment all of them answer (what was
        # committed before is left out on both sides); the time from launch is shown too.
        watcher = None
        if watched:
            watcher = Watcher(f"ws://{settings.ws_host}:{supervisor.ports['ws']}/ws",
                              bearer(settings))
            watcher.start()
            if not watcher.subscribed.wait(10):
                raise RuntimeError("the watching WebSocket client could not subscribe")
        ready = time.monotonic()
        store = supervisor.address("store")
        at_ready = store_stats(store).messages
        while (stats := store_stats(store)).messages < lines:
            time.sleep(0.02)
        done = time.monotonic()
        if watcher is not None:
            deadline = time.monotonic() + 30
            while (watcher.is_alive() and watcher.messages < stats.messages - at_ready
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            watcher.stop()
        lag = None
        if analyse and not watched:
            while analysis_backlog(db):
                if time.monotonic() - done > ANALYSIS_WAIT_SECONDS:
                    raise RuntimeError("the analysis follower made no progress (see the "
                                       "analysis service's log)")
                time.sleep(0.05)
            lag = time.monotonic() - done
        sampler.stop_event.set()
        sampler.join()
        if live is not None:
            appends, gap, out = live
            live_file = root / "-home-dev-live" / "bench-live-session.jsonl"
            live_file.parent.mkdir(parents=True, exist_ok=True)
            live_file.touch()
            time.sleep(1.0)  # let the watcher pick up the new folder
            ws_url = f"ws://{settings.ws_host}:{supervisor.ports['ws']}/ws"
            out.extend(asyncio.run(live_latency(ws_url, live_file, appends, gap,
                                                bearer(settings))))
    finally:
        supervisor.stop()
        if on_server:
            drop_schema(str(db))
        else:
            # Deleted, its pages need no writing back: the next run does not pay for this
            # one's.
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                path.unlink(missing_ok=True)
        if live is not None:
            shutil.rmtree(root / "-home-dev-live", ignore_errors=True)
    return ImportRun((stats.messages - at_ready) / (done - ready),
                     stats.messages / (done - launched), ready - launched, done - launched,
                     stats, sampler, lag, watcher, at_ready)


def fanout_run(tmp: Path, clients: int, rate: float, appends: int,
               gap: float) -> fanout.FanoutResult:
    """Services on an empty root (analysis on), then the many-clients scenario against them."""
    root = tmp / "fanout-projects"
    folder = root / "-home-dev-fanout"
    folder.mkdir(parents=True)
    db = tmp / "fanout.db"
    settings = config.resolve({"db": db, "roots": [root], "grpc_port": 0, "ws_port": 0,
                               "analyse": True}, environ={})
    supervisor = Supervisor(settings, quiet=True)
    supervisor.start()
    try:
        return fanout.measure(f"ws://{settings.ws_host}:{supervisor.ports['ws']}/ws",
                              supervisor.address("store"), folder, clients, rate, appends, gap,
                              bearer(settings))
    finally:
        supervisor.stop()


def fanout_lines(result: fanout.FanoutResult) -> list[str]:
    lat = result.latencies
    lost = result.appended - len(lat)
    if len(lat) >= 2:
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        figures = (f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (max {max(lat):.0f} ms) over "
                   f"{len(lat)} appends (p99 target < {TARGETS['fanout_p99_ms']:.0f} ms: "
                   f"{verdict(p99 < TARGETS['fanout_p99_ms'] and not lost)})")
    else:
        figures = f"only {len(lat)} of {result.appended} frames arrived: MISSED"
    after = result.after_commit
    share = (f"p50 {percentile(after, 50):.2f} ms, p99 {percentile(after, 99):.2f} ms of it "
             "from the store's change feed to the frame (the gateway's own share)"
             if len(after) >= 2 else "the store's change feed was not followed")
    crowd = ", ".join(f"{n} closed with {code}" for code, n in result.crowd_closed.items())
    return [
        f"  many clients  {figures}",
        f"                {share}",
        f"                one client subscribed to one session, from append to frame, while "
        f"{result.clients} clients subscribed to every change",
        f"                and another session got {result.busy_lines:,} lines; they received "
        f"{result.crowd_frames:,} frames ({crowd or 'none dropped'})"
        + (f"; {lost} filtered frames never arrived" if lost else "")
        + (f"; the filtered client was closed with {result.filtered_close}"
           if result.filtered_close else ""),
    ]


def analysis_backlog(db: Path | str) -> int:
    from threadline.storage import analysis
    from threadline.storage.readonly import open_readonly

    engine = open_readonly(db)
    try:
        with engine.connect() as conn:
            return analysis.analysis_backlog(conn)
    finally:
        engine.dispose()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=600)
    parser.add_argument("--gap-ms", type=float, default=15.0)
    parser.add_argument("--fanout-clients", type=int, default=300)
    parser.add_argument("--fanout-rate", type=float, default=100.0,
                        help="lines per second appended to the busy session")
    parser.add_argument("--fanout-appends", type=int, default=300)
    parser.add_argument("--fanout-gap-ms", type=float, default=50.0)
    parser.add_argument("--search-records", type=int, default=None,
                        help="records of the search figures' corpus (default: --records)")
    parser.add_argument("--only", choices=("fanout", "search"),
                        help="run only this figure")
    parser.add_argument("--db", metavar="URL",
                        help="also measure the bulk import with the store on this PostgreSQL "
                             "database (postgresql://...; a fresh schema per import)")
    args = parser.parse_args()
    fanout_args = (args.fanout_clients, args.fanout_rate, args.fanout_appends,
                   args.fanout_gap_ms / 1000)

    if args.only == "fanout":
        with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
            result = fanout_run(Path(tmp), *fanout_args)
        print("\n".join(fanout_lines(result)))
        return 0
    search_records = args.search_records or args.records
    if args.only == "search":
        with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
            found = search_bench.measure(Path(tmp), search_records)
        print("\n".join(search_bench.report(found)))
        return 0

    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        root = Path(tmp) / "projects"
        print(f"generating {args.records:,} records ...", flush=True)
        files = generate(root, args.records)
        generated = parsing.lines_of(files)
        lines = len(generated)
        parse_generated = parsing.measure(generated)
        del generated
        parse_real = None
        if REAL_CORPUS.is_dir():
            parse_real = parsing.measure(parsing.lines_of(sorted(REAL_CORPUS.rglob("*.jsonl"))))
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"corpus: {len(files)} files, {lines:,} lines, {size_mb:.0f} MB", flush=True)

        # The same corpus imported twice into fresh databases, analysis off then on: the
        # first run is the baseline the analysis cost is measured against.
        baseline = import_run(root, Path(tmp) / "baseline.db", lines, analyse=False)
        print(f"analysis off: {baseline.throughput:,.0f} messages/s", flush=True)
        latencies: list[float] = []
        measured = import_run(root, Path(tmp) / "bench.db", lines, analyse=True,
                              live=(args.appends, args.gap_ms / 1000, latencies))
        watched = import_run(root, Path(tmp) / "watched.db", lines, analyse=True,
                             watched=True)
        many = fanout_run(Path(tmp), *fanout_args)
        on_postgresql = None
        if args.db:
            print(f"PostgreSQL: {args.db}", flush=True)
            pg_off = import_run(root, fresh_schema(args.db), lines, analyse=False)
            print(f"PostgreSQL, analysis off: {pg_off.throughput:,.0f} messages/s", flush=True)
            pg_on = import_run(root, fresh_schema(args.db), lines, analyse=True)
            on_postgresql = (pg_off, pg_on)
        found = search_bench.measure(Path(tmp), search_records)

    throughput, with_startup = measured.throughput, measured.with_startup
    stats, sampler = measured.stats, measured.sampler
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    pss_mb, rss_mb = sampler.peak_pss / 2**20, sampler.peak_rss / 2**20
    bare_rate = parse_generated.bare_per_s
    met_rate = throughput >= TARGETS["throughput"]
    met_latency = p50 < TARGETS["p50_ms"] and p99 < TARGETS["p99_ms"]
    met_memory = pss_mb < TARGETS["memory_mb"]
    print()
    print("threadline bench (one run, same machine)")
    print(f"  bulk import   {throughput:9,.0f} messages/s end to end, file to committed row, "
          f"once the services are up (target >= {TARGETS['throughput']:,.0f}: "
          f"{verdict(met_rate)})")
    print(f"                {with_startup:9,.0f} messages/s counting the services' start-up "
          f"({measured.startup:.2f} s): {stats.messages:,} messages in {measured.seconds:.2f} s")
    print(f"                analysis on; the same import with analysis off ran at "
          f"{baseline.throughput:,.0f} messages/s in this run (on/off "
          f"{throughput / baseline.throughput:.2f})")
    w, counted = watched.watcher, watched.stats.messages - watched.at_ready
    if w.close_code is not None:
        kept_up = (f"the gateway dropped it as too slow (close code {w.close_code}) after "
                   f"{w.messages:,} messages")
    elif w.messages >= counted:
        kept_up = f"it received each of the {counted:,} messages counted, live"
    else:
        kept_up = f"it had received only {w.messages:,} of the {counted:,} messages counted"
    print(f"                {watched.throughput:9,.0f} messages/s with a WebSocket client "
          f"subscribed to every change throughout ({kept_up})")
    print(f"  analysis      caught up {measured.analysis_lag:.2f} s after the last message was "
          f"committed ({stats.messages / (measured.seconds + measured.analysis_lag):,.0f} "
          f"messages/s from launch to fully analysed)")
    print(f"  bare orjson   {bare_rate:9,.0f} lines/s over the same lines; "
          f"pipeline/bare ratio {throughput / bare_rate:.3f}")
    for name, rates in (("generated", parse_generated), ("real corpus", parse_real)):
        if rates is None:
            print(f"  parser alone  ({name}: ../shared/corpus not present)")
            continue
        print(f"  parser alone  {rates.parser_per_s:9,.0f} records/s on the {name} "
              f"({rates.lines:,} lines); bare orjson {rates.bare_per_s:,.0f} lines/s; "
              f"ratio {rates.ratio:.2f} (aim >= {TARGETS['parser_ratio']}: "
              f"{verdict(rates.ratio >= TARGETS['parser_ratio'])})")
    print(f"  live latency  p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(latencies)} appends "
          f"(targets < {TARGETS['p50_ms']:.0f} / < {TARGETS['p99_ms']:.0f} ms: "
          f"{verdict(met_latency)})")
    print("\n".join(fanout_lines(many)))
    if on_postgresql is not None:
        pg_off, pg_on = on_postgresql
        print("  PostgreSQL    (the store on the --db server; the same corpus)")
        met_pg = pg_on.throughput >= TARGETS["throughput"]
        print(f"  bulk import   {pg_on.throughput:9,.0f} messages/s end to end, file to "
              f"committed row, once the services are up (target >= "
              f"{TARGETS['throughput']:,.0f}: {verdict(met_pg)})")
        print(f"                {pg_on.with_startup:9,.0f} messages/s counting the services' "
              f"start-up ({pg_on.startup:.2f} s): {pg_on.stats.messages:,} messages in "
              f"{pg_on.seconds:.2f} s")
        print(f"                analysis on; with analysis off {pg_off.throughput:,.0f} "
              f"messages/s (on/off {pg_on.throughput / pg_off.throughput:.2f})")
        print(f"  analysis      caught up {pg_on.analysis_lag:.2f} s after the last message was "
              f"committed ({pg_on.stats.messages / (pg_on.seconds + pg_on.analysis_lag):,.0f} "
              f"messages/s from launch to fully analysed)")
    print("\n".join(search_bench.report(found)))
    print(f"  peak memory   {pss_mb:9.1f} MB, all service processes together, sum of PSS "
          f"(target < {TARGETS['memory_mb']:.0f}: {verdict(met_memory)})")
    print(f"                {rss_mb:9.1f} MB as a plain sum of RSS (shared pages counted once "
          f"per process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
