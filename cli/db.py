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


def open_readonly(db: Path) -> Engine:
    """Read-only connections to the database `db` (StoreError `DatabaseMissing` when there is
    none)."""
    from threadline.storage import queries

    return queries.open_readonly(db)


@contextmanager
def reading(db: Path) -> Iterator[Connection]:
    """One read-only connection to the threadline database `db`, closed with its engine
    afterwards. A missing file or one that is not a threadline database is a `StoreError`
    that says so, never a driver's traceback."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DatabaseError

    engine = open_readonly(db)
    try:
        conn = None
        try:
            conn = engine.connect()
            threadline_made = inspect(conn).has_table(MARKER_TABLE)
        except DatabaseError as exc:  # "file is not a database"
            if conn is not None:
                conn.close()
            raise ForeignDatabase(db, str(exc.orig)) from None
        with conn:
            if not threadline_made:
                raise ForeignDatabase(db, f"it has no {MARKER_TABLE} table")
            yield conn
    finally:
        engine.dispose()
