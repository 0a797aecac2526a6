"""Projects and sessions as a user names them.

A project is shown by its key (the working directory's path, see projects.py) and a short
name: the last component of the path, with as many components before it as it takes to
tell it from the other projects ending the same way (`app`, or `alice/app` and `work/app`).

A project may be given by its key, by its short name (or any trailing part of its path), or
by an alias (the folder name it was known by before, e.g. Claude Code's
`-home-alice-code-app`). A session may be given by its id or by any unique prefix of it of
at least `MIN_PREFIX` characters, like git's object names. A name that fits several is an
`InvalidArgument` naming the candidates; one that fits none is passed on as given (it
matches nothing now, and a live subscription may wait for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, inspect, select

from threadline.storage import schema
from threadline.storage.errors import InvalidArgument
from threadline.storage.projects import key_of_cwd

MIN_PREFIX = 4
# Candidates listed in an ambiguity error.
LISTED = 10
_SEPARATORS = re.compile(r"[/\\]+")


def _parts(key: str) -> list[str]:
    return [p for p in _SEPARATORS.split(key) if p]


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each project key's short name (see the module docstring); a key that is no path (a
    folder's name) is its own."""
    parts = {k: _parts(k) for k in keys}
    depth = dict.fromkeys(parts, 1)
    while True:
        named: dict[str, list[str]] = {}
        for k, p in parts.items():
            named.setdefault("/".join(p[-depth[k]:]) if p else k, []).append(k)
        grown = False
        for same in named.values():
            if len(same) > 1:
                for k in same:
                    if depth[k] < len(parts[k]):
                        depth[k] += 1
                        grown = True
        if not grown:
            break
    out = {}
    for k, p in parts.items():
        name = "/".join(p[-depth[k]:]) if p else k
        # Still shared (e.g. "/a/b" and "a/b"): only the whole key tells them apart.
        out[k] = name if len(named.get(name, [k])) == 1 else k
    return out


def project_keys(conn: Connection) -> list[str]:
    p = schema.projects
    return list(conn.execute(select(p.c.key).order_by(p.c.key)).scalars())


def aliases(conn: Connection) -> dict[str, list[str]]:
    """Each project's aliases."""
    if not inspect(conn).has_table("project_aliases"):  # a database no store upgraded yet
        return {}
    pa = schema.project_aliases
    out: dict[str, list[str]] = {}
    for alias, project in conn.execute(select(pa.c.alias, pa.c.project_key)
                                       .order_by(pa.c.project_key, pa.c.alias)):
        out.setdefault(project, []).append(alias)
    return out


def _alias_of(conn: Connection, alias: str) -> list[str]:
    if not inspect(conn).has_table("project_aliases"):
        return []
    pa = schema.project_aliases
    return list(conn.execute(select(pa.c.project_key).where(pa.c.alias == alias)
                             .order_by(pa.c.project_key)).scalars())


def _ambiguous(what: str, given: str, candidates: list[str]) -> InvalidArgument:
    listed = ", ".join(candidates[:LISTED])
    more = f" and {len(candidates) - LISTED} more" if len(candidates) > LISTED else ""
    return InvalidArgument(f"ambiguous {what} {given!r}: it could be {listed}{more}")


def resolve_project(conn: Connection, given: str) -> str:
    """The project key `given` names (see the module docstring); "" for ""."""
    if not given:
        return ""
    keys = project_keys(conn)
    known = set(keys)
    for candidate in (given, key_of_cwd(given)):
        if candidate in known:
            return candidate
    named = _alias_of(conn, given)
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise _ambiguous("project", given, named)
    wanted = _parts(given)
    if wanted:
        ending = sorted(k for k in keys if _parts(k)[-len(wanted):] == wanted)
        if len(ending) == 1:
            return ending[0]
        if len(ending) > 1:
            raise _ambiguous("project", given, ending)
    return given


def resolve_session(conn: Connection, given: str) -> str:
    """The session id `given` names, a whole id or a unique prefix; "" for ""."""
    if not given:
        return ""
    s = schema.sessions
    if conn.scalar(select(s.c.session_id).where(s.c.session_id == given)) is not None:
        return given
    if len(given) < MIN_PREFIX:
        raise InvalidArgument(f"session id prefix {given!r} is too short: give at least "
                              f"{MIN_PREFIX} characters")
    # A range on the primary key: every id that starts with `given`.
    above = given[:-1] + chr(ord(given[-1]) + 1)
    found = list(conn.execute(
        select(s.c.session_id).where(s.c.session_id > given, s.c.session_id < above)
        .order_by(s.c.session_id).limit(LISTED + 1)).scalars())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        more = len(found) > LISTED
        raise InvalidArgument(
            f"ambiguous session id prefix {given!r}: it could be "
            f"{', '.join(found[:LISTED])}{' and more' if more else ''}")
    return given


def resolve_names(conn: Connection, project: str, session: str) -> tuple[str, str]:
    """`resolve_project` and `resolve_session` at once (a filter naming both)."""
    return resolve_project(conn, project), resolve_session(conn, session)
