"""The one place the CLI opens the database.

Every command that reads the database (the read commands, `import` waiting for analysis and
counting what it stored) opens it through `open_readonly` here, so what a database is (a
SQLite file today) is decided once for the whole command line. `reparse` is the exception
by design: it is a writer and takes the writer's lock (cli/reparse.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from threadline.storage.errors import StoreError

if TYPE_CHECKING:  # SQLAlchemy is imported when a command opens the database, not at startup
    from sqlalchemy import Connection, Engine

# A table every threadline database has: a database without it was made by something else.
MARKER_TABLE = "messages"


class ForeignDatabase(StoreError):
    """The file exists but is not a threadline database (another program's SQLite file, a
    text file...)."""

    def __init__(self, path: object, why: str):
        super().__init__(f"{path} is not a threadline database ({why})")
        self.path = path


class UnreadableDatabase(StoreError):
    """The database could not be opened for reading (no permission, locked by `reparse`)."""

    def __init__(self, path: object, why: str):
        super().__init__(f"cannot read {path}: {why}")
        self.path = path


def open_readonly(db: Path) -> Engine:
    """Read-only connections to the database `db` (StoreError `DatabaseMissing` when there is
    none)."""
    from threadline.storage.readonly import open_readonly

    return open_readonly(db)


@contextmanager
def reading(db: Path) -> Iterator[Connection]:
    """One read-only connection to the threadline database `db`, closed with its engine
    afterwards. A missing file or one that is not a threadline database is a `StoreError`
    that says so, never a driver's traceback."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DatabaseError, OperationalError

    engine = open_readonly(db)
    try:
        conn = None
        try:
            conn = engine.connect()
            threadline_made = inspect(conn).has_table(MARKER_TABLE)
        except DatabaseError as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, OperationalError):  # "unable to open", "database is locked"
                raise UnreadableDatabase(db, str(exc.orig)) from None
            raise ForeignDatabase(db, str(exc.orig)) from None  # "file is not a database"
        with conn:
            if not threadline_made:
                raise ForeignDatabase(db, f"it has no {MARKER_TABLE} table")
            yield conn
    finally:
        engine.dispose()


def refuse_foreign(db: Path | str) -> None:
    """For the commands that write the database (`up`, `import`, `reparse`): `ForeignDatabase`
    when `db` is a file of something else, which they would otherwise fill with threadline's
    tables or fail on deep inside a service. A missing or empty file is a new database; a
    database server (a URL) is not checked here: the store's own opening is the check."""
    if "://" in str(db):
        return
    if db.is_file() and db.stat().st_size > 0:
        try:
            with reading(db):
                pass
        except UnreadableDatabase:
            pass  # locked or not readable: the command's own opening says why, and by whom


class DatabaseBusy(StoreError):
    """Another writer (a store, `up`, `import`, `reparse`) has the database."""


@contextmanager
def writing(db: Path, command: str) -> Iterator[Connection]:
    """One transaction on the writer's connection to the existing threadline database `db`,
    under the writer's lock (threadline/dblock.py): refused at once, naming the holder, while
    a store has it, as two writers would corrupt the changefeed. For the maintenance commands
    that change derived data (`search --rebuild`)."""
    from threadline import dblock
    from threadline.storage.database import open_database

    with reading(db):  # a missing or foreign database is said as for any read
        pass
    try:
        lock = dblock.acquire(Path(db), command)
    except dblock.DatabaseLocked as exc:
        raise DatabaseBusy(str(exc)) from None
    try:
        engine = open_database(db).write_engine()
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            engine.dispose()
    finally:
        lock.release()
