"""Reading sessions and the projects they ran in, each with the names people know them by
(short names and aliases: names.py; titles: titles.py)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, func, select

from threadline.domain.timestamps import parse_timestamp
from threadline.storage import names, schema, titles


def list_projects(conn: Connection) -> list[dict]:
    """Every project, latest activity first, with its short name and aliases
    (names.py)."""
    p, s = schema.projects, schema.sessions
    query = (
        select(p, func.count(s.c.session_id).label("session_count"),
               func.coalesce(func.sum(s.c.message_count), 0).label("message_count"))
        .select_from(p.outerjoin(s, s.c.project_key == p.c.key))
        .group_by(p.c.key)
        .order_by(p.c.last_timestamp.desc(), p.c.key)
    )
    found = [dict(r) for r in conn.execute(query).mappings()]
    short = names.short_names(r["key"] for r in found)
    aliases = names.aliases(conn)
    for r in found:
        r["name"] = short[r["key"]]
        r["aliases"] = aliases.get(r["key"], [])
    return found


TITLE_CHARS = 80


def first_prompts(conn: Connection) -> dict[str, str]:
    """Each analysed session's first real prompt (the analysis's first turn), its whitespace
    folded and cut to TITLE_CHARS: what names a conversation that has no summary title."""
    t, m = schema.turns, schema.messages
    first = (select(t.c.session_id, func.min(t.c.timestamp).label("at"))
             .group_by(t.c.session_id).subquery())
    query = (select(t.c.session_id, m.c.text)
             .select_from(t.join(first, (first.c.session_id == t.c.session_id)
                                 & (first.c.at == t.c.timestamp))
                          .join(m, m.c.key == t.c.key))
             .order_by(t.c.session_id, m.c.seq))
    out: dict[str, str] = {}
    for session_id, text in conn.execute(query):
        if session_id not in out:
            folded = " ".join((text or "").split())
            out[session_id] = (folded if len(folded) <= TITLE_CHARS
                               else folded[:TITLE_CHARS - 1] + "…")
    return out


def _project_filter(conn: Connection, given: str):
    """The sessions-table condition for `given`: the project it names (names.resolve_project),
    or, when it names none, every project whose path contains it (case-insensitive)."""
    s = schema.sessions
    key = names.resolve_project(conn, given)
    keys = names.project_keys(conn)
    if key in keys:
        return s.c.project_key == key
    needle = given.casefold()
    return s.c.project_key.in_([k for k in keys if needle in k.casefold()])


def list_sessions(conn: Connection, project: str = "", since: str = "",
                  until: str = "") -> list[dict]:
    """Sessions, latest activity first, each with its title (titles.py; failing that, its
    first real prompt), its project's short name and its duration in seconds (first to last
    record). `project`: a project's key, short name or alias (names.resolve_project), or any
    part of its path. `since`/`until` (YYYY-MM-DD, UTC): sessions active on those days."""
    s = schema.sessions
    query = select(s).order_by(s.c.last_timestamp.desc(), s.c.session_id)
    if project:
        query = query.where(_project_filter(conn, project))
    if since:
        query = query.where(s.c.last_timestamp >= since)
    if until:  # ISO timestamps of that day sort below the next day's date
        query = query.where(s.c.first_timestamp < _next_day(until))
    found = [dict(r) for r in conn.execute(query).mappings()]
    short = names.short_names(names.project_keys(conn))
    titled = titles.session_titles(conn)
    prompts = first_prompts(conn) if any(r["session_id"] not in titled for r in found) else {}
    for r in found:
        r["title"] = titled.get(r["session_id"]) or prompts.get(r["session_id"], "")
        r["project_name"] = short.get(r["project_key"], r["project_key"])
        r["duration_seconds"] = _seconds_between(r["first_timestamp"], r["last_timestamp"])
    return found


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _seconds_between(first: str | None, last: str | None) -> float:
    a, b = parse_timestamp(first or ""), parse_timestamp(last or "")
    return max(0.0, (b - a).total_seconds()) if a and b else 0.0
