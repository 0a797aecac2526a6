"""The database's files are private to the user who runs threadline.

Transcripts hold keys and private code, and the database holds every transcript line: other
local users must not read it. When threadline creates the data directory it creates it 0700,
and it creates the database file 0600 before SQLite opens it. SQLite creates the `-wal` and
`-shm` files with the permissions of the database file, so they are 0600 as well.

Why not a umask of 0o077 for the store process instead: the umask is process-wide and would
also change files the process writes for others (a ready file, exports), and a database that
SQLite creates still gets 0644 from a process whose umask someone else set. Files that exist
already keep their modes: a user who widened them on purpose keeps that choice.
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Create `path` (and missing parents) if it is missing; the directory itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)


def private_database(db_path: Path) -> None:
    """Create the database's directory and an empty database file, both private, unless they
    exist. An empty file is a valid SQLite database: SQLite fills it on first use."""
    private_directory(db_path.parent)
    try:
        fd = os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
