"""The store's writes: plain functions over a Connection in the caller's transaction.

The store's single writer (services/store/writer.py) calls them, one batch under one
savepoint; they work the same on SQLite and PostgreSQL (dialect.py holds the differences).

Sequence numbers: the caller passes the highest sequence committed so far and gets back the
new highest. Every NEW message, parse error and analysis change takes the next number and a
`changes` row, so the change feed is gap-free and ordered on both backends: one writer
numbers them (the store's writer thread; on PostgreSQL the writer's advisory lock keeps it
the only one), and a batch that fails is rolled back to its savepoint with its numbers,
which the caller then hands out again.

Idempotence: a message whose key is stored is skipped (within a batch the first occurrence
wins), as is a parse error at a stored (path, byte_offset), a turn or relationship already
stored; tool calls, segments, summaries, offsets and the analysis checkpoint are upserts.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text, tuple_

from threadline.storage import dialect, folding, projects, reanalysis, schema, titles
from threadline.storage import migrations as upgrade
from threadline.storage.errors import StaleAnalysis

# Row values compared in one IN list per statement: well under SQLite's 32766 bound
# parameters (two per pair).
_IN_CHUNK = 5000


def prepare(conn: Connection) -> int:
    """Bring the database up to this version (tables, columns, migrations; analysis of an
    earlier version dropped first) and return the highest committed sequence."""
    upgrade.add_missing(conn)
    # Analysis of an earlier version is dropped before records are migrated.
    reanalysis.start_again(conn)
    upgrade.migrate(conn)
    return last_sequence(conn)


def last_sequence(conn: Connection) -> int:
    return conn.scalar(select(func.max(schema.changes.c.seq))) or 0


def next_offset(current: dict | None, incoming: dict) -> dict:
    """The source row to store: an offset only moves forward, unless the file was replaced."""
    if (current is None or incoming["reset"] or current["identity"] != incoming["identity"]
            or incoming["offset"] >= current["offset"]):
        return {k: v for k, v in incoming.items() if k != "reset"}
    return current


# --- messages and parse errors -------------------------------------------------------------

def existing_keys(conn: Connection, keys: list[str]) -> set[str]:
    """The keys among `keys` that are stored, in one statement with one bound parameter."""
    where, params = dialect.any_of(conn, "key", keys, "keys")
    return {r[0] for r in conn.execute(text(f"SELECT key FROM messages WHERE {where}"), params)}


def insert_messages(conn: Connection, rows: list[dict], seq: int
                    ) -> tuple[list[tuple[int, int]], int]:
    """Store the rows not stored yet, numbered after `seq`, with their changes, sessions,
    projects and titles. Returns ((index into rows, sequence) of the new ones, last sequence)."""
    if not rows:
        return [], seq
    seen = existing_keys(conn, [r["key"] for r in rows])
    new: list[tuple[int, int]] = []
    fresh: list[dict] = []
    for i, row in enumerate(rows):
        key = row["key"]
        if key in seen:
            continue
        seen.add(key)
        seq += 1
        row["seq"] = seq
        new.append((i, seq))
        fresh.append(row)
    if not fresh:
        return [], seq
    # Each row as sent names its file's folder; it is stored under its session's project.
    moved_from = projects.assign(conn, fresh)
    changes = [{"seq": row["seq"], "kind": schema.MESSAGE, "ref": row["key"],
                "project_key": row["project_key"], "session_id": row["session_id"]}
               for row in fresh]
    # The hot inserts are driver-level statements: SQLAlchemy's per-row parameter processing
    # costs more than SQLite's insert itself (measured: ~40% of a batch).
    conn.exec_driver_sql(dialect.insert_sql(conn, schema.messages),
                         dialect.text_safe(conn, fresh))
    conn.exec_driver_sql(dialect.insert_sql(conn, schema.changes), changes)
    fold = folding.SessionFold()
    for row in fresh:
        fold.add(row)
    fold.merge(conn)
    if moved_from:  # sessions left these projects: derive both sides again
        folding.refresh_projects(conn, fold.projects() | moved_from)
    titles.record(conn, fresh)
    return new, seq


def insert_errors(conn: Connection, rows: list[dict], seq: int
                  ) -> tuple[list[tuple[int, int]], int]:
    """Store the parse errors not stored yet (by path and byte offset), numbered after `seq`."""
    if not rows:
        return [], seq
    pe = schema.parse_errors
    wanted = [(r["path"], r["byte_offset"]) for r in rows]
    seen: set = set()
    for i in range(0, len(wanted), _IN_CHUNK // 2):
        part = wanted[i:i + _IN_CHUNK // 2]
        seen.update(tuple(r) for r in conn.execute(
            select(pe.c.path, pe.c.byte_offset).where(
                tuple_(pe.c.path, pe.c.byte_offset).in_(part))))
    new: list[tuple[int, int]] = []
    fresh: list[dict] = []
    for i, row in enumerate(rows):
        ref = (row["path"], row["byte_offset"])
        if ref in seen:
            continue
        seen.add(ref)
        seq += 1
        row["seq"] = seq
        new.append((i, seq))
        fresh.append(row)
    if fresh:
        projects.assign(conn, [], fresh)
        changes = [{"seq": row["seq"], "kind": schema.PARSE_ERROR,
                    "ref": f"{row['path']}:{row['byte_offset']}",
                    "project_key": row["project_key"], "session_id": ""} for row in fresh]
        conn.exec_driver_sql(dialect.insert_sql(conn, schema.parse_errors),
                             dialect.text_safe(conn, fresh))
        conn.exec_driver_sql(dialect.insert_sql(conn, schema.changes), changes)
    return new, seq


# --- tool calls ------------------------------------------------------------------------------

_UPSERT_TOOL_USE = text("""
INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, result_message_key,
                        input_json, is_error, started_at, finished_at, agent_id)
VALUES (:tool_use_id, :session_id, :name, :use_message_key, '', :input_json, FALSE,
        :started_at, '', '')
ON CONFLICT (tool_use_id) DO UPDATE SET
  session_id = CASE WHEN tool_calls.session_id = '' THEN excluded.session_id
                    ELSE tool_calls.session_id END,
  name = CASE WHEN excluded.name != '' THEN excluded.name ELSE tool_calls.name END,
  use_message_key = excluded.use_message_key,
  input_json = excluded.input_json,
  started_at = excluded.started_at
""")

_UPSERT_TOOL_RESULT = text("""
INSERT INTO tool_calls (tool_use_id, session_id, name, use_message_key, result_message_key,
                        input_json, is_error, started_at, finished_at, agent_id)
VALUES (:tool_use_id, :session_id, :name, '', :result_message_key, :no_input, :is_error, '',
        :finished_at, :agent_id)
ON CONFLICT (tool_use_id) DO UPDATE SET
  session_id = CASE WHEN tool_calls.session_id = '' THEN excluded.session_id
                    ELSE tool_calls.session_id END,
  name = CASE WHEN tool_calls.name = '' THEN excluded.name ELSE tool_calls.name END,
  result_message_key = excluded.result_message_key,
  is_error = excluded.is_error,
  finished_at = excluded.finished_at,
  agent_id = excluded.agent_id
""")


def upsert_tool_calls(conn: Connection, rows: list[dict]) -> None:
    """A call's two halves arrive in different batches, in either order: each half fills
    only its own columns, so applying them in any order (or twice) gives the same row."""
    uses = [r for r in rows if r["has_use"] and r["tool_use_id"]]
    # An empty input as a bound value: a blob literal is spelt differently in each dialect.
    results = [{**r, "no_input": b""} for r in rows if r["has_result"] and r["tool_use_id"]]
    if uses:
        conn.execute(_UPSERT_TOOL_USE, dialect.text_safe(conn, uses))
    if results:
        conn.execute(_UPSERT_TOOL_RESULT, dialect.text_safe(conn, results))


# --- source offsets and the analysis checkpoint ---------------------------------------------

def store_offsets(conn: Connection, offsets: list[dict]) -> list[dict]:
    """Store each source's offset (next_offset decides); returns the stored offset of every
    source named, in the order first named."""
    src = schema.sources
    paths = list({o["path"] for o in offsets if o["path"]})
    current: dict[str, dict] = {
        r["path"]: dict(r) for r in conn.execute(
            select(src).where(src.c.path.in_(paths))).mappings()
    }
    changed: dict[str, dict] = {}
    for incoming in offsets:
        path = incoming["path"]
        if not path:
            continue
        stored = next_offset(current.get(path), incoming)
        if stored is not current.get(path):
            current[path] = changed[path] = stored
    if changed:
        conn.exec_driver_sql(dialect.insert_sql(conn, src, "replace"), list(changed.values()))
    return [current[p] for p in dict.fromkeys(o["path"] for o in offsets if o["path"])]


_SAVE_PROGRESS = text(f"""
INSERT INTO analysis_progress (id, seq, version) VALUES (1, :seq, {reanalysis.ANALYSIS_VERSION})
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, version = excluded.version
""")


def save_progress(conn: Connection, through: int, after: int) -> None:
    """Move the analysis checkpoint from `after` to `through`; StaleAnalysis unless `after` is
    still the stored one (another follower got there first)."""
    p = schema.analysis_progress
    current = conn.scalar(select(p.c.seq).where(p.c.id == 1)) or 0
    if current != after:
        raise StaleAnalysis(after, current)
    conn.execute(_SAVE_PROGRESS, {"seq": through})


# --- analysis results ------------------------------------------------------------------------

_names = [c.name for c in schema.session_summaries.columns]
# The summary is a snapshot from analysis; `resumed_from` is learnt from the files while
# threading and is not known to a session rebuilt from the store, so the snapshot never
# changes it (a new row gets '' here; `save_resumed` sets it).
_UPSERT_SUMMARY = text(
    f"INSERT INTO session_summaries ({', '.join(_names)}) "
    f"VALUES ({', '.join(':' + n for n in _names)}) ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{n} = excluded.{n}" for n in _names if n not in ("session_id", "resumed_from")))

# A resumption is learnt while threading, before the session has any figures: a new row
# gets every column's default (the Table defaults apply to SQLAlchemy inserts, not to text).
_SUMMARY_DEFAULTS = {c.name: c.default.arg for c in schema.session_summaries.columns
                     if c.default is not None}
# A later finding replaces an earlier one: threading reports the session a resumed file
# continues again when a closer one turns up further down the file (a chain of resumptions).
_SAVE_RESUMED = text(
    f"INSERT INTO session_summaries ({', '.join(['session_id', *_SUMMARY_DEFAULTS])}) "
    f"VALUES ({', '.join(':' + n for n in ['session_id', *_SUMMARY_DEFAULTS])}) "
    "ON CONFLICT (session_id) DO UPDATE SET resumed_from = excluded.resumed_from")
_RESUMED_FROM = text("SELECT resumed_from FROM session_summaries WHERE session_id = :s")
# Longer chains of resumptions are not followed when looking for a cycle (none is that long).
MAX_RESUMED_CHAIN = 10_000


def write_analyses(conn: Connection, updates: list[dict], seq: int
                   ) -> tuple[list[tuple[int, int, str]], int]:
    """Store each session's analysis update and number it as one or two changes after `seq`.
    Returns ((index into updates, sequence, change kind), last sequence)."""
    changes: list[dict] = []
    new: list[tuple[int, int, str]] = []
    projects.name_analysis(conn, updates)
    for i, update in enumerate(updates):
        write_analysis(conn, update)
        kinds = [schema.THREAD_UPDATED] if update["thread_changed"] else []
        if update["summary"] is not None:
            kinds.append(schema.ANALYSIS_UPDATED)
        for kind in kinds:
            seq += 1
            new.append((i, seq, kind))
            changes.append({"seq": seq, "kind": kind, "ref": update["session_id"],
                            "project_key": update["project_key"],
                            "session_id": update["session_id"]})
    if changes:
        conn.exec_driver_sql(dialect.insert_sql(conn, schema.changes), changes)
    return new, seq


def write_analysis(conn: Connection, update: dict) -> None:
    """Merges first: a segment merged into the one before it is deleted and its turns move
    there (the next segment then takes over its index). Then segments are replaced whole;
    turns and relationships are final once written (a stored one is kept, so a resent batch
    is idempotent)."""
    sg, t = schema.segments, schema.turns
    session = update["session_id"]
    for index in update["merged"]:
        conn.execute(t.update().where(t.c.session_id == session, t.c.segment_index == index)
                     .values(segment_index=index - 1))
        conn.execute(sg.delete().where(sg.c.session_id == session, sg.c.idx == index))
    if update["segments"]:
        conn.exec_driver_sql(dialect.insert_sql(conn, sg, "replace"),
                             dialect.text_safe(conn, update["segments"]))
    if update["turns"]:
        conn.exec_driver_sql(dialect.insert_sql(conn, t, "nothing"),
                             dialect.text_safe(conn, update["turns"]))
    if update["relationships"]:
        conn.exec_driver_sql(dialect.insert_sql(conn, schema.relationships, "nothing"),
                             dialect.text_safe(conn, update["relationships"]))
    summary = update["summary"]
    if summary is not None:
        conn.execute(_UPSERT_SUMMARY, {**summary, "resumed_from": ""})
    earlier = update["resumed_from"] or (summary or {}).get("resumed_from", "")
    if earlier and not save_resumed(conn, session, update["project_key"], earlier):
        update["resumed_from"] = ""  # refused: the change published for it says so too


def save_resumed(conn: Connection, session: str, project_key: str, earlier: str) -> bool:
    """Store that `session` continues `earlier`, unless `earlier` already continues `session`
    (directly or through a chain): resumptions never form a cycle, whatever order files are
    read in. Returns whether it was stored."""
    seen = {session}
    at = earlier
    for _ in range(MAX_RESUMED_CHAIN):
        if not at:
            break
        if at in seen:
            return False
        seen.add(at)
        at = conn.scalar(_RESUMED_FROM, {"s": at}) or ""
    conn.execute(_SAVE_RESUMED, {**_SUMMARY_DEFAULTS, "session_id": session,
                                 "project_key": project_key, "resumed_from": earlier})
    return True
