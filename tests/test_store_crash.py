"""Killing the store at any moment loses and duplicates nothing once batches are resent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from store_support import batch, messages, settings, write

from services.store import open_readonly
from threadline import auth, bootstrap
from threadline.storage.messages import iter_export
from threadline.storage.sources import offsets
from threadline.v1 import store_pb2 as spb
from threadline.v1 import store_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
SERVE = """
import asyncio, sys
from pathlib import Path
from threadline import config
from services.store import server

async def main():
    run = await server.start(config.resolve({"db": Path(sys.argv[1]), "port": 0}, environ={}))
    print(run.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
PER_BATCH = 50
BATCHES = 40


def _start(db: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(db)], cwd=REPO,
                            stdout=subprocess.PIPE, env={**os.environ, "OTEL_SDK_DISABLED": "true"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "store process did not start"
    return proc, int(line)


def _end(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _batches():
    return [batch(n + 1, messages(n * PER_BATCH, PER_BATCH, raw=b"r" * 2000),
                  offset=(n + 1) * PER_BATCH * 100)
            for n in range(BATCHES)]


def test_kill_mid_stream_then_resend_unacknowledged(tmp_path):
    db = tmp_path / "t.db"
    batches = _batches()

    async def first_run(port: int, proc: subprocess.Popen) -> int:
        """Stream every batch, kill -9 the store after a few acks; return the last acked."""
        channel = bootstrap.channel(f"127.0.0.1:{port}", auth.for_client(settings(db)))
        acked = 0

        async def requests():
            for b in batches:
                yield b

        try:
            async for ack in store_pb2_grpc.StoreServiceStub(channel).Write(requests()):
                acked = ack.batch_id
                if acked == 5:
                    os.kill(proc.pid, signal.SIGKILL)  # batches 6.. are in flight
                    break
        finally:
            await channel.close()
        return acked

    async def second_run(port: int, acked: int) -> None:
        channel = bootstrap.channel(f"127.0.0.1:{port}", auth.for_client(settings(db)))
        stub = store_pb2_grpc.StoreServiceStub(channel)
        (offset,) = (await stub.GetOffsets(spb.GetOffsetsRequest())).offsets
        durable = offset.offset
        assert durable >= acked * PER_BATCH * 100  # acknowledged means committed
        # Like ingest: resend everything past the durable offset.
        resend = [b for b in batches if b.chunks[0].position.offset > durable]
        acks = await write(stub, resend)
        assert sum(a.new_messages for a in acks) == BATCHES * PER_BATCH - durable // 100
        stats = await stub.GetStats(spb.GetStatsRequest())
        assert stats.messages == stats.last_sequence == BATCHES * PER_BATCH
        await channel.close()

    proc, port = _start(db)
    try:
        acked = asyncio.run(first_run(port, proc))
        proc.wait(timeout=10)
    finally:
        _end(proc)
    assert acked == 5
    proc, port = _start(db)
    try:
        asyncio.run(second_run(port, acked))
    finally:
        _end(proc)
    engine = open_readonly(db)
    with engine.connect() as conn:
        records = list(iter_export(conn))
        (source,) = offsets(conn)
    engine.dispose()
    assert [r["sequence"] for r in records] == list(range(1, BATCHES * PER_BATCH + 1))
    assert [r["key"] for r in records] == [f"m{i}" for i in range(BATCHES * PER_BATCH)]
    assert source["offset"] == BATCHES * PER_BATCH * 100
