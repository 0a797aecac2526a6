"""One database, SQLite or PostgreSQL, and every connection to it.

A `Database` is made from where the data lives: a file path (SQLite, the embedded default)
or a URL (`postgresql://user@host:port/name`, through psycopg 3; `sqlite:///path` works
too). It makes and owns the engines everybody uses, so the settings of a connection are
decided in one place (datasette's `database.py` is the model):

- `write_engine()`: the store's single writer connection. On SQLite: WAL, the journal size
  limit, `BEGIN IMMEDIATE` for every transaction (the write lock up front), the file created
  0600 first. On PostgreSQL: a session advisory lock, so one database has one writer even
  when stores on two machines point at it (on SQLite the `<db>.lock` file lock of
  threadline/dblock.py does this, but a file lock protects only one machine's files).
- `read_engine(pool_size)`: a pool of read-only connections (`mode=ro` and `query_only` on
  SQLite, `default_transaction_read_only` on PostgreSQL). Raises `DatabaseMissing` while the
  database (the file, or the store's tables in PostgreSQL) does not exist.
- `checkpoint_engine()`: SQLite only, the connection that checkpoints the WAL off the write
  path. PostgreSQL has no WAL of ours to keep short: the server checkpoints its own.

`close()` disposes every engine made. The SQL dialect differences are in dialect.py.
"""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool, QueuePool

from threadline.storage import dialect, files, schema
from threadline.storage.errors import DatabaseMissing, WriterActive

DEFAULT_READ_POOL = 3


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


class Database:
    """Where the data lives and the engines that reach it."""

    def __init__(self, location: str | Path):
        self.location = location
        self.path: Path | None = None
        if is_url(location):
            url = make_url(str(location))
            if url.get_backend_name() == dialect.SQLITE:
                self.path = Path(url.database or "")
            elif url.get_backend_name() == dialect.POSTGRESQL:
                # psycopg 3, whatever driver the URL names: the one installed with the extra.
                url = url.set(drivername="postgresql+psycopg")
            else:
                raise ValueError(f"unsupported database URL {url.render_as_string()}: "
                                 "use a file path or postgresql://...")
            self.url = url
        else:
            self.path = Path(location)
            self.url = make_url("sqlite://")
        self.is_sqlite = self.path is not None
        self._engines: list[Engine] = []

    def __str__(self) -> str:
        """The database for people: its path, or its URL without the password."""
        return str(self.path) if self.path is not None else self.url.render_as_string()

    # --- engines ---------------------------------------------------------------------------

    def write_engine(self, wal_limit_bytes: int | None = None) -> Engine:
        """The single writer's engine (one connection at a time: NullPool)."""
        if self.is_sqlite:
            assert self.path is not None
            files.private_database(self.path)
            path = self.path

            def configure(c: sqlite3.Connection) -> None:
                schema.configure_writer(c)
                if wal_limit_bytes is not None:
                    # Whenever the WAL starts over from its beginning, cut it back to this size.
                    c.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")

            engine = self._sqlite_engine(lambda: sqlite3.connect(str(path),
                                                                 check_same_thread=False),
                                         configure, NullPool)
            # Every transaction of this connection takes the write lock up front.
            event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN IMMEDIATE"))
            return engine
        engine = self._keep(create_engine(self.url, poolclass=NullPool))
        event.listen(engine, "connect", self._take_writer_lock)
        return engine

    def read_engine(self, pool_size: int = DEFAULT_READ_POOL) -> Engine:
        """Pooled read-only connections over an existing database."""
        if self.is_sqlite:
            assert self.path is not None
            if not self.path.is_file():
                raise DatabaseMissing(self.path)
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            return self._sqlite_engine(
                lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
                schema.configure_reader, QueuePool, pool_size=pool_size, max_overflow=0)
        # Added to the URL's own options (a search_path, say), which connect_args would replace.
        options = " ".join(filter(None, [self.url.query.get("options", ""),
                                         "-c default_transaction_read_only=on"]))
        engine = create_engine(
            self.url.update_query_dict({"options": options}), poolclass=QueuePool,
            pool_size=pool_size, max_overflow=0, pool_pre_ping=True)
        try:
            with engine.connect() as conn:
                present = inspect(conn).has_table(schema.changes.name)
        except OperationalError:
            engine.dispose()
            raise
        if not present:  # the store has not created its tables yet
            engine.dispose()
            raise DatabaseMissing(self)
        return self._keep(engine)

    def checkpoint_engine(self) -> Engine | None:
        """SQLite: a connection of its own for WAL checkpoints; None on PostgreSQL."""
        if not self.is_sqlite:
            return None
        assert self.path is not None
        path = self.path

        def configure(c: sqlite3.Connection) -> None:
            c.isolation_level = None
            c.execute("PRAGMA wal_autocheckpoint=0")

        return self._sqlite_engine(lambda: sqlite3.connect(str(path), check_same_thread=False),
                                   configure, NullPool)

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()
        self._engines.clear()

    # --- details ---------------------------------------------------------------------------

    def _sqlite_engine(self, creator, configure, poolclass, **pool) -> Engine:
        engine = create_engine("sqlite://", creator=creator, poolclass=poolclass, **pool)
        event.listen(engine, "connect", lambda c, _record: configure(c))
        return self._keep(engine)

    def _keep(self, engine: Engine) -> Engine:
        self._engines.append(engine)
        return engine

    def _take_writer_lock(self, dbapi_connection, _record) -> None:
        """Hold the database's advisory writer lock for the connection's life (PostgreSQL
        releases it when the session ends, however it ends)."""
        # The options take part: one database may hold several stores' schemas (search_path).
        key = writer_lock_key(f"{self.url.database}?{self.url.query.get('options', '')}")
        with dbapi_connection.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            (taken,) = cur.fetchone()
        dbapi_connection.commit()
        if not taken:
            dbapi_connection.close()
            raise WriterActive(str(self))


def writer_lock_key(name: str) -> int:
    """The advisory lock key of one database's writer: stable, and not a small number another
    application would pick."""
    return (0x7468 << 32) | zlib.crc32(name.encode())


def open_database(location: str | Path | Database) -> Database:
    return location if isinstance(location, Database) else Database(location)
