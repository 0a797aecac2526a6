"""Session titles from Claude Code's `summary` lines.

A summary line (`{"type":"summary","summary":...,"leafUuid":...}`, stored with the leaf in
`logical_parent_uuid` and the summary as its text) titles the conversation whose last
message has the uuid `leafUuid`: as a rule a message of another file, often a file read
later or earlier, and files holding nothing but summaries are common. So the titles are
kept by leaf (`summary_titles`, the first one stored for a leaf wins) and a session's title
is found when it is read: the title of the session's latest leaf that has one. Whichever
file is imported first, the answer is the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, inspect, select, text

from threadline.storage import schema

SUMMARY = "summary"


def record(conn: Connection, rows: Iterable[dict]) -> None:
    """Keep the titles the new summary rows give their leaves."""
    found = [{"leaf_uuid": r["logical_parent_uuid"], "title": r["text"]} for r in rows
             if r["type"] == SUMMARY and r["logical_parent_uuid"] and r["text"]]
    if found:
        conn.execute(_ADD_TITLE, found)


_ADD_TITLE = text("INSERT INTO summary_titles (leaf_uuid, title) "
                  "VALUES (:leaf_uuid, :title) ON CONFLICT DO NOTHING")


def record_stored(conn: Connection) -> None:
    """Keep the titles of every stored summary row (a database written before titles)."""
    m = schema.messages
    after = 0
    while True:
        page = [dict(r) for r in conn.execute(
            select(m.c.seq, m.c.type, m.c.logical_parent_uuid, m.c.text)
            .where(m.c.seq > after, m.c.type == SUMMARY).order_by(m.c.seq).limit(1000))
            .mappings()]
        if not page:
            return
        record(conn, page)
        after = page[-1]["seq"]


def session_titles(conn: Connection) -> dict[str, str]:
    """Each titled session's title: that of its latest leaf (by timestamp) with a title."""
    if not inspect(conn).has_table("summary_titles"):  # a database no store upgraded yet
        return {}
    t, m = schema.summary_titles, schema.messages
    # A uuid-bearing record's storage key is its uuid: the unique index finds each leaf.
    query = (select(m.c.session_id, m.c.timestamp, t.c.title)
             .select_from(t.join(m, m.c.key == t.c.leaf_uuid))
             .order_by(m.c.session_id, m.c.timestamp, m.c.seq))
    out: dict[str, str] = {}
    for session_id, _timestamp, title in conn.execute(query):
        out[session_id] = title  # ordered by time: the latest leaf's title is kept
    return out
