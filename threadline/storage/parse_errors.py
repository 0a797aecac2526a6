"""Reading the lines that could not become records (`parse_errors`), filtered by reason
and by file."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from threadline.storage import schema
from threadline.storage.errors import InvalidArgument

DEFAULT_ERROR_LIMIT = 1000


def _error_filters(query, reason: str, path: str):
    pe = schema.parse_errors
    if reason:
        query = query.where(pe.c.reason == reason)
    if path:
        # instr, not LIKE: a path may hold "%" or "_", and LIKE ignores ASCII case.
        query = query.where(func.instr(pe.c.path, path) > 0)
    return query


def parse_errors(conn: Connection, limit: int | None = DEFAULT_ERROR_LIMIT, reason: str = "",
                 path: str = "") -> list[dict]:
    """The first `limit` parse errors (0: the default limit, None: all), in the order they
    were stored; only those of `reason`, and of files whose path contains `path`, if given."""
    if limit is not None and limit < 0:
        raise InvalidArgument(f"limit must be >= 0, not {limit}")
    pe = schema.parse_errors
    query = _error_filters(select(pe).order_by(pe.c.seq), reason, path)
    if limit is not None:
        query = query.limit(limit or DEFAULT_ERROR_LIMIT)
    return [dict(r) for r in conn.execute(query).mappings()]


def parse_error_counts(conn: Connection, reason: str = "", path: str = "") -> dict[str, int]:
    """How many parse errors of each reason are stored (same filters as `parse_errors`)."""
    pe = schema.parse_errors
    query = _error_filters(select(pe.c.reason, func.count()).group_by(pe.c.reason)
                           .order_by(func.count().desc(), pe.c.reason), reason, path)
    return {r: n for r, n in conn.execute(query)}
