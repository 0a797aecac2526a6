"""Opening an existing threadline database for reading only.

The CLI reads through it without a server; the store's pool of readers and the analysis
service's reads open the same kind of connection (database.Database.read_engine):

    engine = open_readonly(path)
    with engine.connect() as conn:
        for record in messages.iter_export(conn):
            ...
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from threadline.storage.database import Database


def open_readonly(db: Path | str, pool_size: int = 3) -> Engine:
    """An engine of read-only connections over an existing database (a SQLite file or a
    PostgreSQL URL); DatabaseMissing when there is none yet."""
    return Database(db).read_engine(pool_size)
