"""Run the four services as one supervised set of processes (`threadline up`, `import`).

Why processes: the services are CPU-bound in different places (parsing in ingest, protobuf
and SQLite in the store), and separate interpreters use every core instead of sharing one
interpreter lock. Why three and not four: ingest and analysis share a process. Every Python
process that loads gRPC costs about 30 MB, and those two are the pair that moves the most data
between them, while together they use well under one core; they still talk to each other
over gRPC, exactly as under docker compose, where each service has its own container.
The store (the single SQLite writer) and the stream gateway (latency first) run alone.

Each process gets fixed ports (so a restarted one comes back where its peers expect it) and
reports readiness through a small file. A process that dies unexpectedly is restarted with a
growing delay; SIGTERM/SIGINT stop them in reverse order of start.
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

# Processes in start order, each hosting one or more services (analysis before ingest: ingest
# reads as soon as it runs, and its peer should be there).
GROUPS = (("store",), ("stream",), ("analysis", "ingest"))
PORT_OFFSET = {"store": 0, "analysis": 1, "ingest": 2, "stream": 3}
READY_TIMEOUT_SECONDS = 60.0
# Batches are large, short-lived buffers. glibc's default raises its mmap threshold after the
# first such buffer is freed and then serves them from the heap, which it rarely gives back:
# a fixed threshold returns them to the OS as soon as they are freed (about 50 MB less
# resident memory across the services during a bulk import, at no measurable cost).
CHILD_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "131072"}
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
    """One supervised process and the services it hosts."""

    name: str
    services: tuple[str, ...]
    args: list[str]
    ready_file: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    ready: dict = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings: Settings,
                 services: tuple[str, ...] = ("store", "stream", "analysis", "ingest"),
                 follow: bool = True, quiet: bool = False):
        self.settings = settings
        self.follow = follow
        self.quiet = quiet
        self._tmp = tempfile.TemporaryDirectory(prefix="threadline-")
        self.ports = self._assign_ports()
        groups = [tuple(s for s in g if s in services) for g in GROUPS]
        self.children = {"+".join(g): self._child(g) for g in groups if g}
        self._stopping = False

    def _assign_ports(self) -> dict[str, int]:
        s = self.settings
        if s.grpc_port:
            ports = {name: s.grpc_port + offset for name, offset in PORT_OFFSET.items()}
        else:
            ports = dict(zip(PORT_OFFSET, free_ports(len(PORT_OFFSET), s.host), strict=True))
        ports["ws"] = s.ws_port if s.ws_port else free_ports(1, s.ws_host)[0]
        return ports

    def address(self, service: str) -> str:
        return f"{self.settings.host}:{self.ports[service]}"

    def child_of(self, service: str) -> Child:
        return next(c for c in self.children.values() if service in c.services)

    def _child(self, services: tuple[str, ...]) -> Child:
        s = self.settings
        name = "+".join(services)
        ready = Path(self._tmp.name) / f"{name}.ready"
        args = [sys.executable, "-m", "threadline", "serve", *services, "--host", s.host,
                "--store-addr", self.address("store"),
                "--analysis-addr", self.address("analysis"), "--ready-file", str(ready)]
        for service in services:
            args += ["--port", f"{service}={self.ports[service]}"]
        args += ["--db", str(s.db)]  # every child finds the installation's token beside it
        if "stream" in services:
            args += ["--ws-host", s.ws_host, "--ws-port", str(self.ports["ws"])]
        if "ingest" in services:
            for root in s.roots:
                args += ["--root", str(root)]
            if not self.follow:
                args.append("--no-follow")
        return Child(name, services, args, ready)

    def _spawn(self, child: Child) -> None:
        child.ready_file.unlink(missing_ok=True)
        child.started_at = time.monotonic()
        out = subprocess.DEVNULL if self.quiet else None
        env = {**CHILD_ENVIRONMENT, **os.environ,
               "THREADLINE_ANALYSE": "true" if self.settings.analyse else "false"}
        child.process = subprocess.Popen(child.args, stdout=out, stderr=out, env=env,
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
        """Start every process at once; peers reconnect by themselves until all are up."""
        try:
            for child in self.children.values():
                self._spawn(child)
            for child in self.children.values():
                self._wait_ready(child)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.children.values()
                if c.process is not None and c.process.poll() is None]

    def check(self) -> None:
        """Restart any process that died unexpectedly."""
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
