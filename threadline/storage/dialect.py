"""Every difference between SQLite and PostgreSQL that the storage code has to know about.

The rest of the storage layer writes SQL both accept: `INSERT ... ON CONFLICT (...) DO
UPDATE/NOTHING` with `excluded` (SQLite 3.24+), `CASE` instead of SQLite's two-argument
min()/max(), `substr`, SQLAlchemy `inspect` instead of `sqlite_master`. What cannot be
written once lives here:

- placeholders of driver-level SQL (`exec_driver_sql`, used on the hot insert path because
  SQLAlchemy's per-row parameter processing costs more than the insert): `:name` for sqlite3,
  `%(name)s` for psycopg;
- one bound parameter holding a whole list (`any_of`): `json_each(?)` on SQLite (no limit on
  bound parameters, one statement whatever the count), an array and `= ANY(...)` on
  PostgreSQL;
- "does this text hold that one" (`Contains`): `instr` on SQLite, `position` on PostgreSQL
  (not LIKE: a path may hold "%" or "_", and SQLite's LIKE ignores ASCII case);
- the number of the last migration of stored rows (`user_version` / `set_user_version`):
  SQLite's `PRAGMA user_version`, a one-row table on PostgreSQL, which has no such slot;
- text values: PostgreSQL's text cannot hold NUL characters, SQLite's can (`text_safe`);
- column types: PostgreSQL's INTEGER is 32 bits, so sequences and byte offsets are BIGINT
  there, while on SQLite they stay INTEGER (the only spelling that makes `seq` the rowid);
  text columns sort by code point ("C" collation) as SQLite's do, whatever the database's;
- which failures are the storage's condition rather than the batch's fault (`storage_failure`).
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache

import orjson
from sqlalchemy import BigInteger, Boolean, Connection, Integer, Table, text
from sqlalchemy import Text as _Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# 64-bit where it matters (sequences, byte offsets of files over 2 GiB) without changing
# SQLite's schema.
BigInt = BigInteger().with_variant(Integer(), SQLITE)
# Text compared and sorted by code point, as SQLite does: a database made with a language's
# collation would order keys, names and even ISO timestamps differently ("...00Z" against
# "...00.5Z"), and the merges of time spans compare timestamps as text.
Text = _Text().with_variant(postgresql.TEXT(collation="C"), POSTGRESQL)


def name_of(conn: Connection) -> str:
    return conn.dialect.name


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == SQLITE


# --- driver-level statements ----------------------------------------------------------------

@lru_cache(maxsize=64)
def _insert_text(table: Table, dialect_name: str, conflict: str) -> str:
    names = [c.name for c in table.columns]
    columns = ", ".join(f'"{n}"' for n in names)
    # sqlite3 takes named placeholders whatever SQLAlchemy's own style; psycopg pyformat.
    marks = ", ".join(f":{n}" if dialect_name == SQLITE else f"%({n})s" for n in names)
    sql = f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})'
    if conflict == "nothing":
        sql += " ON CONFLICT DO NOTHING"
    elif conflict == "replace":
        keys = [c.name for c in table.primary_key.columns]
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in keys)
        sql += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    return sql


def insert_sql(conn: Connection, table: Table, conflict: str = "") -> str:
    """A plain INSERT of every column of `table`, with named placeholders in the driver's own
    style, for `exec_driver_sql`. `conflict`: "" (fail), "nothing" (keep the stored row) or
    "replace" (overwrite every column but the primary key)."""
    return _insert_text(table, conn.dialect.name, conflict)


def any_of(conn: Connection, column: str, values: list, param: str = "values"
           ) -> tuple[str, dict]:
    """`column` is one of `values`, as SQL text for `text()` and its one bound parameter."""
    if is_sqlite(conn):
        return (f"{column} IN (SELECT value FROM json_each(:{param}))",
                {param: orjson.dumps(values).decode()})
    return f"{column} = ANY(:{param})", {param: list(values)}


# --- expressions ----------------------------------------------------------------------------

class Contains(FunctionElement):
    """True when the text (or bytes) `haystack` holds `needle`, case and wildcards as they are."""

    type = Boolean()
    inherit_cache = True
    name = "contains_text"


@compiles(Contains, SQLITE)
def _contains_sqlite(element, compiler, **kw):
    haystack, needle = list(element.clauses)
    return f"(instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0)"


@compiles(Contains, POSTGRESQL)
def _contains_postgresql(element, compiler, **kw):
    haystack, needle = list(element.clauses)
    return (f"(position({compiler.process(needle, **kw)} in "
            f"{compiler.process(haystack, **kw)}) > 0)")


def text_safe(conn: Connection, rows: list[dict]) -> list[dict]:
    """Rows PostgreSQL accepts: a NUL character in a text value becomes U+FFFD there (it
    cannot be stored in `text`; the raw line keeps the original bytes). Unchanged on SQLite."""
    if is_sqlite(conn):
        return rows
    for row in rows:
        for name, value in row.items():
            if type(value) is str and "\x00" in value:
                row[name] = value.replace("\x00", "\ufffd")
    return rows


# --- migrations -----------------------------------------------------------------------------

_META = "threadline_meta"


def user_version(conn: Connection) -> int:
    """The number of the last migration of stored rows run on this database (0: none)."""
    if is_sqlite(conn):
        return conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {_META} "
                         "(id INTEGER PRIMARY KEY CHECK (id = 1), user_version INTEGER NOT NULL)")
    return conn.scalar(text(f"SELECT user_version FROM {_META} WHERE id = 1")) or 0


def set_user_version(conn: Connection, version: int) -> None:
    if is_sqlite(conn):
        conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
        return
    conn.execute(text(f"INSERT INTO {_META} (id, user_version) VALUES (1, :v) "
                      "ON CONFLICT (id) DO UPDATE SET user_version = excluded.user_version"),
                 {"v": int(version)})


# --- failures -------------------------------------------------------------------------------

_SQLITE_STORAGE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})
# SQLSTATE classes of PostgreSQL that are the server's condition, not the statement's fault:
# 53 insufficient resources (disk full, out of memory), 58 system error (I/O), 08 connection
# lost, 57P0x the server shutting down or restarting.
_POSTGRESQL_STORAGE_STATES = ("53", "58", "08", "57P")


def storage_failure(exc: BaseException, where: str) -> str | None:
    """What a write failure says about the storage ("database or disk is full at <where>"),
    or None when it is about the batch itself."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in _SQLITE_STORAGE_CODES:
            return f"{orig} at {where}"
        return None
    state = getattr(orig, "sqlstate", None)
    if state is None and type(orig).__module__.startswith("psycopg"):
        # No SQLSTATE: the connection itself failed (the server went away).
        state = "08000" if getattr(exc, "connection_invalidated", False) else None
    if state is not None and str(state).startswith(_POSTGRESQL_STORAGE_STATES):
        return f"{str(orig).strip()} at {where}"
    return None
