"""Reading sessions and the projects they ran in, each with the names people know them by
(short names and aliases: names.py; titles: titles.py)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

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


def list_sessions(conn: Connection, project: str = "") -> list[dict]:
    """Sessions of one project (every session when `project` is empty), latest first, each
    with its title (titles.py) and its project's short name. The project may be given by its
    key, short name or alias (names.resolve_project)."""
    s = schema.sessions
    query = select(s).order_by(s.c.last_timestamp.desc(), s.c.session_id)
    if project:
        query = query.where(s.c.project_key == names.resolve_project(conn, project))
    found = [dict(r) for r in conn.execute(query).mappings()]
    short = names.short_names(names.project_keys(conn))
    titled = titles.session_titles(conn)
    for r in found:
        r["title"] = titled.get(r["session_id"], "")
        r["project_name"] = short.get(r["project_key"], r["project_key"])
    return found
