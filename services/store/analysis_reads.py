"""What the analysis service reads back from the store to rebuild state it evicted.

Plain functions of a read-only connection (the store's pooled readers), returning domain
objects: the analysis service replays them through the same code that handled them live.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, select

from services.analysis.thread_links import ThreadLink
from services.store import rows, schema
from services.store.queries import _MESSAGE_COLUMNS
from threadline.convert import message_from_pb
from threadline.records import Record

_m = schema.messages
# SQLite's default limit on host parameters in one statement is 32,766; stay well below.
KEY_CHUNK = 500
PAGE = 2000


def stored_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of these message keys are stored."""
    found: set[str] = set()
    for i in range(0, len(keys), KEY_CHUNK):
        chunk = list(keys[i:i + KEY_CHUNK])
        found.update(conn.execute(select(_m.c.key).where(_m.c.key.in_(chunk))).scalars())
    return found


def _records(conn: Connection, where, order) -> Iterator[dict]:
    after = 0
    while True:
        page = conn.execute(select(*_MESSAGE_COLUMNS).where(where, _m.c.seq > after)
                            .order_by(order).limit(PAGE)).mappings().all()
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["seq"]


def session_records(conn: Connection, session_id: str) -> Iterator[tuple[Record, ThreadLink]]:
    """A session's stored records in the order they were stored, with their thread links."""
    for row in _records(conn, _m.c.session_id == session_id, _m.c.seq):
        rec = message_from_pb(rows.message_pb(row))
        yield rec, ThreadLink(row["thread_parent_uuid"], row["thread_parent_source"],
                              row["thread_relation"], row["thread_confidence"])


def file_records(conn: Connection, path: str, session_id: str) -> list[Record]:
    """One file's stored records of one session, in file order."""
    found = [message_from_pb(rows.message_pb(row))
             for row in _records(conn, (_m.c.session_id == session_id)
                                 & (_m.c.source_path == path), _m.c.seq)]
    found.sort(key=lambda r: r.source.byte_offset)
    return found
