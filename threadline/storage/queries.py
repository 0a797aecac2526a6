"""Reading the store: plain functions over a SQLAlchemy Connection, returning plain dicts.

Used by the servicer (on read-only pooled connections, from a thread pool) and directly by
the CLI, which opens the database with `open_readonly` and needs no server:

    engine = open_readonly(path)
    with engine.connect() as conn:
        for record in iter_export(conn):
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from threadline.storage import dialect, folding, names, schema, titles
from threadline.storage.database import Database
from threadline.storage.errors import InvalidArgument, NotFound

DEFAULT_MESSAGE_LIMIT = 1000
MAX_MESSAGE_LIMIT = 10000
DEFAULT_ERROR_LIMIT = 1000
CHANGES_PAGE = 500

_m = schema.messages
# Every message column except the raw line, which is only read when asked for.
_MESSAGE_COLUMNS = [c for c in _m.c if c.name != "raw"]
_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens",
          "reasoning_output_tokens", "service_tier")


def open_readonly(db: Path | str, pool_size: int = 3) -> Engine:
    """An engine of read-only connections over an existing database (a SQLite file or a
    PostgreSQL URL; see database.Database.read_engine)."""
    return Database(db).read_engine(pool_size)


def _message_columns(include_raw: bool) -> list:
    return list(_m.c) if include_raw else _MESSAGE_COLUMNS


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


def offsets(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(
        select(schema.sources).order_by(schema.sources.c.path)).mappings()]


def _error_filters(query, reason: str, path: str):
    pe = schema.parse_errors
    if reason:
        query = query.where(pe.c.reason == reason)
    if path:
        # Not LIKE: a path may hold "%" or "_", and SQLite's LIKE ignores ASCII case.
        query = query.where(dialect.Contains(pe.c.path, path))
    return query


def parse_errors(conn: Connection, limit: int | None = DEFAULT_ERROR_LIMIT, reason: str = "",
                 path: str = "") -> list[dict]:
    """The first `limit` parse errors (0: the default limit, None: all), in the order they
    were stored; only those of `reason`, and of files whose path contains `path`, if given."""
    if limit is not None and limit < 0:
        raise InvalidArgument(f"limit must be >= 0, not {limit}")
    pe = schema.parse_errors
    query = _error_filters(select(pe).order_by(pe.c.seq), reason, path)
    if limit is not None:
        query = query.limit(limit or DEFAULT_ERROR_LIMIT)
    return [dict(r) for r in conn.execute(query).mappings()]


def parse_error_counts(conn: Connection, reason: str = "", path: str = "") -> dict[str, int]:
    """How many parse errors of each reason are stored (same filters as `parse_errors`)."""
    pe = schema.parse_errors
    query = _error_filters(select(pe.c.reason, func.count()).group_by(pe.c.reason)
                           .order_by(func.count().desc(), pe.c.reason), reason, path)
    return {r: n for r, n in conn.execute(query)}


def tool_calls(conn: Connection, session_id: str = "") -> list[dict]:
    """Tool calls (every one when `session_id` is empty), ordered by start time."""
    t = schema.tool_calls
    query = select(t).order_by(t.c.started_at, t.c.tool_use_id)
    if session_id:
        query = query.where(t.c.session_id == session_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def stats(conn: Connection) -> dict:
    def count(table) -> int:
        return conn.scalar(select(func.count()).select_from(table)) or 0

    return {
        "projects": count(schema.projects),
        "sessions": count(schema.sessions),
        "messages": count(schema.messages),
        "tool_calls": count(schema.tool_calls),
        "parse_errors": count(schema.parse_errors),
        "sources": count(schema.sources),
        "last_sequence": last_sequence(conn),
    }


def source_summary(conn: Connection, paths: list[str]) -> dict:
    """What is stored from the given files: lines read, messages, sessions, parse errors, and
    records the parser did not fully understand (format drift)."""
    src, m, pe = schema.sources, schema.messages, schema.parse_errors
    lines = conn.scalar(select(func.coalesce(func.sum(src.c.line_count), 0))
                        .where(src.c.path.in_(paths)))
    # A summary line names another conversation: a file of summaries holds no session.
    in_session = case((m.c.type.not_in(folding.NOT_SESSION_RECORDS), m.c.session_id))
    messages, sessions, drift = conn.execute(
        select(func.count(), func.count(func.distinct(in_session)),
               func.count().filter(m.c.drift != ""))
        .where(m.c.source_path.in_(paths))).one()
    errors = conn.scalar(select(func.count()).select_from(pe).where(pe.c.path.in_(paths)))
    return {"lines": lines or 0, "messages": messages, "sessions": sessions,
            "parse_errors": errors or 0, "format_drift": drift}


def census(conn: Connection) -> dict:
    """What the store holds, counted: records by format and type, format drift by format,
    version and reason, parse errors by reason. Each is a list of dicts, largest first."""
    pe = schema.parse_errors
    n = func.count().label("count")
    by_type = select(_m.c.format, _m.c.type, n).group_by(_m.c.format, _m.c.type)
    drift = (select(_m.c.format, _m.c.version, _m.c.drift, n).where(_m.c.drift != "")
             .group_by(_m.c.format, _m.c.version, _m.c.drift))
    errors = select(pe.c.reason, n).group_by(pe.c.reason)

    def rows(query) -> list[dict]:
        return [dict(r) for r in conn.execute(query.order_by(n.desc())).mappings()]

    return {"records": rows(by_type), "drift": rows(drift), "parse_errors": rows(errors)}


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


# Columns token accounting reads (threadline/domain/billing.py): never the raw line, except for the
# few `progress` lines that embed a subagent's response with usage (`agent_progress`), whose
# figures live only in that line ("embedded").
_USAGE_COLUMNS = [_m.c[name] for name in (
    "seq", "type", "format", "model", "request_id", "api_message_id", "is_sidechain",
    "stop_reason", "timestamp", "session_id", "project_key", "source_path",
    "source_line_number", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_input_tokens",
    "reasoning_output_tokens")]
_EMBEDS_USAGE = and_(_m.c.type == "progress", _m.c.input_tokens.is_(None),
                     dialect.Contains(_m.c.raw, b'"agent_progress"'),
                     dialect.Contains(_m.c.raw, b'"usage":'))
_EMBEDDED = case((_m.c.input_tokens.is_(None) & (_m.c.type == "progress"), _m.c.raw),
                 else_=None).label("embedded")
USAGE_PAGE = 2000


def usage_rows(conn: Connection, formats: tuple[str, ...] = (),
               page: int = USAGE_PAGE) -> Iterator[dict]:
    """The rows token accounting needs, in sequence order, page by page (keyset on seq):
    every row with usage, Codex `turn_context`/`response_item` rows (the model in effect and
    the model's output between two usage reports), and `agent_progress` lines that embed a
    response with usage (their raw line as "embedded"). `formats` limits them to some
    source formats."""
    condition = or_(_m.c.input_tokens.is_not(None),
                    and_(_m.c.format == "codex",
                         _m.c.type.in_(("turn_context", "response_item"))),
                    _EMBEDS_USAGE)
    if formats:
        condition = and_(_m.c.format.in_(formats), condition)
    after = 0
    while True:
        rows = conn.execute(select(*_USAGE_COLUMNS, _EMBEDDED)
                            .where(_m.c.seq > after, condition)
                            .order_by(_m.c.seq).limit(page)).mappings().all()
        for r in rows:
            yield dict(r)
        if len(rows) < page:
            return
        after = rows[-1]["seq"]
