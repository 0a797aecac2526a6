"""The ingest service end to end against a stand-in for analysis and the store.

The stand-in is a real gRPC server on port 0 implementing `AnalysisService.Process` (records
each batch and acknowledges it, as analysis does once the store committed it) and
`StoreService.GetOffsets` (answers from what it acknowledged): a test double at the process
boundary, since analysis and the store are separate services.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import orjson
import pytest

from services.ingest import server as ingest_server
from services.ingest import watcher as ingest_watcher
from threadline import auth, bootstrap, config
from threadline.v1 import (
    analysis_pb2_grpc,
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
)


def line(i: int, text: str = "") -> bytes:
    return orjson.dumps({"type": "user", "uuid": f"u{i}", "sessionId": "s1",
                         "message": {"role": "user", "content": text or f"hello {i}"}}) + b"\n"


class StandIn(analysis_pb2_grpc.AnalysisServiceServicer, store_pb2_grpc.StoreServiceServicer):
    def __init__(self) -> None:
        self.received: list[common_pb2.Batch] = []
        self.acked: list[common_pb2.Batch] = []
        self.offsets: dict[str, common_pb2.SourceOffset] = {}
        # Abort the stream when this many batches have been received (that one is not acked).
        self.break_at: int | None = None
        # Failed GetOffsets calls before answering (the store is still starting).
        self.offsets_failures = 0
        self.release = asyncio.Event()
        self.release.set()
        self.streams = 0

    async def Process(self, request_iterator, context):
        self.streams += 1
        queue: asyncio.Queue = asyncio.Queue()
        broken = False

        async def receive() -> None:
            # Read ahead of the acknowledgements, as a real peer's buffers would.
            nonlocal broken
            async for batch in request_iterator:
                self.received.append(batch)
                if self.break_at is not None and len(self.received) >= self.break_at:
                    self.break_at = None
                    broken = True
                    break
                queue.put_nowait(batch)
            queue.put_nowait(None)

        reader = asyncio.create_task(receive())
        try:
            while (batch := await queue.get()) is not None:
                await self.release.wait()
                self.acked.append(batch)
                for chunk in batch.chunks:
                    self.offsets[chunk.position.source.path] = chunk.position
                yield common_pb2.BatchAck(batch_id=batch.batch_id,
                                          offsets=[c.position for c in batch.chunks])
            if broken:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "store restarted")
        finally:
            reader.cancel()

    async def GetOffsets(self, request, context):
        if self.offsets_failures > 0:
            self.offsets_failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "starting")
        return store_pb2.GetOffsetsResponse(offsets=list(self.offsets.values()))

    # What the store would hold: every acknowledged line, by (path, byte offset).
    def stored(self) -> dict[tuple[str, int], tuple[int, bytes | str]]:
        rows: dict[tuple[str, int], tuple[int, bytes | str]] = {}
        for batch in self.acked:
            for chunk in batch.chunks:
                for m in chunk.messages:
                    self._put(rows, m.source, m.raw)
                for e in chunk.errors:
                    self._put(rows, e.source, e.reason)
        return rows

    @staticmethod
    def _put(rows, source, value) -> None:
        key = (source.path, source.byte_offset)
        row = (source.line_number, value)
        # A line sent twice must be the same line both times (dedupe by key in the store).
        assert rows.setdefault(key, row) == row
        rows[key] = row

    def acked_messages(self) -> list[common_pb2.Message]:
        return [m for b in self.acked for c in b.chunks for m in c.messages]


# The stand-in takes Process (a write) only from callers with the installation's token.
TOKEN = "ingest-test-token"


async def start_stand_in() -> tuple[bootstrap.Service, StandIn]:
    stand_in = StandIn()
    service = await bootstrap.create_server(
        [lambda s: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(stand_in, s),
         lambda s: store_pb2_grpc.add_StoreServiceServicer_to_server(stand_in, s)],
        ["threadline.v1.AnalysisService", "threadline.v1.StoreService"],
        security=auth.Security(token=TOKEN))
    return service, stand_in


def settings_for(root: Path, port: int, **changes) -> config.Settings:
    base = config.resolve({"roots": [str(root)], "port": 0,
                           "store_addr": f"127.0.0.1:{port}",
                           "analysis_addr": f"127.0.0.1:{port}", "token": TOKEN},
                          environ={})
    return base.replace(**changes)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


def expected_rows(path: Path) -> dict[tuple[str, int], tuple[int, bytes]]:
    rows, offset = {}, 0
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if raw.strip():
            rows[(str(path), offset)] = (number, raw.rstrip(b"\n"))
        offset += len(raw)
    return rows


def run(coro_fn) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


def project(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "projects"
    folder = root / "-home-u-proj"
    folder.mkdir(parents=True)
    return root, folder


def test_bulk_read_then_idle(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    main = folder / "s1.jsonl"
    main.write_bytes(b"".join(line(i) for i in range(1, 1201)))
    agent = folder / "s1" / "subagents" / "agent-a1.jsonl"
    agent.parent.mkdir(parents=True)
    agent.write_bytes(b"".join(line(i) for i in range(5000, 5010)))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        stand_in.offsets_failures = 2
        running = await ingest_server.start(
            settings_for(root, service.port, batch_lines=100, follow=False))
        try:
            await asyncio.wait_for(running.wait_idle(), 20)
            assert stand_in.stored() == {**expected_rows(main), **expected_rows(agent)}
            assert all(len(c.messages) <= 100 for b in stand_in.acked for c in b.chunks)
            assert all(sum(len(c.messages) for c in b.chunks) <= 100 for b in stand_in.acked)
            ids = [b.batch_id for b in stand_in.received]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            messages = stand_in.acked_messages()
            assert {m.project_key for m in messages} == {"-home-u-proj"}
            chunk = [c for b in stand_in.acked for c in b.chunks
                     if c.position.source.path == str(main)][-1]
            assert chunk.position.source.project_key == "-home-u-proj"
            assert chunk.position.source.head_length == 1024
            assert len(chunk.position.source.head_sha256) == 64

            async with bootstrap.channel(f"127.0.0.1:{running.port}") as channel:
                status = await ingest_pb2_grpc.IngestServiceStub(channel).GetStatus(
                    ingest_pb2.GetIngestStatusRequest())
            assert status.idle and status.batches_in_flight == 0
            assert status.lines_read == 1210
            assert list(status.roots) == [str(root)]
            files = {f.source.path: f for f in status.files}
            assert files[str(main)].size == main.stat().st_size
            assert files[str(main)].read_offset == files[str(main)].durable_offset \
                == main.stat().st_size
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_live_appends_and_partial_lines(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(line(1))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(root, service.port))
        try:
            await asyncio.wait_for(running.wait_idle(), 10)
            with path.open("ab") as f:
                f.write(line(2))
            await until(lambda: len(stand_in.acked_messages()) == 2)

            second = line(3)
            with path.open("ab") as f:
                f.write(second[:20])
            # Wait until the watcher reported the half line and ingest looked at it.
            tail = running.ingestor.files[str(path)]
            await until(lambda: tail.size == path.stat().st_size)
            await asyncio.wait_for(running.wait_idle(), 10)
            assert tail.offset == len(line(1)) + len(line(2))
            assert len(stand_in.acked_messages()) == 2
            with path.open("ab") as f:
                f.write(second[20:])
            await until(lambda: len(stand_in.acked_messages()) == 3)

            # A new session file, in a new subagents folder.
            agent = folder / "s1" / "subagents" / "agent-a9.jsonl"
            agent.parent.mkdir(parents=True)
            agent.write_bytes(line(9))
            await until(lambda: len(stand_in.acked_messages()) == 4)
            await asyncio.wait_for(running.wait_idle(), 10)
            assert stand_in.stored() == {**expected_rows(path), **expected_rows(agent)}
            assert len(stand_in.acked_messages()) == 4  # each line exactly once
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_truncation_and_replacement_are_sent_as_resets(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(line(1) + line(2))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(root, service.port))
        try:
            await asyncio.wait_for(running.wait_idle(), 10)
            path.write_bytes(line(3))
            await until(lambda: any(c.reset for b in stand_in.acked for c in b.chunks))
            reset = [c for b in stand_in.acked for c in b.chunks if c.reset][0]
            assert [m.uuid for m in reset.messages] == ["u3"]
            assert reset.messages[0].source.byte_offset == 0

            tmp = folder / "s1.tmp"
            tmp.write_bytes(line(4) + line(5))
            os.replace(tmp, path)
            await until(lambda: sum(c.reset for b in stand_in.acked for c in b.chunks) == 2)
            last = [c for b in stand_in.acked for c in b.chunks if c.reset][-1]
            assert [m.uuid for m in last.messages] == ["u4", "u5"]
            assert last.position.offset == path.stat().st_size
            st = path.stat()
            assert last.position.source.identity == f"{st.st_dev}:{st.st_ino}"
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_huge_and_bad_lines_go_through(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(line(1) + b"{not json\n" + line(3, "y" * (20 * 1024 * 1024))
                     + b'{"a": "\xff"}\n' + line(5))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(root, service.port, follow=False))
        try:
            await asyncio.wait_for(running.wait_idle(), 20)
            rows = stand_in.stored()
            assert set(rows) == set(expected_rows(path))
            assert [m.uuid for m in stand_in.acked_messages()] == ["u1", "u3", "u5"]
            errors = [e for b in stand_in.acked for c in b.chunks for e in c.errors]
            assert [(e.reason, e.source.line_number, e.source.path, e.project_key)
                    for e in errors] == [("invalid_json", 2, str(path), "-home-u-proj"),
                                         ("invalid_utf8", 4, str(path), "-home-u-proj")]
            assert errors[0].source.byte_offset == len(line(1))
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_broken_stream_resends_everything_unacknowledged(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    paths = [folder / f"s{n}.jsonl" for n in range(3)]
    for n, p in enumerate(paths):
        p.write_bytes(b"".join(line(n * 1000 + i) for i in range(300)))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        stand_in.break_at = 4
        running = await ingest_server.start(
            settings_for(root, service.port, batch_lines=50, max_in_flight=3))
        try:
            await asyncio.wait_for(running.wait_idle(), 20)
            assert stand_in.streams == 2
            expected = {}
            for p in paths:
                expected.update(expected_rows(p))
            assert stand_in.stored() == expected
            # Appends after the reconnect still flow.
            with paths[0].open("ab") as f:
                f.write(line(99999))
            await until(lambda: any(m.uuid == "u99999" for m in stand_in.acked_messages()))
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_restart_resumes_from_durable_offsets(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(1, 101)))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        settings = settings_for(root, service.port, batch_lines=30)
        first = await ingest_server.start(settings)
        await asyncio.wait_for(first.wait_idle(), 10)
        await first.stop()
        durable = path.stat().st_size
        with path.open("ab") as f:
            f.write(line(101) + line(102))
        sent_before = len(stand_in.received)

        second = await ingest_server.start(settings)
        try:
            await asyncio.wait_for(second.wait_idle(), 10)
            again = [m for b in stand_in.received[sent_before:] for c in b.chunks
                     for m in c.messages]
            assert [m.uuid for m in again] == ["u101", "u102"]
            assert again[0].source.byte_offset == durable
            assert again[0].source.line_number == 101
            assert stand_in.stored() == expected_rows(path)
        finally:
            await second.stop()
            await service.stop(0)

    run(body)


def test_restart_after_a_rewrite_past_the_durable_offset_reads_again(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(1, 41)))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        settings = settings_for(root, service.port)
        first = await ingest_server.start(settings)
        await asyncio.wait_for(first.wait_idle(), 10)
        await first.stop()
        # Rewritten through the same inode while ingest was down: same head, larger.
        with path.open("r+b") as f:
            f.truncate(0)
            f.write(b"".join(line(i) for i in range(1, 21))
                    + b"".join(line(i, f"again {i}") for i in range(21, 61)))
        sent_before = len(stand_in.received)

        second = await ingest_server.start(settings)
        try:
            await asyncio.wait_for(second.wait_idle(), 10)
            chunks = [c for b in stand_in.received[sent_before:] for c in b.chunks]
            assert chunks[0].reset
            again = [m for c in chunks for m in c.messages]
            assert [m.uuid for m in again] == [f"u{i}" for i in range(1, 61)]
        finally:
            await second.stop()
            await service.stop(0)

    run(body)


def test_a_line_over_the_limit_is_reported_and_other_files_go_on(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    big, other = folder / "big.jsonl", folder / "other.jsonl"
    huge = line(2, "y" * (5 * 1024 * 1024))
    big.write_bytes(line(1) + huge[:-1])  # still being written: no newline yet
    other.write_bytes(b"")

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(
            settings_for(root, service.port, max_line_bytes=1024 * 1024))
        try:
            await until(lambda: [m.uuid for m in stand_in.acked_messages()] == ["u1"])
            with other.open("ab") as f:
                f.write(line(7))
            await until(lambda: [m.uuid for m in stand_in.acked_messages()] == ["u1", "u7"])
            with big.open("ab") as f:
                f.write(b"\n" + line(3))
            await until(lambda: len(stand_in.acked_messages()) == 3)
            errors = [e for b in stand_in.acked for c in b.chunks for e in c.errors]
            assert [(e.reason, e.source.path, e.source.line_number, e.source.byte_offset,
                     e.source.byte_length) for e in errors] == [
                ("line_too_long", str(big), 2, len(line(1)), len(huge) - 1)]
            assert stand_in.acked_messages()[2].source.line_number == 3
            await asyncio.wait_for(running.wait_idle(), 10)
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_live_a_quiet_last_line_without_newline_is_stored_once(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(line(1) + line(2)[:-1])
    cut = folder / "s2.jsonl"
    cut.write_bytes(line(5)[:30])

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(
            settings_for(root, service.port, tail_quiet_seconds=0.2))
        try:
            await until(lambda: sorted(m.uuid for m in stand_in.acked_messages()) == ["u1", "u2"])
            await until(lambda: any(e.reason == "truncated_tail" and e.source.path == str(cut)
                                    for b in stand_in.acked for c in b.chunks for e in c.errors))
            await asyncio.wait_for(running.wait_idle(), 10)
            with path.open("ab") as f:
                f.write(b"\n" + line(3))
            await until(lambda: "u3" in [m.uuid for m in stand_in.acked_messages()])
            await asyncio.wait_for(running.wait_idle(), 10)
            # u2 went twice (reported when quiet, then complete): same bytes, same place.
            rows = stand_in.stored()
            assert {k: v for k, v in rows.items() if k[0] == str(path)} == expected_rows(path)
            assert running.ingestor.files[str(path)].offset == path.stat().st_size
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_import_mode_reports_truncated_tail(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(line(1) + line(2)[:25])

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(root, service.port, follow=False))
        try:
            await asyncio.wait_for(running.wait_idle(), 10)
            assert running.watcher is None
            errors = [e for b in stand_in.acked for c in b.chunks for e in c.errors]
            assert [(e.reason, e.source.line_number, e.source.byte_offset) for e in errors] == [
                ("truncated_tail", 2, len(line(1)))]
            # The cut line is reported but its bytes are not committed as read: if the file
            # grows after all, the completed line is read whole.
            assert stand_in.acked[-1].chunks[-1].position.offset == len(line(1))
            status = await running.status()
            assert status.idle
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_backpressure_limits_unacknowledged_batches(tmp_path: Path) -> None:
    root, folder = project(tmp_path)
    path = folder / "s1.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(200)))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        stand_in.release.clear()
        running = await ingest_server.start(
            settings_for(root, service.port, batch_lines=10, max_in_flight=2))
        try:
            await until(lambda: len(stand_in.received) == 2)
            status = await running.status()
            assert status.batches_in_flight == 2 and not status.idle
            await asyncio.sleep(0.1)
            assert len(stand_in.received) == 2
            stand_in.release.set()
            await asyncio.wait_for(running.wait_idle(), 10)
            assert len(stand_in.acked) == 20
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_root_created_later_is_watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_watcher, "ROOT_POLL_SECONDS", 0.05)
    root = tmp_path / "projects"

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(root, service.port))
        try:
            await asyncio.wait_for(running.wait_idle(), 10)
            (root / "p").mkdir(parents=True)
            (root / "p" / "s.jsonl").write_bytes(line(1))
            await until(lambda: len(stand_in.acked_messages()) == 1)
            with (root / "p" / "s.jsonl").open("ab") as f:
                f.write(line(2))
            await until(lambda: len(stand_in.acked_messages()) == 2)
            assert stand_in.acked_messages()[0].project_key == "p"
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_a_single_file_root_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(line(1))

    async def body() -> None:
        service, stand_in = await start_stand_in()
        running = await ingest_server.start(settings_for(path, service.port))
        try:
            def uuids() -> list[str]:
                return [m.uuid for m in stand_in.acked_messages()]

            await until(lambda: uuids() == ["u1"])
            with path.open("ab") as out:
                out.write(line(2))
            await until(lambda: uuids() == ["u1", "u2"])
        finally:
            await running.stop()
            await service.stop(0)

    run(body)


def test_unreadable_folders_and_files_are_reported_and_the_watch_goes_on() -> None:
    # A real other user's view: run as root, the ingest process drops to `nobody` (see
    # ingest_process.py), for whom mode 000 means unreadable. The rescan is an hour away:
    # only the watcher can bring the appends in.
    base = Path(tempfile.mkdtemp(prefix="threadline-unreadable-"))
    base.chmod(0o755)
    root = base / "projects"
    (root / "proj").mkdir(parents=True)
    live = root / "proj" / "s1.jsonl"
    live.write_bytes(line(1))
    secret = root / "secret"
    secret.mkdir()
    (secret / "hidden.jsonl").write_bytes(line(90))
    locked = root / "proj" / "locked.jsonl"
    locked.write_bytes(line(91))
    secret.chmod(0)
    locked.chmod(0)

    async def body() -> None:
        service, stand_in = await start_stand_in()
        env = {**os.environ, "THREADLINE_ROOTS": str(root), "THREADLINE_PORT": "0",
               "THREADLINE_STORE_ADDR": f"127.0.0.1:{service.port}",
               "THREADLINE_ANALYSIS_ADDR": f"127.0.0.1:{service.port}",
               "THREADLINE_RESCAN_SECONDS": "3600", "THREADLINE_TOKEN": TOKEN}
        child = subprocess.Popen([sys.executable, str(Path(__file__).parent / "ingest_process.py")],
                                 env=env, cwd=Path(__file__).parent.parent)

        def uuids() -> list[str]:
            return sorted(m.uuid for m in stand_in.acked_messages())

        def problems() -> list[tuple[str, str]]:
            return sorted((e.source.path, e.reason) for b in stand_in.acked for c in b.chunks
                          for e in c.errors)

        try:
            await until(lambda: uuids() == ["u1"], 20)
            await until(lambda: problems() == [(str(locked), "unreadable"),
                                              (str(secret), "unreadable")], 20)
            with live.open("ab") as f:
                f.write(line(2))
            await until(lambda: uuids() == ["u1", "u2"], 20)
            # A new project beside the unreadable folder is watched too.
            (root / "proj2").mkdir()
            (root / "proj2" / "s.jsonl").write_bytes(line(3))
            await until(lambda: uuids() == ["u1", "u2", "u3"], 20)
            with (root / "proj2" / "s.jsonl").open("ab") as f:
                f.write(line(4))
            await until(lambda: uuids() == ["u1", "u2", "u3", "u4"], 20)
            with live.open("ab") as f:
                f.write(line(5))
            await until(lambda: "u5" in uuids(), 20)
            # A folder that becomes unreadable while watched.
            late = root / "proj" / "late"
            late.mkdir()
            late.chmod(0)
            with live.open("ab") as f:
                f.write(line(6))
            await until(lambda: "u6" in uuids(), 20)
            with live.open("ab") as f:
                f.write(line(7))
            await until(lambda: "u7" in uuids(), 20)
            # Found again by each scan, reported once.
            await until(lambda: (str(late), "unreadable") in problems(), 20)
            assert problems() == sorted([(str(locked), "unreadable"), (str(secret), "unreadable"),
                                         (str(late), "unreadable")])
            # Readable again: its transcripts are read and followed.
            secret.chmod(0o755)
            await until(lambda: "u90" in uuids(), 20)
            with (secret / "hidden.jsonl").open("ab") as f:
                f.write(line(92))
            await until(lambda: "u92" in uuids(), 20)
            assert child.poll() is None
        finally:
            child.terminate()
            child.wait(10)
            await service.stop(0)

    try:
        run(body)
    finally:
        for folder in (secret, root / "proj" / "late"):
            if folder.exists():
                folder.chmod(0o755)
        locked.chmod(0o644)
        import shutil
        shutil.rmtree(base)
