"""`make bench` search figures (`python -m bench --only search` runs them alone).

1. The generated corpus (plus one session of prompts holding a word found nowhere else, for
   rare words) imported with every service (analysis off: search does not depend on it);
   the import rate, with the index on, as every store now keeps it.
2. Search latency, p50/p99 over repeated queries on a read-only connection (as the store's
   readers run them; 20 hits each, snippets included): common words, rare words, phrases and
   filtered queries.
3. The index's size as a share of the database (SQLite's dbstat).
4. What the index costs the writer: the imported rows written again by the store's writer
   into fresh databases, in pipeline-sized batches, with the index on and off, alternating,
   in this run. The writer is the one place the index adds work, so this is its share of an
   import's cost at the point where imports are bound.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.corpus import WORDS, generate
from threadline import config
from threadline.storage import readonly, search

TARGET_P99_MS = 50.0
TARGET_INDEX_COST = 0.30
RARE_WORDS = 200
REPEATS = 15
WRITE_BATCH = 250  # the pipeline's batch (THREADLINE_BATCH_LINES)


def rare_session(root: Path, count: int = RARE_WORDS) -> list[str]:
    """A session whose prompts each hold one word found nowhere else; returns the words."""
    rng = random.Random(3)
    session_id = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    clock = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    words, lines, parent = [], [], None
    for i in range(count):
        word = f"zyx{i:04d}rare"
        words.append(word)
        uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        clock += timedelta(seconds=30)
        text = " ".join([*(rng.choice(WORDS) for _ in range(8)), word])
        lines.append({"parentUuid": parent, "isSidechain": False, "userType": "external",
                      "cwd": "/home/dev/rare", "sessionId": session_id, "version": "2.1.39",
                      "gitBranch": "main", "type": "user",
                      "message": {"role": "user", "content": text}, "uuid": uid,
                      "timestamp": clock.isoformat(timespec="milliseconds")
                      .replace("+00:00", "Z")})
        parent = uid
    path = root / "-home-dev-rare" / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return words


def query_sets(rare: list[str]) -> dict[str, list[str]]:
    rng = random.Random(5)
    return {
        "common words": [*WORDS[:12], "parser test", "sqlite grpc"],
        "rare words": rng.sample(rare, 14),
        "phrases": [f'"{rng.choice(WORDS)} {rng.choice(WORDS)}"' for _ in range(14)],
        "prefixes": ["pars*", "com*", "str*", "que*", "thr*", "ret*", "lat*"],
        "filtered": ["sqlite role:user", "grpc project:project3", "latency tool:Bash",
                     "stream since:2026-10-02 until:2026-10-02", "batch model:opus",
                     "index in:thinking", "commit -retry role:assistant",
                     "error session:", "watcher in:tool_result"],
    }


@dataclass
class SearchFigures:
    messages: int
    import_rate: float
    latencies: dict[str, list[float]]
    index_bytes: int
    database_bytes: int
    write_on: float
    write_off: float


def import_corpus(root: Path, db: Path, lines: int) -> float:
    """Import `root` into `db` with every service (analysis off); messages/s once the
    services answer. The database is kept."""
    from bench.__main__ import store_stats
    from threadline.supervisor import Supervisor

    settings = config.resolve({"db": db, "roots": [root], "grpc_port": 0, "ws_port": 0,
                               "analyse": False}, environ={})
    supervisor = Supervisor(settings, quiet=True)
    supervisor.start()
    try:
        store = supervisor.address("store")
        ready = time.monotonic()
        at_ready = store_stats(store).messages
        while (stats := store_stats(store)).messages < lines:
            time.sleep(0.02)
        return (stats.messages - at_ready) / (time.monotonic() - ready)
    finally:
        supervisor.stop()


def latencies(db: Path, sets: dict[str, list[str]]) -> dict[str, list[float]]:
    engine = readonly.open_readonly(db, pool_size=1)
    out: dict[str, list[float]] = {}
    try:
        with engine.connect() as conn:
            session = conn.exec_driver_sql("SELECT session_id FROM sessions LIMIT 1").scalar()
            for name, texts in sets.items():
                times = out.setdefault(name, [])
                for text in texts:
                    if text.endswith("session:"):
                        text += session[:8]
                    search.search(conn, text, 20)  # warm: pages in the cache, as in use
                    for _ in range(REPEATS):
                        started = time.perf_counter()
                        search.search(conn, text, 20)
                        times.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    return out


def index_share(db: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        index = conn.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat "
                             f"WHERE name LIKE '{search.TABLE}%'").fetchone()[0]
        pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "page_size"))
    return index, pages * size


def stored_rows(db: Path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM messages ORDER BY seq")]


def write_rate(rows: list[dict], db: Path, indexed: bool) -> float:
    """Messages/s the store's writer commits `rows` at into a fresh database."""
    from services.store import writer as store_writer

    original = search.index_messages
    if not indexed:  # the writer's one call that feeds the index does nothing
        search.index_messages = _no_index
    writer = store_writer.Writer(db)
    writer.start()
    try:
        async def main() -> float:
            batches = [store_writer.WriteBatch(i, messages=[dict(r) for r in
                                                            rows[at:at + WRITE_BATCH]])
                       for i, at in enumerate(range(0, len(rows), WRITE_BATCH))]
            started = time.perf_counter()
            await asyncio.gather(*(writer.submit(b) for b in batches))
            return len(rows) / (time.perf_counter() - started)

        return asyncio.run(main())
    finally:
        writer.stop()
        search.index_messages = original
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)


def _no_index(conn, rows: list[dict]) -> None:
    return None


def measure(tmp: Path, records: int, log: Callable[[str], None] = print) -> SearchFigures:
    root = tmp / "search-projects"
    log(f"search: generating {records:,} records ...")
    files = generate(root, records)
    rare = rare_session(root)
    lines = sum(1 for f in files for _ in f.open("rb")) + len(rare)
    db = tmp / "search.db"
    rate = import_corpus(root, db, lines)
    found = latencies(db, query_sets(rare))
    index_bytes, database_bytes = index_share(db)
    rows = stored_rows(db)
    on: list[float] = []
    off: list[float] = []
    for _round in range(2):  # alternating, so a busy moment of the machine hits both
        off.append(write_rate(rows, tmp / "write-off.db", indexed=False))
        on.append(write_rate(rows, tmp / "write-on.db", indexed=True))
    return SearchFigures(len(rows), rate, found, index_bytes, database_bytes, max(on),
                         max(off))


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(f: SearchFigures) -> list[str]:
    out = [f"  search        {f.messages:,} messages imported at {f.import_rate:,.0f} "
           "messages/s with the index on (all services, analysis off)"]
    for name, times in f.latencies.items():
        p99 = percentile(times, 99)
        out.append(f"                {name:13} p50 {percentile(times, 50):6.2f} ms, p99 "
                   f"{p99:6.2f} ms over {len(times)} queries (p99 target <= "
                   f"{TARGET_P99_MS:.0f} ms: {'ok' if p99 <= TARGET_P99_MS else 'MISSED'})")
    share = f.index_bytes / f.database_bytes
    out.append(f"                index {f.index_bytes / 2**20:.1f} MB of a "
               f"{f.database_bytes / 2**20:.1f} MB database ({share:.1%})")
    cost = 1 - f.write_on / f.write_off
    out.append(f"                store writer {f.write_on:,.0f} messages/s with the index, "
               f"{f.write_off:,.0f} without (best of 2 each, same run): the index costs "
               f"{cost:.1%} of write throughput (target <= {TARGET_INDEX_COST:.0%}: "
               f"{'ok' if cost <= TARGET_INDEX_COST else 'MISSED'})")
    return out
