"""Reads of threading and analysis: a session's reply tree and its analysis results, and
how far the analysis follower has got.

Plain functions of a read-only connection returning row dicts; `services/analysis/views.py`
assembles them into the answers of GetThreads / GetSessionAnalysis and the CLI. The records
the follower replays come from `records.py`.
"""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, func, select

from threadline.storage import schema

_m = schema.messages
EXCERPT_CHARS = 120


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


def session_known(conn: Connection, session_id: str) -> bool:
    return conn.scalar(select(func.count()).select_from(schema.sessions)
                       .where(schema.sessions.c.session_id == session_id)) > 0


def thread_nodes(conn: Connection, session_id: str) -> list[dict]:
    """The session's records in store order with their thread links and a text excerpt."""
    query = (select(_m.c.seq, _m.c.key, _m.c.uuid, _m.c.thread_parent_uuid,
                    _m.c.thread_parent_source, _m.c.thread_relation, _m.c.thread_confidence,
                    _m.c.type, _m.c.subtype, _m.c.role, _m.c.timestamp, _m.c.agent_id,
                    _m.c.is_sidechain, func.substr(_m.c.text, 1, EXCERPT_CHARS).label("excerpt"),
                    _m.c.source_path, _m.c.logical_parent_uuid)
             .where(_m.c.session_id == session_id).order_by(_m.c.seq))
    return [dict(r) for r in conn.execute(query).mappings()]


def compactions(conn: Connection, session_id: str) -> list[dict]:
    """Compaction boundaries with their trigger and pre-compaction tokens (from the raw line:
    `compactMetadata`), and 1.0.x compaction summaries that start a new root.

    A summary with a thread parent is the one 2.x writes under its `compact_boundary`: that
    boundary stands for the compaction. A 1.0.x summary has no parent (it is the only mark
    of its compaction), so every one of them counts, as the session summary counts them."""
    query = (select(_m.c.uuid, _m.c.logical_parent_uuid, _m.c.timestamp, _m.c.subtype, _m.c.raw)
             .where(_m.c.session_id == session_id, _m.c.subtype.in_(
                 ("compact_boundary", "compact_summary")))
             .where((_m.c.subtype == "compact_boundary") | (_m.c.thread_parent_uuid == ""))
             .order_by(_m.c.seq))
    out = []
    for row in conn.execute(query).mappings():
        meta: dict = {}
        try:
            data = orjson.loads(row["raw"])
            found = data.get("compactMetadata") if isinstance(data, dict) else None
            meta = found if isinstance(found, dict) else {}
        except orjson.JSONDecodeError:
            pass
        tokens = meta.get("preTokens")
        out.append({"boundary_uuid": row["uuid"],
                    "logical_parent_uuid": row["logical_parent_uuid"],
                    "trigger": meta.get("trigger") if isinstance(meta.get("trigger"), str) else "",
                    "pre_tokens": tokens if isinstance(tokens, int) else 0,
                    "timestamp": row["timestamp"]})
    return out


def summary(conn: Connection, session_id: str) -> dict | None:
    ss = schema.session_summaries
    row = conn.execute(select(ss).where(ss.c.session_id == session_id)).mappings().first()
    return dict(row) if row else None


def resumed_by(conn: Connection, session_id: str) -> list[str]:
    ss = schema.session_summaries
    return list(conn.execute(select(ss.c.session_id).where(ss.c.resumed_from == session_id)
                             .order_by(ss.c.first_timestamp)).scalars())


def segments(conn: Connection, session_id: str) -> list[dict]:
    sg = schema.segments
    return [dict(r) for r in conn.execute(select(sg).where(sg.c.session_id == session_id)
                                          .order_by(sg.c.idx)).mappings()]


def turns(conn: Connection, session_id: str) -> list[dict]:
    t = schema.turns
    return [dict(r) for r in conn.execute(select(t).where(t.c.session_id == session_id)
                                          .order_by(t.c.timestamp, t.c.key)).mappings()]


def relationships(conn: Connection, session_id: str) -> list[dict]:
    """Stored relationships (reference, topic_follow_up), and the structural ones the reply
    tree holds: each linked record's `response` or `tool_continuation` to its parent."""
    r = schema.relationships
    stored = [dict(row) for row in conn.execute(
        select(r).where(r.c.session_id == session_id)).mappings()]
    structural = conn.execute(
        select(_m.c.key, _m.c.thread_parent_uuid, _m.c.thread_relation, _m.c.thread_confidence,
               _m.c.thread_parent_source)
        .where(_m.c.session_id == session_id, _m.c.thread_relation != "").order_by(_m.c.seq))
    tree = [{"source_key": key, "target_key": parent, "kind": relation,
             "confidence": confidence, "evidence": f"{source} parent link",
             "session_id": session_id}
            for key, parent, relation, confidence, source in structural]
    return tree + stored
