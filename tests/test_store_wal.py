"""Disk and WAL: the WAL stays bounded, is emptied after bulk work and at stop, and a full disk
is said clearly, loses nothing and is recovered from by itself.

A full disk is a real one: a small tmpfs mounted for the test (SQLite meets ENOSPC exactly as
on a full laptop disk). Where mounting is not permitted those tests are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest
import websockets
from conftest import eventually, running_pipeline
from store_support import batch, messages, running_store, write
from test_import import expected_from, stored
from test_pipeline_live import user_line

from services.store import rows
from services.store.writer import Checkpointer, Writer
from threadline.v1 import store_pb2 as spb
from threadline.v1 import stream_pb2 as stpb
from threadline.v1 import stream_pb2_grpc

# A message big enough that a few batches fill a small disk.
TEXT = "the quick brown fox jumps over the lazy dog " * 45


def wal_size(db: Path) -> int:
    """Size of the database's WAL file; 0 when there is none."""
    try:
        return db.with_name(db.name + "-wal").stat().st_size
    except FileNotFoundError:
        return 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB file system, to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the full-disk tests mount a small tmpfs")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (the full-disk tests need root or "
                    f"CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def message_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


def fill(disk: Path, leave: int) -> Path:
    """Take all of the disk's free space but `leave` bytes; delete the file to free it."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, free - leave))
    return filler


def transcripts(root: Path, files: int, lines: int) -> list[Path]:
    paths = []
    for f in range(files):
        path = root / "-home-u-app" / f"s{f}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(user_line(f"u{f}-{i}", text=f"{i} {TEXT}", session=f"s{f}")
                                  for i in range(lines)))
        paths.append(path)
    return paths


# --- WAL -------------------------------------------------------------------------------------

async def _submit(writer: Writer, first: int, count: int, batches: int = 1) -> None:
    for n in range(batches):
        start = first + n * count
        await writer.submit(rows.write_batch(
            batch(start + 1, messages(start, count, text=TEXT), offset=(start + count) * 100), {}))


def test_the_writer_cuts_a_restarted_wal_back_to_its_limit(tmp_path):
    db = tmp_path / "t.db"

    async def main():
        writer = Writer(db, wal_limit_bytes=64 * 1024)
        await asyncio.to_thread(writer.start)
        try:
            await _submit(writer, 0, 100, batches=5)
            assert wal_size(db) > 512 * 1024
            with sqlite3.connect(db) as other:  # nothing reads: this copies the whole WAL
                other.execute("PRAGMA wal_checkpoint(PASSIVE)")
            await _submit(writer, 500, 1)  # starts the WAL over, and cuts the file
            assert wal_size(db) <= 64 * 1024
        finally:
            await asyncio.to_thread(writer.stop)

    asyncio.run(main())


def test_a_wal_past_its_limit_is_truncated_while_writes_go_on(tmp_path):
    db = tmp_path / "t.db"

    async def main():
        writer = Writer(db, wal_limit_bytes=256 * 1024)
        await asyncio.to_thread(writer.start)
        raw = sqlite3.connect(db, isolation_level=None)
        try:
            # The ticks are driven here rather than by the thread's clock.
            checkpointer = Checkpointer(db, writer=writer, idle_seconds=3600)
            await _submit(writer, 0, 100, batches=5)
            assert wal_size(db) > 256 * 1024
            checkpointer.tick(raw)
            assert wal_size(db) == 0
            # Below the limit, the writer just gets passive checkpoints.
            await _submit(writer, 500, 10)
            checkpointer.tick(raw)
            assert 0 < wal_size(db) <= 256 * 1024
        finally:
            raw.close()
            await asyncio.to_thread(writer.stop)

    asyncio.run(main())


def test_an_idle_writer_gets_its_wal_truncated_once_readers_let_go(tmp_path):
    db = tmp_path / "t.db"

    async def main():
        writer = Writer(db)
        await asyncio.to_thread(writer.start)
        raw = sqlite3.connect(db, isolation_level=None)
        reader = sqlite3.connect(db, isolation_level=None)
        try:
            checkpointer = Checkpointer(db, writer=writer, idle_seconds=0)
            await _submit(writer, 0, 50)
            # A long-lived reader keeps an older snapshot, which lives in the WAL.
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM messages").fetchone() == (50,)
            await _submit(writer, 50, 50)
            checkpointer.tick(raw)  # after commits: passive
            checkpointer.tick(raw)  # idle: truncate, kept back by the reader without waiting
            assert wal_size(db) > 0
            # Nothing waits for the reader: writes go on.
            await _submit(writer, 100, 10)
            reader.execute("COMMIT")
            checkpointer.tick(raw)
            checkpointer.tick(raw)  # tried again, now it completes
            assert wal_size(db) == 0
        finally:
            reader.close()
            raw.close()
            await asyncio.to_thread(writer.stop)

    asyncio.run(main())


def test_the_store_empties_the_wal_when_idle_and_at_stop(tmp_path):
    db = tmp_path / "t.db"

    async def main():
        async with running_store(db) as (_run, stub):
            await write(stub, [batch(1, messages(0, 200, text=TEXT), offset=20_000)])
            assert wal_size(db) > 0
            await eventually(lambda: wal_size(db) == 0, timeout=20)
            # Written just before the stop, before any idle checkpoint could run.
            await write(stub, [batch(2, messages(200, 200, text=TEXT), offset=40_000)])
            assert wal_size(db) > 0
        assert wal_size(db) == 0
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM messages").fetchone() == (400,)

    asyncio.run(main())


def test_threadline_import_leaves_an_empty_wal(tmp_path):
    paths = transcripts(tmp_path / "projects", files=2, lines=100)
    db = tmp_path / "t.db"
    result = subprocess.run([sys.executable, "-m", "cli", "import", "--db", str(db),
                             "--json", str(tmp_path / "projects")],
                            capture_output=True, timeout=300, check=True)
    assert json.loads(result.stdout.decode().splitlines()[-1])["messages"] == 200
    assert wal_size(db) == 0
    assert {r["uuid"] for r in stored(db)[0]} == expected_from(paths)[0]


# --- a full disk -----------------------------------------------------------------------------

def test_a_full_disk_is_refused_clearly_and_writes_resume_once_space_returns(small_disk):
    db = small_disk / "t.db"
    full = f"database or disk is full at {db}"

    async def main():
        async with running_store(db) as (_run, stub):
            await write(stub, [batch(1, messages(0, 10), offset=1000)])
            filler = fill(small_disk, leave=400_000)
            written, refused = 10, None
            for batch_id in range(2, 100):
                b = batch(batch_id, messages(written, 50, text=TEXT),
                          offset=(written + 50) * 100)
                try:
                    await write(stub, [b])
                except grpc.aio.AioRpcError as exc:
                    refused = exc
                    break
                written += 50
            assert refused is not None, "the disk never filled up"
            assert refused.code() == grpc.StatusCode.UNAVAILABLE
            assert refused.details() == full
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert stats.write_error == full
            assert stats.messages == written  # the refused batch is not half there
            # Still refused while the disk is full, and the store stays up.
            with pytest.raises(grpc.aio.AioRpcError):
                await write(stub, [b])
            filler.unlink()
            acks = await write(stub, [b])
            assert acks[0].new_messages == 50
            stats = await stub.GetStats(spb.GetStatsRequest())
            assert (stats.write_error, stats.messages) == ("", written + 50)

    asyncio.run(main())


def test_after_a_full_disk_checkpoints_give_the_wals_space_back(small_disk):
    """Seen: space freed on a full disk was taken by the checkpoints (the database file grew
    while the WAL kept its size) and nothing more was stored."""
    db = small_disk / "t.db"

    async def main():
        writer = Writer(db)
        await asyncio.to_thread(writer.start)
        raw = sqlite3.connect(db, isolation_level=None)
        try:
            checkpointer = Checkpointer(db, writer=writer, idle_seconds=3600)
            filler = fill(small_disk, leave=400_000)
            first, refused = 0, None
            while refused is None:
                try:
                    await _submit(writer, first, 50)
                    first += 50
                except Exception as exc:
                    refused = exc
            assert writer.write_error == f"database or disk is full at {db}"
            checkpointer.tick(raw)  # no room to copy the WAL into the database: it waits
            filler.unlink()
            await _submit(writer, first, 50)  # the batch kept by its sender goes in
            assert writer.write_error == ""
            checkpointer.tick(raw)
            assert wal_size(db) == 0, "the WAL kept space the database needs"
        finally:
            raw.close()
            await asyncio.to_thread(writer.stop)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM messages").fetchone() == (first + 50,)

    asyncio.run(main())


def test_ingestion_waits_out_a_full_disk_and_resumes_by_itself(tmp_path, small_disk):
    root = tmp_path / "projects"
    paths = transcripts(root, files=2, lines=150)  # 600 kB: 2.6 MB stored
    db = small_disk / "threadline.db"

    async def main():
        filler = fill(small_disk, leave=1_000_000)
        async with running_pipeline(tmp_path, [root], db=db) as pipeline:
            writer = pipeline.store.writer
            await eventually(lambda: writer.write_error, timeout=60)
            assert writer.write_error == f"database or disk is full at {db}"
            filler.unlink()
            await eventually(lambda: not writer.write_error and message_count(db) == 300,
                             timeout=60, interval=0.2)
        assert {r["uuid"] for r in stored(db)[0]} == expected_from(paths)[0]

    asyncio.run(main())


def test_the_stream_tells_its_clients_when_the_disk_is_full_and_when_it_is_not(tmp_path,
                                                                              small_disk):
    """WebSocket clients are told unasked (and on connecting while it holds), gRPC clients see
    it in the stream's status, and both hear when writes succeed again."""
    root = tmp_path / "projects"
    db = small_disk / "threadline.db"
    full = f"database or disk is full at {db}"

    async def frames_until(ws, kind: str) -> dict:
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] == kind:
                return frame

    async def main():
        async with running_pipeline(tmp_path, [root], db=db) as p:
            async with (websockets.connect(p.ws_url, additional_headers=p.ws_headers) as early,
                        grpc.aio.insecure_channel(p.stream_addr) as channel):
                status = stream_pb2_grpc.StreamServiceStub(channel).GetStatus
                filler = fill(small_disk, leave=1_000_000)
                transcripts(root, files=2, lines=150)
                told = await frames_until(early, "store_error")
                assert told == {"type": "store_error", "message": full}
                assert (await status(stpb.GetStreamStatusRequest())).store_error == full
                async with websockets.connect(p.ws_url, additional_headers=p.ws_headers) as late:
                    assert await frames_until(late, "store_error") == told
                    await late.send(orjson.dumps({"type": "status"}).decode())
                    assert (await frames_until(late, "status"))["store_error"] == full
                filler.unlink()
                assert await frames_until(early, "store_error") == {"type": "store_error",
                                                                     "message": ""}
                assert (await status(stpb.GetStreamStatusRequest())).store_error == ""
            await eventually(lambda: message_count(db) == 300, timeout=60, interval=0.2)

    asyncio.run(main())


def test_threadline_import_says_the_disk_is_full_and_finishes_once_space_returns(tmp_path,
                                                                                  small_disk):
    paths = transcripts(tmp_path / "projects", files=2, lines=150)
    db = small_disk / "t.db"
    filler = fill(small_disk, leave=1_000_000)
    with subprocess.Popen([sys.executable, "-m", "cli", "import", "--db", str(db),
                           "--json", "--stall-seconds", "60", str(tmp_path / "projects")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],
                                  daemon=True)
        reader.start()
        try:
            first = lines.get(timeout=120)
            assert first == (f"threadline import: database or disk is full at {db}; waiting "
                             "(the import resumes by itself once the store can write)\n")
            filler.unlink()
            out = process.stdout.read()
            process.wait(timeout=120)
            reader.join(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0
    assert json.loads(out.splitlines()[-1])["messages"] == 300
    assert {r["uuid"] for r in stored(db)[0]} == expected_from(paths)[0]
