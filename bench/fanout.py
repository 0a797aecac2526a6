"""The gateway under many clients: a crowd of WebSocket clients subscribed to every change
while one file is appended steadily, and one client subscribed to a single session whose
latency is measured from the append of each of its lines to the arrival of its frame.

The crowd runs in its own process (`python -m bench.fanout URL COUNT`), so that its reading
costs neither the services nor the measuring client their CPU: it subscribes every client,
prints "ready", reads and discards until its stdin closes, then prints one JSON line with
how many frames its clients received and how each of them that was closed was closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
import websockets

from bench.corpus import live_line
from threadline.v1 import store_pb2, store_pb2_grpc

# Handshakes opened at once while the crowd connects (the gateway's backlog is finite).
CONNECT_BATCH = 50
# Where the crowd process finds its handshake headers (the installation's token).
HEADERS_VARIABLE = "THREADLINE_BENCH_WS_HEADERS"


def connect(ws_url: str, headers: dict[str, str]):
    """Every bench WebSocket client connects here (one place for handshake headers)."""
    return websockets.connect(ws_url, max_size=None, open_timeout=30, additional_headers=headers)


async def subscribe(ws, **filter: str) -> None:
    await ws.send(orjson.dumps({"type": "subscribe", **filter}).decode())
    while orjson.loads(await ws.recv())["type"] != "subscribed":
        pass


# -- the crowd (its own process) ---------------------------------------------------------------


async def _crowd(ws_url: str, count: int, headers: dict[str, str]) -> dict:
    received = [0] * count
    closed: Counter[str] = Counter()

    async def open_one():
        ws = await connect(ws_url, headers)
        await subscribe(ws)
        return ws

    async def drain(i: int, ws) -> None:
        try:
            async for _ in ws:
                received[i] += 1
        except websockets.ConnectionClosed as e:
            closed[str(e.rcvd.code if e.rcvd else "no close frame")] += 1

    clients = []
    for start in range(0, count, CONNECT_BATCH):
        clients += await asyncio.gather(*(open_one()
                                          for _ in range(start, min(count, start + CONNECT_BATCH))))
    readers = [asyncio.create_task(drain(i, ws)) for i, ws in enumerate(clients)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    # Aborted, not closed: 300 closing handshakes with a backlogged gateway could take long.
    for ws in clients:
        ws.transport.abort()
    return {"frames": sum(received), "closed": dict(closed)}


def crowd_main(argv: list[str]) -> int:
    ws_url, count = argv[0], int(argv[1])
    # The handshake header comes through the environment, not argv, where `ps` would show it.
    headers = orjson.loads(os.environ.get(HEADERS_VARIABLE, "{}"))
    print(orjson.dumps(asyncio.run(_crowd(ws_url, count, headers))).decode(), flush=True)
    return 0


# -- the measurement ---------------------------------------------------------------------------


@dataclass
class FanoutResult:
    clients: int
    busy_lines: int  # lines appended to the busy session during the measurement
    latencies: list[float]  # ms, one per filtered frame that arrived
    # ms, the part of each latency after the store's change feed handed the change out
    after_commit: list[float]
    appended: int  # filtered lines appended
    crowd_frames: int = 0
    crowd_closed: dict[str, int] = field(default_factory=dict)
    filtered_close: str | None = None


class BusyWriter(threading.Thread):
    """Appends `rate` lines per second to one session's file, in small bursts."""

    def __init__(self, path: Path, rate: float):
        super().__init__(daemon=True)
        self.path = path
        self.rate = rate
        self.lines = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        rng = random.Random(5)
        step = 0.02
        started = time.monotonic()
        with self.path.open("ab") as out:
            while not self.stop_event.wait(step):
                due = int((time.monotonic() - started) * self.rate)
                chunk = []
                while self.lines < due:
                    chunk.append(live_line(rng, self.path.stem, "/home/dev/fanout")[1])
                    self.lines += 1
                if chunk:
                    out.write(b"".join(chunk))
                    out.flush()


async def _filtered(ws_url: str, path: Path, appends: int, gap: float, busy: BusyWriter,
                    result: FanoutResult, committed: dict[str, float],
                    headers: dict[str, str]) -> None:
    rng = random.Random(13)
    sent: dict[str, float] = {}
    async with connect(ws_url, headers) as ws:
        await subscribe(ws, session=path.stem)

        async def read() -> None:
            try:
                async for frame in ws:
                    arrived = time.perf_counter()
                    uid = orjson.loads(frame).get("message", {}).get("uuid")
                    if uid in sent:
                        result.latencies.append((arrived - sent.pop(uid)) * 1000)
                        if uid in committed:
                            result.after_commit.append((arrived - committed[uid]) * 1000)
                        if not sent and result.appended == appends:
                            return
            except websockets.ConnectionClosed as e:
                result.filtered_close = str(e.rcvd.code if e.rcvd else "no close frame")

        reader = asyncio.create_task(read())
        busy.start()
        await asyncio.sleep(1.0)  # the crowd's traffic is flowing before the first sample
        with path.open("ab") as out:
            for _ in range(appends):
                uid, line = live_line(rng, path.stem, "/home/dev/fanout")
                out.write(line)
                out.flush()
                sent[uid] = time.perf_counter()
                result.appended += 1
                await asyncio.sleep(gap)
        busy.stop_event.set()
        # Late frames still count (with their real latency); lost ones are reported.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 30)
        reader.cancel()


class CommitFollower(threading.Thread):
    """Follows the store's change feed for one session and notes when each message arrives,
    which splits a latency into the part before the gateway (ingest and commit) and its own."""

    def __init__(self, store_addr: str, session: str):
        super().__init__(daemon=True)
        self.store_addr = store_addr
        self.session = session
        self.arrived: dict[str, float] = {}
        self.following = threading.Event()
        self._call = None

    def run(self) -> None:
        with grpc.insecure_channel(self.store_addr) as channel:
            stub = store_pb2_grpc.StoreServiceStub(channel)
            head = stub.GetStats(store_pb2.GetStatsRequest(), timeout=10).last_sequence
            self._call = stub.Changes(store_pb2.ChangesRequest(
                since_sequence=head, follow=True, session_id=self.session))
            self.following.set()
            with contextlib.suppress(grpc.RpcError):
                for batch in self._call:
                    now = time.perf_counter()
                    for change in batch.changes:
                        if change.HasField("message"):
                            self.arrived[change.message.uuid] = now

    def stop(self) -> None:
        if self._call is not None:
            self._call.cancel()
        self.join(10)


def measure(ws_url: str, store_addr: str, folder: Path, clients: int, rate: float, appends: int,
            gap: float, headers: dict[str, str]) -> FanoutResult:
    """Run the scenario against a running gateway whose ingest watches `folder`."""
    crowd = subprocess.Popen([sys.executable, "-m", "bench.fanout", ws_url, str(clients)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, HEADERS_VARIABLE: orjson.dumps(headers).decode()})
    try:
        if crowd.stdout.readline().strip() != "ready":
            raise RuntimeError("the crowd of WebSocket clients could not subscribe")
        busy = BusyWriter(folder / "bench-busy-session.jsonl", rate)
        result = FanoutResult(clients, 0, [], [], 0)
        follower = CommitFollower(store_addr, "bench-fanout-session")
        follower.start()
        follower.following.wait(10)
        asyncio.run(_filtered(ws_url, folder / "bench-fanout-session.jsonl", appends, gap,
                              busy, result, follower.arrived, headers))
        follower.stop()
        busy.stop_event.set()
        busy.join()
        result.busy_lines = busy.lines
        crowd.stdin.close()
        summary = orjson.loads(crowd.stdout.readline())
        result.crowd_frames, result.crowd_closed = summary["frames"], summary["closed"]
        crowd.wait(30)
    finally:
        if crowd.poll() is None:
            crowd.kill()
            crowd.wait()
    return result


if __name__ == "__main__":
    raise SystemExit(crowd_main(sys.argv[1:]))
