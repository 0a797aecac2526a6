"""Opening an existing threadline database for reading only.

The CLI reads through it without a server; the store's pool of readers and the analysis
service's reads open the same kind of connection:

    engine = open_readonly(path)
    with engine.connect() as conn:
        for record in messages.iter_export(conn):
            ...
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from threadline.storage import schema
from threadline.storage.errors import DatabaseMissing


def open_readonly(db_path: Path | str, pool_size: int = 3) -> Engine:
    """An engine of read-only connections (`file:...?mode=ro`) over an existing database."""
    path = Path(db_path)
    if not path.is_file():
        raise DatabaseMissing(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=QueuePool, pool_size=pool_size, max_overflow=0,
    )
    event.listen(engine, "connect", lambda c, _record: schema.configure_reader(c))
    return engine
