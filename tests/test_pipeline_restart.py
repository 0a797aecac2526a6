"""Killing services mid-import and restarting them ends with exactly the rows of a clean run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc

from bench.corpus import generate
from threadline import config
from threadline.storage.messages import iter_export
from threadline.storage.readonly import open_readonly
from threadline.storage.sources import offsets
from threadline.storage.stats import stats as stored_stats
from threadline.supervisor import Supervisor
from threadline.v1 import ingest_pb2, ingest_pb2_grpc, store_pb2, store_pb2_grpc

RECORDS = 12_000


def stats(address: str) -> store_pb2.StoreStats:
    with grpc.insecure_channel(address) as channel:
        return store_pb2_grpc.StoreServiceStub(channel).GetStats(store_pb2.GetStatsRequest(),
                                                                 timeout=5)


def ingest_idle(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        return ingest_pb2_grpc.IngestServiceStub(channel).GetStatus(
            ingest_pb2.GetIngestStatusRequest(), timeout=5).idle


def wait_until(supervisor: Supervisor, condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        supervisor.check()  # restarts whatever was killed
        try:
            if condition():
                return
        except grpc.RpcError:
            pass  # a service is restarting
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def kill_mid_import(supervisor: Supervisor, service: str, expected: int) -> None:
    """SIGKILL the process hosting `service` while the import is provably unfinished.

    Ingest (which shares its process with analysis) is frozen first, so however fast the
    machine, at most its in-flight batches can still commit before the kill.
    """
    source = supervisor.child_of("ingest").process
    source.send_signal(signal.SIGSTOP)
    try:
        assert stats(supervisor.address("store")).messages < expected
        target = supervisor.child_of(service).process
        os.kill(target.pid, signal.SIGKILL)
        target.wait()
    finally:
        if source.poll() is None:
            source.send_signal(signal.SIGCONT)


def run(db: Path, root: Path, expected: int, kills: list[tuple[str, int]]) -> list[dict]:
    settings = config.resolve({"db": db, "roots": [root], "grpc_port": 0, "ws_port": 0},
                              environ={})
    supervisor = Supervisor(settings, services=("store", "analysis", "ingest"), quiet=True)
    supervisor.start()
    try:
        store = supervisor.address("store")
        for name, after in kills:
            wait_until(supervisor, lambda after=after: stats(store).messages >= after)
            kill_mid_import(supervisor, name, expected)
        wait_until(supervisor, lambda: stats(store).messages >= expected
                   and ingest_idle(supervisor.address("ingest")))
        restarts = {s: supervisor.child_of(s).restarts for s in ("store", "ingest")}
    finally:
        supervisor.stop()
    assert restarts == {"store": sum(1 for n, _ in kills if n == "store"),
                        "ingest": sum(1 for n, _ in kills if n == "ingest")}
    with open_readonly(db).connect() as conn:
        rows = [{k: v for k, v in r.items() if k != "sequence"} for r in iter_export(conn)]
        rows.sort(key=lambda r: r["key"])
        rows.append({"stats": {k: v for k, v in stored_stats(conn).items()
                               if k != "last_sequence"},
                     "offsets": sorted((o["path"], o["offset"]) for o in offsets(conn))})
    return rows


def test_kill_and_restart_ingest_and_store_mid_import(tmp_path):
    root = tmp_path / "projects"
    files = generate(root, RECORDS, projects=3, session_records=400, seed=3)
    expected = sum(f.read_bytes().count(b"\n") for f in files)

    clean = run(tmp_path / "clean.db", root, expected, kills=[])
    interrupted = run(tmp_path / "killed.db", root, expected,
                      kills=[("store", expected // 5), ("ingest", expected // 2)])
    assert len(clean) - 1 == expected
    assert interrupted == clean
