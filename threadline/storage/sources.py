"""Reading what is stored per source file: its durable offset, and what its lines became."""

from __future__ import annotations

from sqlalchemy import Connection, case, func, select

from threadline.storage import folding, schema


def offsets(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(
        select(schema.sources).order_by(schema.sources.c.path)).mappings()]


def source_summary(conn: Connection, paths: list[str]) -> dict:
    """What is stored from the given files: lines read, messages, sessions, parse errors, and
    records the parser did not fully understand (format drift)."""
    src, m, pe = schema.sources, schema.messages, schema.parse_errors
    lines = conn.scalar(select(func.coalesce(func.sum(src.c.line_count), 0))
                        .where(src.c.path.in_(paths)))
    # A summary line names another conversation: a file of summaries holds no session.
    in_session = case((m.c.type.not_in(folding.NOT_SESSION_RECORDS), m.c.session_id))
    messages, sessions, drift = conn.execute(
        select(func.count(), func.count(func.distinct(in_session)),
               func.count().filter(m.c.drift != ""))
        .where(m.c.source_path.in_(paths))).one()
    errors = conn.scalar(select(func.count()).select_from(pe).where(pe.c.path.in_(paths)))
    return {"lines": lines or 0, "messages": messages, "sessions": sessions,
            "parse_errors": errors or 0, "format_drift": drift}
