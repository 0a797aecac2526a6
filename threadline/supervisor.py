"""Run the four services as one supervised set of processes (`threadline up`, `import`).

Why processes and not one process: the services are CPU-bound in different places (parsing in
ingest, protobuf and SQLite in the store) and this way they use every core instead of sharing
one interpreter lock; each is exactly what `threadline serve NAME` runs under docker compose,
so the local and the containerised deployment behave the same. The supervisor itself imports
nothing heavy, so it adds little memory.

Each child gets fixed ports (so a restarted child comes back where its peers expect it) and
reports readiness through a small file. A child that dies unexpectedly is restarted with a
growing delay; SIGTERM/SIGINT stop the children in reverse order of start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from threadline.config import Settings

# Start order: each service's downstream peer is up before it.
ORDER = ("store", "analysis", "stream", "ingest")
PORT_OFFSET = {"store": 0, "analysis": 1, "ingest": 2, "stream": 3}
READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


def free_ports(count: int, host: str) -> list[int]:
    """Ports the OS considers free right now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Child:
    name: str
    args: list[str]
    ready_file: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    ready: dict = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings: Settings, services: tuple[str, ...] = ORDER,
                 follow: bool = True, quiet: bool = False):
        self.settings = settings
        self.services = [s for s in ORDER if s in services]
        self.follow = follow
        self.quiet = quiet
        self._tmp = tempfile.TemporaryDirectory(prefix="threadline-")
        self.ports = self._assign_ports()
        self.children = {name: self._child(name) for name in self.services}
        self._stopping = False

    def _assign_ports(self) -> dict[str, int]:
        s = self.settings
        if s.grpc_port:
            ports = {name: s.grpc_port + PORT_OFFSET[name] for name in ORDER}
        else:
            ports = dict(zip(ORDER, free_ports(len(ORDER), s.host), strict=True))
        ports["ws"] = s.ws_port if s.ws_port else free_ports(1, s.ws_host)[0]
        return ports

    def address(self, name: str) -> str:
        return f"{self.settings.host}:{self.ports[name]}"

    def _child(self, name: str) -> Child:
        s = self.settings
        ready = Path(self._tmp.name) / f"{name}.ready"
        args = [sys.executable, "-m", "threadline", "serve", name,
                "--host", s.host, "--port", str(self.ports[name]),
                "--store-addr", self.address("store"),
                "--analysis-addr", self.address("analysis"),
                "--ready-file", str(ready)]
        if name == "store":
            args += ["--db", str(s.db)]
        if name == "stream":
            args += ["--ws-host", s.ws_host, "--ws-port", str(self.ports["ws"])]
        if name == "ingest":
            for root in s.roots:
                args += ["--root", str(root)]
            if not self.follow:
                args.append("--no-follow")
        return Child(name, args, ready)

    def _spawn(self, child: Child) -> None:
        child.ready_file.unlink(missing_ok=True)
        child.started_at = time.monotonic()
        out = subprocess.DEVNULL if self.quiet else None
        child.process = subprocess.Popen(child.args, stdout=out, stderr=out,
                                         start_new_session=True)

    def _wait_ready(self, child: Child) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not child.ready_file.exists():
            if child.process is not None and child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode} "
                                   "before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {READY_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.02)
        child.ready = json.loads(child.ready_file.read_text())

    def start(self) -> None:
        """Start the services: everything but ingest at once, then ingest.

        Peers reconnect by themselves, so the order only matters for ingest, which starts
        reading at once and would otherwise wait out a reconnect backoff.
        """
        try:
            first = [self.children[n] for n in self.services if n != "ingest"]
            for child in first:
                self._spawn(child)
            for child in first:
                self._wait_ready(child)
            if "ingest" in self.children:
                self._spawn(self.children["ingest"])
                self._wait_ready(self.children["ingest"])
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.children.values()
                if c.process is not None and c.process.poll() is None]

    def check(self) -> None:
        """Restart any child that died unexpectedly."""
        if self._stopping:
            return
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                child.restarts += 1
                delay = min(0.2 * 2 ** min(child.restarts, 5), 5.0)
                print(f"threadline: {child.name} exited with {child.process.returncode}; "
                      f"restarting in {delay:.1f} s", file=sys.stderr)
                time.sleep(delay)
                self._spawn(child)
                self._wait_ready(child)

    def run_forever(self) -> None:
        stop = {"now": False}

        def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            while not stop["now"]:
                self.check()
                time.sleep(0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopping = True
        running = [c for c in reversed(list(self.children.values()))
                   if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self._tmp.cleanup()
