"""The analysis service's read-only view of the store's database.

The store owns the database (its single writer, and the pooled read-only connections
`threadline.storage.readonly.open_readonly` makes); analysis reads through the same kind of
connection to rebuild evicted state and to answer queries. The database may not exist yet
when analysis starts (the store creates it on its first start): until it does, nothing is
stored, so every read finds nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine

from threadline.storage import analysis, records
from threadline.storage.errors import DatabaseMissing
from threadline.storage.readonly import open_readonly

T = TypeVar("T")


class StoreReader:
    def __init__(self, db_path: Path | None, pool_size: int = 2):
        self._path = db_path
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Engine | None:
        if self._engine is None and self._path is not None:
            with self._lock:
                if self._engine is None:
                    try:
                        self._engine = open_readonly(self._path, self._pool_size)
                    except DatabaseMissing:
                        return None
        return self._engine

    def run(self, fn: Callable[..., T], *args, default: T) -> T:
        """`fn(conn, *args)` on a read-only connection; `default` while there is no database."""
        engine = self._connect()
        if engine is None:
            return default
        conn: Connection
        with engine.connect() as conn:
            return fn(conn, *args)

    # The loaders of services/analysis/sessions.py, and the follower's checkpoint.
    def session_records(self, session_id: str, before_seq: int) -> list:
        return self.run(lambda c: list(records.session_records(c, session_id, before_seq)),
                        default=[])

    def analysed_through(self) -> int:
        return self.run(analysis.analysed_through, default=0)

    def last_message_seq(self) -> int:
        return self.run(analysis.last_message_seq, default=0)

    def records_after(self, seq: int, limit: int) -> list:
        return self.run(records.records_after, seq, limit, default=[])

    def file_records(self, path: str, session_id: str) -> list:
        return self.run(records.file_records, path, session_id, default=[])

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
