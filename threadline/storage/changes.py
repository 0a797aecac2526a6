"""Reading the change log: every committed change in sequence order, with the row it stored
(a message without its raw line, a parse error, or an analysed session's summary), or heads
only. The store's `Changes` replays from here before following live commits."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from threadline.storage import schema
from threadline.storage.errors import InvalidArgument
from threadline.storage.messages import _MESSAGE_COLUMNS

CHANGES_PAGE = 500

_m = schema.messages


def last_sequence(conn: Connection) -> int:
    return conn.scalar(select(func.max(schema.changes.c.seq))) or 0


def changes_since(conn: Connection, seq: int, project_key: str = "", session_id: str = "",
                  limit: int = CHANGES_PAGE) -> list[dict]:
    """Changes with a sequence above `seq`, in order, at most `limit`.

    Each is {seq, kind ("message" | "parse_error" | "thread_updated" | "analysis_updated"),
    project_key, session_id, message, error}, `message` (without raw bytes) or `error` holding
    the stored row; analysis changes have neither but `summary`, the session's summary row
    as it is now. A session filter matches messages and analysis changes (parse errors
    belong to no session).
    """
    if seq < 0:
        raise InvalidArgument(f"since_sequence must be >= 0, not {seq}")
    ch = schema.changes
    if session_id:
        # The (session_id, seq) index serves the messages; the session's few analysis changes
        # come from a range scan of the change log above `seq`.
        query = (select(*_MESSAGE_COLUMNS).where(_m.c.session_id == session_id, _m.c.seq > seq)
                 .order_by(_m.c.seq).limit(limit))
        if project_key:
            query = query.where(_m.c.project_key == project_key)
        out = [_message_change(dict(r)) for r in conn.execute(query).mappings()]
        analysed = (select(ch).where(ch.c.seq > seq, ch.c.session_id == session_id,
                                     ch.c.kind.in_(_ANALYSIS_KINDS))
                    .order_by(ch.c.seq).limit(limit))
        if project_key:
            analysed = analysed.where(ch.c.project_key == project_key)
        extra = [dict(r) for r in conn.execute(analysed).mappings()]
        if not extra:
            return out
        out = sorted(out + _with_summaries(conn, extra), key=lambda c: c["seq"])[:limit]
        return out
    query = select(ch).where(ch.c.seq > seq).order_by(ch.c.seq).limit(limit)
    if project_key:
        query = query.where(ch.c.project_key == project_key)
    page = [dict(r) for r in conn.execute(query).mappings()]
    by_kind: dict[str, list[int]] = {}
    for c in page:
        by_kind.setdefault(c["kind"], []).append(c["seq"])
    found: dict[int, dict] = {}
    if schema.MESSAGE in by_kind:
        found.update((r["seq"], dict(r)) for r in conn.execute(
            select(*_MESSAGE_COLUMNS).where(_m.c.seq.in_(by_kind[schema.MESSAGE]))).mappings())
    if schema.PARSE_ERROR in by_kind:
        pe = schema.parse_errors
        found.update((r["seq"], dict(r)) for r in conn.execute(
            select(pe).where(pe.c.seq.in_(by_kind[schema.PARSE_ERROR]))).mappings())
    analysed = {c["seq"]: c for c in _with_summaries(
        conn, [c for c in page if c["kind"] in _ANALYSIS_KINDS])}
    out = []
    for c in page:
        if c["seq"] in analysed:
            out.append(analysed[c["seq"]])
            continue
        row = found.get(c["seq"])
        if row is None:  # cannot happen: rows and changes are written together
            continue
        is_message = c["kind"] == schema.MESSAGE
        out.append({"seq": c["seq"], "kind": c["kind"], "project_key": c["project_key"],
                    "session_id": c["session_id"], "message": row if is_message else None,
                    "error": None if is_message else row})
    return out


_ANALYSIS_KINDS = (schema.THREAD_UPDATED, schema.ANALYSIS_UPDATED)


def change_heads_since(conn: Connection, seq: int, limit: int = CHANGES_PAGE) -> list[dict]:
    """Like `changes_since` over the whole store, heads only: {seq, kind, project_key,
    session_id} from the change log alone."""
    if seq < 0:
        raise InvalidArgument(f"since_sequence must be >= 0, not {seq}")
    ch = schema.changes
    query = (select(ch.c.seq, ch.c.kind, ch.c.project_key, ch.c.session_id)
             .where(ch.c.seq > seq).order_by(ch.c.seq).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def _with_summaries(conn: Connection, changes: list[dict]) -> list[dict]:
    """Analysis changes read back, each with its session's current summary row."""
    if not changes:
        return []
    ss = schema.session_summaries
    sessions = sorted({c["session_id"] for c in changes})
    summaries = {r["session_id"]: dict(r) for r in conn.execute(
        select(ss).where(ss.c.session_id.in_(sessions))).mappings()}
    return [{"seq": c["seq"], "kind": c["kind"], "project_key": c["project_key"],
             "session_id": c["session_id"], "message": None, "error": None,
             "summary": summaries.get(c["session_id"])} for c in changes]


def _message_change(row: dict) -> dict:
    return {"seq": row["seq"], "kind": schema.MESSAGE, "project_key": row["project_key"],
            "session_id": row["session_id"], "message": row, "error": None}
