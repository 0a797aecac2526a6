"""Supervision with real processes and real signals: nothing is left behind, nothing stops.

`threadline up` and `import` run as subprocesses on free ports with a tmp database; the tests
send them real signals, then look at the process table (psutil) and the ports.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.corpus import generate
from services.store.writer import Writer
from threadline import config, dblock, supervisor
from threadline.supervisor import Supervisor, free_ports

PYTHON = [sys.executable, "-m", "cli"]


def environment() -> dict[str, str]:
    """This environment without threadline settings (the tests give their own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}


def consecutive_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free right now."""
    for _ in range(200):
        first = random.randint(20_000, 60_000)
        if all(port_free(p) for p in range(first, first + count)):
            return first
    raise AssertionError("no free port range")


def port_free(port: int) -> bool:
    """Whether a server could listen on it now (as servers do, connections of the last one
    still in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie holds no port or file: it counts as gone)."""
    running = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running


def command_line(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def matching(text: str) -> list[psutil.Process]:
    """Processes whose command line contains `text`."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if text in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return alive(found)


def wait_gone(processes: list[psutil.Process], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(processes):
        if time.monotonic() > deadline:
            left = [command_line(p)[:120] for p in alive(processes)]
            raise AssertionError(f"left behind: {left}")
        time.sleep(0.1)


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not met in time"
        time.sleep(0.05)


class Up:
    """`threadline up` as a subprocess, on its own ports, with its output in files."""

    def __init__(self, tmp_path: Path, grpc_port: int | None = None,
                 ws_port: int | None = None):
        self.tmp = tmp_path
        self.grpc_port = grpc_port or consecutive_ports(4)
        self.ws_port = ws_port or free_ports(1, "127.0.0.1")[0]
        self.db = tmp_path / "threadline.db"
        (tmp_path / "root").mkdir(exist_ok=True)
        self.out = tmp_path / f"up-{self.grpc_port}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [*PYTHON, "up", "--db", str(self.db), "--root", str(tmp_path / "root"),
                 "--grpc-port", str(self.grpc_port), "--ws-port", str(self.ws_port)],
                stdout=out, stderr=err, env=environment())

    @property
    def ports(self) -> list[int]:
        return [*range(self.grpc_port, self.grpc_port + 4), self.ws_port]

    def wait_running(self) -> None:
        def running():
            assert self.process.poll() is None, self.err.read_text()
            return "threadline is running" in self.out.read_text()
        wait_for(running, what="threadline up running")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def ours(self) -> list[psutil.Process]:
        """Every process of this instance, found by the store address all of them are given
        (children and the follower alike), even those no longer below `up`."""
        return matching(f"127.0.0.1:{self.grpc_port} ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        wait_gone(self.ours())


@pytest.fixture
def cleanup():
    """Kills whatever a failed test left behind, so one failure does not cascade."""
    started: list[Up] = []
    yield started
    for up in started:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
        for p in up.ours():
            p.kill()


def check_nothing_left(up: Up, processes: list[psutil.Process]) -> None:
    wait_gone(processes)
    wait_gone(up.ours())
    up.process.wait(30)
    busy = [p for p in up.ports if not port_free(p)]
    assert not busy, f"ports still held: {busy}"


# --- children die with their parent ------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP],
                         ids=["SIGKILL", "SIGHUP-terminal-closed"])
def test_up_killed_leaves_nothing_behind_and_the_next_up_starts(tmp_path, cleanup, sig):
    up = Up(tmp_path)
    cleanup.append(up)
    up.wait_running()
    children = up.descendants()
    names = " ".join(command_line(p) for p in children)
    assert "serve store" in names and "services.analysis.follower" in names
    up.process.send_signal(sig)
    check_nothing_left(up, children)

    again = Up(tmp_path, up.grpc_port, up.ws_port)  # same ports, same database
    cleanup.append(again)
    again.wait_running()
    again.stop()
    assert again.process.returncode == 0


@pytest.mark.parametrize("when", ["at-once", "first-child-started", "all-children-started"])
def test_up_stopped_in_its_first_instants_leaves_nothing_behind(tmp_path, cleanup, when):
    up = Up(tmp_path)
    cleanup.append(up)
    children = []
    if when != "at-once":
        count = 1 if when == "first-child-started" else 3
        children = wait_for(lambda: len(up.descendants()) >= count and up.descendants(),
                            what="children started")
    up.process.send_signal(signal.SIGTERM)
    up.process.wait(60)
    check_nothing_left(up, children)


def test_the_follower_dies_with_the_analysis_service_even_during_its_start(tmp_path):
    """Killed right after it started the follower (still importing), the analysis service
    leaves no follower behind to hold the database, and reparse gets it."""
    db = tmp_path / "threadline.db"
    writer = Writer(db)
    writer.start()  # a database with its schema, as a store leaves it
    writer.stop()
    port, store = free_ports(2, "127.0.0.1")
    service = subprocess.Popen(
        [*PYTHON, "serve", "analysis", "--db", str(db), "--port", str(port),
         "--store-addr", f"127.0.0.1:{store}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment())
    try:
        def follower():
            return [p for p in psutil.Process(service.pid).children()
                    if "services.analysis.follower" in command_line(p)]
        found = wait_for(follower, what="follower started")
        service.kill()
        service.wait()
        wait_gone(found, timeout=20)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        for p in matching(f"--db {db}"):
            p.kill()
    result = subprocess.run([*PYTHON, "reparse", "--db", str(db), "--wait", "1"],
                            capture_output=True, env=environment(), timeout=60)
    assert result.returncode == 0, result.stderr.decode()


# --- import stopped by a signal ----------------------------------------------------------------

def stored_messages(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_import_stopped_by_a_signal_leaves_nothing_behind_and_resumes(tmp_path, sig):
    root = tmp_path / "projects"
    files = generate(root, 10_000, projects=2, session_records=500, seed=5)
    expected = sum(f.read_bytes().count(b"\n") for f in files)
    db = tmp_path / "threadline.db"
    err = tmp_path / "import.err"
    with err.open("wb") as stderr:
        importing = subprocess.Popen([*PYTHON, "import", "--db", str(db), str(root)],
                                     stdout=subprocess.DEVNULL, stderr=stderr,
                                     env=environment())
    ingest = None
    try:
        def ingest_process():
            return [p for p in psutil.Process(importing.pid).children()
                    if "serve analysis ingest" in command_line(p)]
        ingest = wait_for(ingest_process, what="ingest")[0]
        wait_for(lambda: stored_messages(db) > 0, what="first records stored")
        # Ingest frozen: the import cannot finish before the signal, however fast it runs.
        ingest.suspend()
        assert stored_messages(db) < expected
        processes = psutil.Process(importing.pid).children(recursive=True)
        importing.send_signal(sig)
        ingest.resume()
        code = importing.wait(60)
        wait_gone(processes)  # store, ingest and the follower
        assert not matching(f"--db {db}")
        assert code == 128 + sig
    finally:
        if ingest is not None and ingest.is_running():
            ingest.resume()
        if importing.poll() is None:
            importing.kill()
            importing.wait()
        for p in matching(f"--db {db}"):
            p.kill()
    assert f"stopped by {signal.Signals(sig).name}" in err.read_text()

    finished = subprocess.run([*PYTHON, "import", "--db", str(db), str(root)],
                              capture_output=True, env=environment(), timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT key) FROM messages").fetchone() \
            == (expected, expected)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- restarts never stop `up` and never block ---------------------------------------------------

def test_up_survives_a_child_that_dies_again_before_it_is_ready(tmp_path, cleanup):
    up = Up(tmp_path)
    cleanup.append(up)
    up.wait_running()

    def store_child():
        return [p for p in up.descendants() if "serve store" in command_line(p)]
    first = store_child()[0]
    first.kill()
    restarted = wait_for(lambda: [p for p in store_child() if p.pid != first.pid
                                  and "--ready-file" in command_line(p)],
                         what="store restarted")[0]
    restarted.suspend()
    arguments = restarted.cmdline()
    ready_file = Path(arguments[arguments.index("--ready-file") + 1])
    assert not ready_file.exists()
    restarted.kill()  # before it was ready
    wait_for(lambda: "store exited with -9 before it was ready" in up.err.read_text(),
             what="the failed start reported")

    def store_back():
        assert up.process.poll() is None, f"up exited: {up.err.read_text()[-2000:]}"
        return "store is running again" in up.err.read_text()
    wait_for(store_back, what="store back")
    up.stop()
    assert up.process.returncode == 0


def in_process(tmp_path: Path) -> Supervisor:
    settings = config.resolve({"db": tmp_path / "t.db", "roots": [tmp_path], "grpc_port": 0,
                               "ws_port": 0}, environ={})
    return Supervisor(settings, services=("store",), quiet=True)


def supervise_until(sup: Supervisor, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        sup.check()
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def test_a_restart_never_blocks_and_a_child_that_never_gets_ready_is_retried(
        tmp_path, monkeypatch, capsys):
    sup = in_process(tmp_path)
    sup.start()  # with the normal timeout: a loaded machine may take more than 2 s here
    monkeypatch.setattr(supervisor, "READY_TIMEOUT_SECONDS", 2.0)
    try:
        store = sup.child_of("store")
        first = store.process
        first.kill()
        first.wait()
        supervise_until(sup, lambda: store.process is not first)
        # check() spawned it and returned at once, without waiting for it to get ready.
        assert store.process.poll() is None and not store.ready_file.exists()
        hung = store.process
        os.kill(hung.pid, signal.SIGSTOP)  # never gets ready
        supervise_until(sup, lambda: store.process is not hung)
        assert hung.poll() is not None, "the child that never got ready was killed"
        # The next one may take its time (a loaded machine must not make this a third restart).
        monkeypatch.setattr(supervisor, "READY_TIMEOUT_SECONDS", 120.0)
        supervise_until(sup, store.ready_file.exists)
        assert store.restarts == 2
    finally:
        sup.stop()
    err = capsys.readouterr().err
    assert "store not ready after 2 s; killed it; restarting in" in err


def test_restart_backoff_resets_once_a_child_has_stayed_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(supervisor, "HEALTHY_SECONDS", 0.5, raising=False)
    sup = in_process(tmp_path)
    sup.start()
    try:
        store = sup.child_of("store")
        for restart in (1, 2):
            healthy_at = time.monotonic() + 0.6
            supervise_until(sup, lambda at=healthy_at: time.monotonic() > at)
            store.process.kill()
            store.process.wait()
            supervise_until(sup, lambda restart=restart: store.restarts == restart
                            and store.ready_file.exists())
    finally:
        sup.stop()
    delays = [line.rsplit("restarting in ", 1)[1] for line in capsys.readouterr().err.splitlines()
              if "restarting in" in line]
    assert delays == ["0.4 s", "0.4 s"]


# --- one writer per database --------------------------------------------------------------------

def serve_store(db: Path, ready: Path) -> subprocess.Popen:
    return subprocess.Popen([*PYTHON, "serve", "store", "--db", str(db), "--port", "0",
                             "--ready-file", str(ready)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment())


def test_a_second_store_on_the_same_database_refuses_to_start(tmp_path):
    db = tmp_path / "threadline.db"
    first = serve_store(db, tmp_path / "first.json")
    third = None
    try:
        wait_for((tmp_path / "first.json").exists, what="first store ready")
        second = subprocess.run([*PYTHON, "serve", "store", "--db", str(db), "--port", "0"],
                                capture_output=True, env=environment(), timeout=60)
        assert second.returncode == 1
        lines = second.stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"threadline serve store: database {db} is in use by "
                                   f"threadline store (pid {first.pid}, since ")
        assert lines[0].endswith("; stop it or use another --db")
        # The lock dies with its holder, even killed outright: no stale lock to clear.
        first.kill()
        first.wait()
        third = serve_store(db, tmp_path / "third.json")
        wait_for((tmp_path / "third.json").exists, what="store after the holder died")
    finally:
        for process in (first, third):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path):
    db = tmp_path / "t.db"
    held = dblock.acquire(db, "threadline up")
    with pytest.raises(dblock.DatabaseLocked, match=rf"in use by threadline up \(pid "
                                                     rf"{os.getpid()}, since \d\d:\d\d\)"):
        dblock.acquire(db, "threadline import")
    # The store a supervisor started goes ahead under its parent's lock.
    assert dblock.acquire(db, "threadline store", held_by_parent=os.getpid()).fd is None
    with pytest.raises(dblock.DatabaseLocked):
        dblock.acquire(db, "threadline store", held_by_parent=os.getpid() + 1)
    held.release()
    dblock.acquire(db, "threadline reparse").release()


def test_a_child_whose_parent_died_before_it_was_bound_does_not_start():
    not_the_parent = os.getpid()  # pytest is the grandparent, not the parent, of the child
    # Through a shell that stays (no exec): the child's parent is the shell.
    result = subprocess.run(["sh", "-c", f'"$0" -m threadline.lifeline {not_the_parent} '
                                         'cli config; exit $?', sys.executable],
                            capture_output=True, env=environment(), timeout=60)
    assert result.returncode == 1
    assert result.stdout == b""
    assert f"parent process {not_the_parent} is gone" in result.stderr.decode()


def test_import_and_reparse_refuse_a_database_that_up_holds(tmp_path, cleanup):
    up = Up(tmp_path)
    cleanup.append(up)
    up.wait_running()
    transcript = tmp_path / "one.jsonl"
    transcript.write_text('{"type": "user", "uuid": "u1", "sessionId": "s1", '
                          '"message": {"role": "user", "content": "hi"}}\n')
    for command in (["import", str(transcript)], ["reparse", "--wait", "0"]):
        result = subprocess.run([*PYTHON, *command, "--db", str(up.db)], capture_output=True,
                                env=environment(), timeout=60)
        assert result.returncode == 1
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert f"{up.db} is in use by threadline up (pid {up.process.pid}, since" in lines[0]
    assert up.process.poll() is None
    up.stop()
