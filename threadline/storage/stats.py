"""What the store holds, counted: rows per table, and records, format drift and parse
errors by kind."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from threadline.storage import schema
from threadline.storage.changes import last_sequence

_m = schema.messages


def stats(conn: Connection) -> dict:
    def count(table) -> int:
        return conn.scalar(select(func.count()).select_from(table)) or 0

    return {
        "projects": count(schema.projects),
        "sessions": count(schema.sessions),
        "messages": count(schema.messages),
        "tool_calls": count(schema.tool_calls),
        "parse_errors": count(schema.parse_errors),
        "sources": count(schema.sources),
        "last_sequence": last_sequence(conn),
    }


def census(conn: Connection) -> dict:
    """What the store holds, counted: records by format and type, format drift by format,
    version and reason, parse errors by reason. Each is a list of dicts, largest first."""
    pe = schema.parse_errors
    n = func.count().label("count")
    by_type = select(_m.c.format, _m.c.type, n).group_by(_m.c.format, _m.c.type)
    drift = (select(_m.c.format, _m.c.version, _m.c.drift, n).where(_m.c.drift != "")
             .group_by(_m.c.format, _m.c.version, _m.c.drift))
    errors = select(pe.c.reason, n).group_by(pe.c.reason)

    def rows(query) -> list[dict]:
        return [dict(r) for r in conn.execute(query.order_by(n.desc())).mappings()]

    return {"records": rows(by_type), "drift": rows(drift), "parse_errors": rows(errors)}
