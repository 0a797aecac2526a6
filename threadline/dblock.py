"""One writer per database: an exclusive lock beside the database file.

Two stores writing one database both allocate change sequences and corrupt each other's
changefeed (`UNIQUE constraint failed: changes.seq`), and an import run against the database
of a running `up` breaks its pipeline. So whatever writes a database (the store, `threadline
up` and `import` on behalf of the store they run, `reparse`) first takes `flock(LOCK_EX)` on
`<db>.lock` and keeps it for its lifetime. Readers (queries, analysis) take nothing.

A stale lock is impossible: the kernel releases a flock when the last descriptor of it is
closed, which includes the death of its holder, even by SIGKILL. The lock file itself stays
(removing it would let two processes lock two different files); after taking the lock its
holder writes who it is (pid, host, command, start time) into it, for the error message of
the next one that tries.

A supervisor holds the lock for the store it runs, and hands its descriptor to that store
(inherited across exec), so the lock lasts until the store has exited even when the
supervisor dies first. The store sees that the holder is its own parent and goes ahead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path


class DatabaseLocked(Exception):
    """The database has a writer already; `holder` says who, in words."""

    def __init__(self, db: Path, holder: str):
        super().__init__(f"database {db} is in use by {holder}; stop it or use another --db")
        self.db = db
        self.holder = holder
        self.holder_pid: int | None = None


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def read_holder(db: Path) -> dict:
    """What the current (or last) holder wrote into the lock file ({} if nothing readable)."""
    try:
        found = json.loads(lock_path(db).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process"
    words = f"{holder.get('command') or 'a process'} (pid {holder['pid']}"
    if holder.get("host") and holder["host"] != socket.gethostname():
        words += f" on {holder['host']}"
    if holder.get("since"):
        words += ", since " + time.strftime("%H:%M", time.localtime(holder["since"]))
    return words + ")"


class DatabaseLock:
    """The held lock of one database; `release()` (or the process's end) gives it up."""

    def __init__(self, db: Path, fd: int | None):
        self.db = db
        self.fd = fd  # None: held for us by our parent

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


def acquire(db: Path, command: str, held_by_parent: int | None = None) -> DatabaseLock:
    """Take the database's writer lock at once, or raise DatabaseLocked naming its holder.

    `held_by_parent`: the pid of the supervisor that started this process, which may hold
    the lock on its behalf.
    """
    if "://" in str(db):
        # A database server (PostgreSQL) has no file here to lock: its store takes the
        # server's advisory writer lock instead (threadline/storage/database.py).
        return DatabaseLock(db, None)
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # private, as the store makes it
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(db)
        if held_by_parent is not None and holder.get("pid") == held_by_parent:
            return DatabaseLock(db, None)
        error = DatabaseLocked(db, describe(holder))
        error.holder_pid = holder.get("pid")
        raise error from None
    except BaseException:
        os.close(fd)
        raise
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since": time.time()}
    with contextlib.suppress(OSError):  # the lock holds without the note
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
    return DatabaseLock(db, fd)
