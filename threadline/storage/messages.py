"""Reading stored messages: one session's page by page, or every one for export.

Plain functions over a SQLAlchemy Connection returning plain dicts (the row's columns); the
domain records they stand for come from `records.record_from_row`.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from sqlalchemy import Connection, select

from threadline.storage import names, schema
from threadline.storage.errors import InvalidArgument, NotFound

DEFAULT_MESSAGE_LIMIT = 1000
MAX_MESSAGE_LIMIT = 10000

_m = schema.messages
# Every message column except the raw line, which is only read when asked for.
_MESSAGE_COLUMNS = [c for c in _m.c if c.name != "raw"]
_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens",
          "reasoning_output_tokens", "service_tier")


def _message_columns(include_raw: bool) -> list:
    return list(_m.c) if include_raw else _MESSAGE_COLUMNS


def session_messages(conn: Connection, session_id: str, after_seq: int = 0,
                     limit: int = DEFAULT_MESSAGE_LIMIT,
                     include_raw: bool = False) -> tuple[list[dict], int]:
    """Messages of a session stored after `after_seq`, in sequence order, and the sequence to
    continue from (0 when there is nothing more)."""
    if not session_id:
        raise InvalidArgument("session_id is required")
    session_id = names.resolve_session(conn, session_id)
    if after_seq < 0:
        raise InvalidArgument(f"after_sequence must be >= 0, not {after_seq}")
    if limit < 0:
        raise InvalidArgument(f"limit must be >= 0, not {limit}")
    limit = min(limit or DEFAULT_MESSAGE_LIMIT, MAX_MESSAGE_LIMIT)
    s = schema.sessions
    if conn.scalar(select(s.c.session_id).where(s.c.session_id == session_id)) is None:
        raise NotFound(f"no session {session_id!r}")
    query = (select(*_message_columns(include_raw))
             .where(_m.c.session_id == session_id, _m.c.seq > after_seq)
             .order_by(_m.c.seq).limit(limit + 1))
    rows = [dict(r) for r in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1]["seq"] if more else 0


def export_record(row: dict) -> dict:
    """A stored message row as a self-describing dict (content parsed, source nested)."""
    out = {
        "sequence": row["seq"], "key": row["key"], "uuid": row["uuid"],
        "parent_uuid": row["parent_uuid"], "logical_parent_uuid": row["logical_parent_uuid"],
        "session_id": row["session_id"], "project_key": row["project_key"],
        "agent_id": row["agent_id"], "is_sidechain": bool(row["is_sidechain"]),
        "type": row["type"], "subtype": row["subtype"], "role": row["role"],
        "timestamp": row["timestamp"], "model": row["model"], "format": row["format"],
        "cwd": row["cwd"], "git_branch": row["git_branch"], "version": row["version"],
        "request_id": row["request_id"], "api_message_id": row["api_message_id"],
        "stop_reason": row["stop_reason"], "is_meta": bool(row["is_meta"]),
        "text": row["text"], "drift": row["drift"],
        "thread_parent_uuid": row["thread_parent_uuid"],
        "thread_parent_source": row["thread_parent_source"],
        "thread_relation": row["thread_relation"],
        "thread_confidence": row["thread_confidence"],
        "content": orjson.loads(row["content_json"]),
        "usage": ({k: row[k] for k in _USAGE} if row["input_tokens"] is not None else None),
        "source": {"path": row["source_path"], "byte_offset": row["source_byte_offset"],
                   "line_number": row["source_line_number"],
                   "byte_length": row["source_byte_length"]},
    }
    if "raw" in row:
        out["raw"] = row["raw"]
    return out


def iter_export(conn: Connection, include_raw: bool = False,
                page: int = 1000) -> Iterator[dict]:
    """Every stored message, one dict each (see `export_record`), in sequence order.

    Reads page by page (keyset on seq) so a large database streams in bounded memory; with
    `include_raw` each dict also has "raw" (the exact line, bytes).
    """
    after = 0
    columns = _message_columns(include_raw)
    while True:
        rows = conn.execute(select(*columns).where(_m.c.seq > after)
                            .order_by(_m.c.seq).limit(page)).mappings().all()
        for r in rows:
            yield export_record(dict(r))
        if len(rows) < page:
            return
        after = rows[-1]["seq"]
