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
growing delay, reset once it has stayed up for `HEALTHY_SECONDS`; one that never gets ready is
killed and retried the same way. `check()` only moves each child's state along (starting ->
running -> waiting to restart -> starting) and never waits, so one child's restart never holds
up the others, the caller's loop, or a stop.

Nothing is left behind: every child is bound to this process (lifeline.py), so it stops when
the supervisor dies, however it dies; `StopSignals` turns SIGTERM, SIGINT and SIGHUP (the
terminal closed) into a clean stop, in reverse order of start. The supervisor holds the
database's writer lock (dblock.py) for the store it runs.
"""

from __future__ import annotations

import contextlib
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

from threadline import dblock, lifeline
from threadline.config import Settings

# Processes in start order, each hosting one or more services (analysis before ingest: ingest
# reads as soon as it runs, and its peer should be there).
GROUPS = (("store",), ("stream",), ("analysis", "ingest"))
PORT_OFFSET = {"store": 0, "analysis": 1, "ingest": 2, "stream": 3}
READY_TIMEOUT_SECONDS = 60.0
# A child up this long has recovered: its next restart starts again from the shortest delay.
HEALTHY_SECONDS = 30.0
RESTART_DELAY_SECONDS = 0.2  # doubled with each restart in a row, up to the maximum
MAX_RESTART_DELAY_SECONDS = 5.0
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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived; raised in the main thread wherever it was (like
    KeyboardInterrupt), so the caller's `finally` stops the children."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP (the terminal was closed) raise `Interrupted` from now on.

    `up` and `import` install this first, before any child exists: a signal at any instant
    stops them cleanly. Once stopping is under way (`stopping = True`) further signals are
    ignored, so the stop itself runs to the end.
    """

    def __init__(self) -> None:
        self.stopping = False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:  # noqa: ARG002 - signal handler signature
        if not self.stopping:
            raise Interrupted(signum)


STARTING, RUNNING, WAITING = "starting", "running", "waiting to restart"


@dataclass
class Child:
    """One supervised process and the services it hosts."""

    name: str
    services: tuple[str, ...]
    args: list[str]
    ready_file: Path
    process: subprocess.Popen | None = None
    state: str = STARTING
    restarts: int = 0
    # Failed starts and exits since the child was last healthy: they set the restart delay.
    failures: int = 0
    started_at: float = 0.0
    ready_at: float = 0.0
    restart_at: float = 0.0
    ready: dict = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings: Settings,
                 services: tuple[str, ...] = ("store", "stream", "analysis", "ingest"),
                 follow: bool = True, quiet: bool = False, command: str = "threadline",
                 signals: StopSignals | None = None):
        self.settings = settings
        self.follow = follow
        self.quiet = quiet
        self.command = command  # who holds the database, in the lock's error message
        self.signals = signals
        self.lock: dblock.DatabaseLock | None = None
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
        # Bound to this process (lifeline.py): it stops when the supervisor dies.
        args = [*lifeline.command(os.getpid(), "cli"), "serve", *services,
                "--host", s.host, "--store-addr", self.address("store"),
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
        child.state = STARTING
        out = subprocess.DEVNULL if self.quiet else None
        env = {**CHILD_ENVIRONMENT, **os.environ,
               "THREADLINE_ANALYSE": "true" if self.settings.analyse else "false"}
        # The store inherits the database lock: held until the store is gone, even if the
        # supervisor dies first (dblock.py).
        lock_fd = self.lock.fd if self.lock is not None else None
        inherited = (lock_fd,) if lock_fd is not None and "store" in child.services else ()
        child.process = subprocess.Popen(child.args, stdout=out, stderr=out, env=env,
                                         start_new_session=True, pass_fds=inherited)

    def _startup_failure(self, child: Child, now: float) -> str | None:
        """For a starting child: why it failed to get ready (None: ready, or not yet)."""
        if child.ready_file.exists():
            child.ready = json.loads(child.ready_file.read_text())
            child.state, child.ready_at = RUNNING, now
            return None
        code = child.process.poll() if child.process is not None else None
        if code is not None:
            return f"exited with {code} before it was ready"
        if now - child.started_at > READY_TIMEOUT_SECONDS:
            self._kill(child)
            return f"not ready after {READY_TIMEOUT_SECONDS:.0f} s; killed it"
        return None

    def start(self) -> None:
        """Take the database, then start every process at once; peers reconnect by themselves
        until all are up. Raises dblock.DatabaseLocked, or RuntimeError if a process fails to
        get ready."""
        try:
            if any("store" in c.services for c in self.children.values()):
                self.lock = dblock.acquire(self.settings.db, self.command)
            for child in self.children.values():
                self._spawn(child)
            while True:
                now = time.monotonic()
                for child in self.children.values():
                    if child.state == STARTING:
                        failure = self._startup_failure(child, now)
                        if failure:
                            raise RuntimeError(f"{child.name} {failure}")
                if all(c.state == RUNNING for c in self.children.values()):
                    return
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.children.values()
                if c.process is not None and c.process.poll() is None]

    def check(self) -> None:
        """Move each process along: notice it got ready, or died, or never got ready, and
        restart it when its delay is over. Never waits."""
        if self._stopping:
            return
        now = time.monotonic()
        for child in self.children.values():
            if child.state == STARTING:
                failure = self._startup_failure(child, now)
                if failure:
                    self._restart_later(child, now, failure)
                elif child.state == RUNNING and child.restarts:
                    print(f"threadline: {child.name} is running again (pid "
                          f"{child.process.pid})", file=sys.stderr, flush=True)
            elif child.state == RUNNING:
                code = child.process.poll()
                if code is not None:
                    if now - child.ready_at >= HEALTHY_SECONDS:
                        child.failures = 0
                    self._restart_later(child, now, f"exited with {code}")
            elif child.state == WAITING and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def _restart_later(self, child: Child, now: float, reason: str) -> None:
        child.failures += 1
        delay = min(RESTART_DELAY_SECONDS * 2 ** min(child.failures, 5),
                    MAX_RESTART_DELAY_SECONDS)
        child.state, child.restart_at = WAITING, now + delay
        print(f"threadline: {child.name} {reason}; restarting in {delay:.1f} s",
              file=sys.stderr, flush=True)

    def run_forever(self) -> None:
        """Supervise until a stop signal (see StopSignals), then stop everything."""
        try:
            while True:
                self.check()
                time.sleep(0.2)
        except Interrupted:
            pass
        finally:
            self.stop()

    @staticmethod
    def _kill(child: Child) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after a grace period), in reverse order
        of start, then release the database."""
        self._stopping = True
        if self.signals is not None:
            self.signals.stopping = True
        running = [c for c in reversed(list(self.children.values()))
                   if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill(child)
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self._tmp.cleanup()
