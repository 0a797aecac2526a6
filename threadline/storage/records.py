"""Stored message rows as domain `Record`s, and the reads that return them.

`record_from_row` is the one mapping from a row of `schema.messages` to a `Record`: rows use
the column names of `schema.py`, enumerations are stored as their names and content blocks as
the JSON array of plain dicts the store writes (only non-default fields). A name this version
does not know reads as the domain's default (role "", format claude_code, block kind "other"),
as the protobuf contract would read it.

The reads serve the analysis service rebuilding state it evicted: it replays them through the
same code that handled them live. Plain functions of a read-only connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson
from sqlalchemy import Connection, case, select

from threadline.domain.links import ThreadLink
from threadline.domain.records import (
    CLAUDE_CODE,
    CODEX,
    GEMINI,
    GENERIC,
    Block,
    Image,
    Position,
    Record,
    Usage,
)
from threadline.storage import schema
from threadline.storage.messages import _MESSAGE_COLUMNS

_m = schema.messages
PAGE = 2000

_FORMATS = frozenset((CLAUDE_CODE, CODEX, GEMINI, GENERIC))
_ROLES = frozenset(("user", "assistant", "system", "tool"))
_BLOCK_KINDS = frozenset(("text", "thinking", "tool_use", "tool_result", "image",
                          "server_tool_use", "other"))
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_creation_5m_tokens", "cache_creation_1h_tokens",
                 "cache_read_input_tokens")


def block_from_dict(d: Mapping) -> Block:
    """A stored content block (a dict of its non-default fields) as a `Block`."""
    kind = d.get("kind", "")
    image = d.get("image")
    seconds = d.get("duration_seconds")
    return Block(
        kind if kind in _BLOCK_KINDS else "other", d.get("text", ""),
        d.get("tool_use_id", ""), d.get("tool_name", ""),
        # Stored as text (rows.py): handed back as the bytes the parser made.
        d.get("tool_input_json", "").encode(), bool(d.get("is_error", False)),
        Image(image.get("media_type", ""), image.get("source_type", ""),
              image.get("size_bytes", 0), image.get("sha256", ""))
        if image is not None else None,
        d.get("raw_type", ""), d.get("agent_id", ""), d.get("persisted_output_path", ""),
        float(seconds) if seconds is not None else None)


def record_from_row(row: Mapping) -> Record:
    """A stored message row as a `Record`; `raw` only when the row has it."""
    usage = None
    if row["input_tokens"] is not None:
        usage = Usage(*(row[f] or 0 for f in _USAGE_FIELDS), row["service_tier"] or "",
                      row["reasoning_output_tokens"] or 0)
    return Record(
        type=row["type"],
        source=Position(row["source_path"], row["source_byte_offset"],
                        row["source_line_number"], row["source_byte_length"]),
        raw=bytes(row.get("raw") or b""),
        format=row["format"] if row["format"] in _FORMATS else CLAUDE_CODE,
        uuid=row["uuid"], parent_uuid=row["parent_uuid"],
        logical_parent_uuid=row["logical_parent_uuid"], session_id=row["session_id"],
        agent_id=row["agent_id"], is_sidechain=bool(row["is_sidechain"]),
        subtype=row["subtype"], role=row["role"] if row["role"] in _ROLES else "",
        timestamp=row["timestamp"], cwd=row["cwd"], git_branch=row["git_branch"],
        version=row["version"], model=row["model"],
        content=[block_from_dict(d) for d in orjson.loads(row["content_json"])],
        usage=usage, request_id=row["request_id"], api_message_id=row["api_message_id"],
        stop_reason=row["stop_reason"], is_meta=bool(row["is_meta"]), text=row["text"],
        key=row["key"], project_key=row["project_key"], drift=row.get("drift") or "",
    )


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
