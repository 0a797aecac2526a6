"""What the analysis service reads back from the store to rebuild state it evicted.

Plain functions of a read-only connection (the store's pooled readers), returning domain
objects: the analysis service replays them through the same code that handled them live.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, case, func, select

from threadline.domain.links import ThreadLink
from threadline.domain.records import Record
from threadline.storage import schema
from threadline.storage.queries import _MESSAGE_COLUMNS
from threadline.storage.records import record_from_row

_m = schema.messages
PAGE = 2000


def analysed_through(conn: Connection) -> int:
    """The analysis follower's checkpoint: every message up to this sequence is analysed."""
    return conn.scalar(select(schema.analysis_progress.c.seq)
                       .where(schema.analysis_progress.c.id == 1)) or 0


def last_message_seq(conn: Connection) -> int:
    return conn.scalar(select(func.max(_m.c.seq))) or 0


def analysis_backlog(conn: Connection) -> int:
    """Stored messages the analysis follower has not analysed yet."""
    checkpoint = analysed_through(conn)
    return conn.scalar(select(func.count()).select_from(_m).where(_m.c.seq > checkpoint)) or 0


def link_of(row) -> ThreadLink:
    return ThreadLink(row["thread_parent_uuid"], row["thread_parent_source"],
                      row["thread_relation"], row["thread_confidence"])


# The raw line is left out (it can be large), except for compaction boundaries, whose trigger
# (`compactMetadata`) lives only there and weighs their segment boundary.
_COLUMNS = [*_MESSAGE_COLUMNS,
            case((_m.c.subtype == "compact_boundary", _m.c.raw), else_=b"").label("raw")]


def _records(conn: Connection, where, order) -> Iterator[dict]:
    after = 0
    while True:
        page = conn.execute(select(*_COLUMNS).where(where, _m.c.seq > after)
                            .order_by(order).limit(PAGE)).mappings().all()
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["seq"]


def records_after(conn: Connection, seq: int,
                  limit: int) -> list[tuple[int, Record, ThreadLink]]:
    """Up to `limit` stored records after sequence `seq`, in order, with their links."""
    page = conn.execute(select(*_COLUMNS).where(_m.c.seq > seq).order_by(_m.c.seq)
                        .limit(limit)).mappings().all()
    return [(row["seq"], record_from_row(row), link_of(row)) for row in page]


def session_records(conn: Connection, session_id: str,
                    before_seq: int) -> Iterator[tuple[Record, ThreadLink]]:
    """A session's records stored before `before_seq`, in store order, with their links."""
    where = (_m.c.session_id == session_id) & (_m.c.seq < before_seq)
    for row in _records(conn, where, _m.c.seq):
        yield record_from_row(row), link_of(row)


def file_records(conn: Connection, path: str, session_id: str) -> list[Record]:
    """One file's stored records of one session, in file order."""
    found = [record_from_row(row)
             for row in _records(conn, (_m.c.session_id == session_id)
                                 & (_m.c.source_path == path), _m.c.seq)]
    found.sort(key=lambda r: r.source.byte_offset)
    return found
