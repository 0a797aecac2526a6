"""Analysis results written by an earlier version are analysed again.

The analysis follower's results (segments, turns, relationships, session summaries) are
derived from the stored records, so when the analysis changes what it makes of the same
records, a database written before holds results the current version would not give.
`ANALYSIS_VERSION` numbers those changes; the follower's checkpoint row records the version
that wrote it (`analysis_progress.version`, 0 in a database from before versions were
kept). When the store opens a database whose checkpoint is older, `start_again` removes the
results that analysing again would not overwrite (segments, turns, relationships: the
follower adds and replaces rows, it never deletes stale ones) and moves the checkpoint back
to the start; the follower then analyses every stored record again, in sequence order, as it
does after an import. Session summaries stay until their session is analysed again (the
follower replaces each one whole), and so do the resumptions, which threading learnt from
the files, not the follower.

Resumptions stored by an earlier version may point the wrong way (it took a file holding two
sessions' records for the later one continuing the earlier, and 1.0.x resumed files
alternate the two), up to cycles (a session continuing one that continues it). Without the
files they cannot be learnt again, so `repair_resumptions` removes the links that cannot be
right: a session cannot continue one that started after it, and of a cycle left (equal or
unreadable start times) the link of the session that started first goes.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, func, select

from threadline.storage import schema

log = logging.getLogger(__name__)

# 1: segment times from conversation records only, and never before the record that opened
#    the segment; resumptions without cycles.
ANALYSIS_VERSION = 1


def stored_version(conn: Connection) -> int | None:
    """The version of the stored analysis; None when nothing was analysed yet."""
    p = schema.analysis_progress
    return conn.scalar(select(p.c.version).where(p.c.id == 1))


def start_again(conn: Connection) -> bool:
    """Analyse again a database analysed by an earlier version (inside the caller's
    transaction). Returns whether it did."""
    version = stored_version(conn)
    if version is None or version >= ANALYSIS_VERSION:
        return False
    messages = conn.scalar(select(func.count()).select_from(schema.messages))
    for table in (schema.segments, schema.turns, schema.relationships):
        conn.execute(table.delete())
    p = schema.analysis_progress
    conn.execute(p.update().where(p.c.id == 1).values(seq=0, version=ANALYSIS_VERSION))
    removed = repair_resumptions(conn)
    log.info("analysis of version %d found (this is %d): analysing the %d stored messages "
             "again%s", version, ANALYSIS_VERSION, messages,
             f"; resumptions removed from {', '.join(removed)}" if removed else "")
    return True


def repair_resumptions(conn: Connection) -> list[str]:
    """Remove resumptions that cannot be right (module docstring); returns the sessions
    whose link was removed."""
    return drop_backward_resumptions(conn) + break_resumption_cycles(conn)


def drop_backward_resumptions(conn: Connection) -> list[str]:
    """Remove each link of a session that started before the session it would continue
    (start: the earliest timestamp of its stored records)."""
    ss, later, earlier = (schema.session_summaries, schema.sessions.alias("later"),
                          schema.sessions.alias("earlier"))
    backward = list(conn.execute(
        select(ss.c.session_id)
        .join(later, later.c.session_id == ss.c.session_id)
        .join(earlier, earlier.c.session_id == ss.c.resumed_from)
        .where(ss.c.resumed_from != "", later.c.first_timestamp != "",
               earlier.c.first_timestamp != "",
               later.c.first_timestamp < earlier.c.first_timestamp)).scalars())
    for session in backward:
        conn.execute(ss.update().where(ss.c.session_id == session).values(resumed_from=""))
    return backward


def break_resumption_cycles(conn: Connection) -> list[str]:
    """Remove one link from each cycle of `resumed_from`; returns the sessions unlinked."""
    ss, s = schema.session_summaries, schema.sessions
    links = dict(conn.execute(select(ss.c.session_id, ss.c.resumed_from)
                              .where(ss.c.resumed_from != "")).all())
    unlinked: list[str] = []
    done: set[str] = set()
    for start in links:
        path: list[str] = []
        on_path: set[str] = set()
        at = start
        while at in links and at not in done and at not in on_path:
            path.append(at)
            on_path.add(at)
            at = links[at]
        if at in on_path:  # the walk came back to itself: a cycle from `at`
            cycle = path[path.index(at):]
            started = dict(conn.execute(select(s.c.session_id, s.c.first_timestamp)
                                        .where(s.c.session_id.in_(cycle))).all())
            # Sessions without a readable start sort last: they are never taken for first.
            first = min(cycle, key=lambda sid: (not started.get(sid), started.get(sid) or "",
                                                sid))
            conn.execute(ss.update().where(ss.c.session_id == first).values(resumed_from=""))
            unlinked.append(first)
        done.update(path)
    return unlinked


__all__ = ["ANALYSIS_VERSION", "break_resumption_cycles", "drop_backward_resumptions",
           "repair_resumptions", "start_again", "stored_version"]
