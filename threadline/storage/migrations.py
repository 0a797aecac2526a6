"""Bringing a database written by an earlier version up to this one, in the caller's
transaction (the store's writer at start, and reparse).

Schema changes are additive (`schema.add_missing_columns`; missing tables and indexes are
created, the full-text index too, filled once from the rows already stored: search.py).
Changes of what stored rows mean are numbered (SQLite's `user_version`, a one-row table on
PostgreSQL: dialect.user_version) and each runs once, in order:

1. Projects are working directories (projects.py): every record is filed under its
   session's project and the folder names it was filed under become aliases. Codex lines
   are keyed by session and line (threadline.domain.keys.codex_key): stored Codex rows take their
   new keys, and the copies of one rollout imported from two folders become one row (the
   first stored); every reference to a key follows it, and the analysis of the sessions
   that held copies is done again (their turns, segments and relationships are dropped and
   the analysis checkpoint is moved back before their first record). Then the sessions and
   projects are folded again (files holding only summary lines are no sessions), and the
   stored summaries give titles.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, delete, func, select, text, update

from threadline.domain.keys import codex_key
from threadline.storage import dialect, folding, schema, search, titles
from threadline.storage.folding import NOT_SESSION_RECORDS
from threadline.storage.projects import key_of_cwd

log = logging.getLogger(__name__)

VERSION = 1
PAGE = 1000
_m = schema.messages


def upgrade(conn: Connection) -> list[str]:
    """Create what is missing and run the migrations not yet run. Returns the columns added,
    as "table.column"."""
    added = add_missing(conn)
    migrate(conn)
    return added


def add_missing(conn: Connection) -> list[str]:
    """Create the missing tables, columns and indexes. Returns the columns added."""
    schema.metadata.create_all(conn)
    added = schema.add_missing_columns(conn)
    for table in schema.metadata.sorted_tables:
        for index in table.indexes:  # create_all adds indexes only with their table
            index.create(conn, checkfirst=True)
    search.ensure(conn)  # the full-text index, filled once from the rows stored before it
    return added


def migrate(conn: Connection) -> None:
    """Run the migrations of stored rows not yet run (numbered in `user_version`)."""
    version = dialect.user_version(conn)
    if version < 1:
        if conn.scalar(select(func.count()).select_from(_m)):
            log.info("upgrading the database: projects named by working directory, Codex "
                     "copies merged, session titles")
        file_under_projects(conn)
        merge_codex_copies(conn)
        refold(conn)
        titles.record_stored(conn)
    if version < VERSION:
        dialect.set_user_version(conn, VERSION)


# --- 1. Codex keys ---------------------------------------------------------------------------

def merge_codex_copies(conn: Connection) -> int:
    """Give stored Codex rows their keys by session and line; drop the later copies.
    Returns how many rows were dropped."""
    kept: dict[str, int] = {}
    renamed: list[dict] = []
    copies: list[int] = []
    copied_sessions: set[str] = set()
    after = 0
    while True:
        page = conn.execute(
            select(_m.c.seq, _m.c.key, _m.c.session_id, _m.c.raw)
            .where(_m.c.seq > after, _m.c.format == "codex", _m.c.uuid == "")
            .order_by(_m.c.seq).limit(PAGE)).all()
        if not page:
            break
        after = page[-1].seq
        for seq, key, session_id, raw in page:
            if not session_id:
                continue
            new = codex_key(session_id, raw)
            if new in kept:
                copies.append(seq)
                copied_sessions.add(session_id)
            else:
                kept[new] = seq
            if new != key:
                renamed.append({"old": key, "new": new, "seq": seq})
    if not renamed:
        return 0
    conn.exec_driver_sql("CREATE TEMP TABLE rekey (old TEXT PRIMARY KEY, new TEXT NOT NULL)")
    try:
        conn.execute(text("INSERT INTO rekey (old, new) VALUES (:old, :new) "
                          "ON CONFLICT DO NOTHING"), renamed)
        _drop(conn, copies)
        first_copies = [r for r in renamed if kept[r["new"]] == r["seq"]]
        if first_copies:
            conn.execute(text("UPDATE messages SET key = :new WHERE seq = :seq"), first_copies)
            conn.execute(text("UPDATE changes SET ref = :new "
                              "WHERE seq = :seq AND kind = 'message'"), first_copies)
        for table, column in (("tool_calls", "use_message_key"),
                              ("tool_calls", "result_message_key"),
                              ("messages", "thread_parent_uuid"), ("turns", "key"),
                              ("segments", "start_key"), ("segments", "end_key"),
                              ("relationships", "source_key"), ("relationships", "target_key")):
            # OR IGNORE: two copies' analysis rows would now share a primary key; the one
            # left behind (under its old key) belongs to a session analysed again below.
            # SQLite only: this version keys Codex rows by session and line from the start,
            # so a PostgreSQL database has nothing to rename.
            conn.exec_driver_sql(
                f"UPDATE OR IGNORE {table} SET {column} = "
                f"(SELECT new FROM rekey WHERE old = {table}.{column}) "
                f"WHERE {column} IN (SELECT old FROM rekey)")
    finally:
        conn.exec_driver_sql("DROP TABLE rekey")  # the temporary one: it is found first
    if copied_sessions:
        _analyse_again(conn, copied_sessions)
    log.info("Codex rows keyed by session and line: %d renamed, %d copies dropped",
             len(renamed), len(copies))
    return len(copies)


def _drop(conn: Connection, seqs: list[int]) -> None:
    for i in range(0, len(seqs), 500):
        part = seqs[i:i + 500]
        conn.execute(delete(_m).where(_m.c.seq.in_(part)))
        conn.execute(delete(schema.changes).where(schema.changes.c.seq.in_(part)))


def _analyse_again(conn: Connection, sessions: set[str]) -> None:
    """Drop the analysis of these sessions and move the analysis checkpoint back before
    their first record, so the follower analyses them again (the others it rebuilds from the
    stored records, as after any restart; its writes of them are idempotent)."""
    wanted = sorted(sessions)
    first = conn.scalar(select(func.min(_m.c.seq)).where(_m.c.session_id.in_(wanted)))
    for table in (schema.turns, schema.segments, schema.relationships):
        conn.execute(delete(table).where(table.c.session_id.in_(wanted)))
    progress = schema.analysis_progress
    if first is not None:
        conn.execute(update(progress).where(progress.c.id == 1, progress.c.seq >= first)
                     .values(seq=first - 1))


# --- 1. projects ------------------------------------------------------------------------------

def file_under_projects(conn: Connection) -> None:
    """File every stored record under its session's project (see projects.py), fold the
    sessions and projects again, and keep the folder names as aliases."""
    decided: dict[str, tuple[str, bool]] = {}  # session -> (project, from a cwd)
    folders: dict[str, set[str]] = {}  # session -> the folder names its rows were sent with
    counted: set[str] = set()  # sessions with a record other than summaries
    after = 0
    while True:
        page = conn.execute(
            select(_m.c.seq, _m.c.session_id, _m.c.project_key, _m.c.cwd, _m.c.type)
            .where(_m.c.seq > after).order_by(_m.c.seq).limit(PAGE * 10)).all()
        if not page:
            break
        after = page[-1].seq
        for _seq, sid, folder, cwd, kind in page:
            if not sid:
                continue
            folders.setdefault(sid, set()).add(folder)
            if kind not in NOT_SESSION_RECORDS:
                counted.add(sid)
            project, from_cwd = decided.get(sid, ("", False))
            if from_cwd:
                continue
            if cwd and kind not in NOT_SESSION_RECORDS:
                decided[sid] = (key_of_cwd(cwd), True)
            elif not project:
                decided[sid] = (folder, False)
    aliases: dict[str, set[str]] = {}
    for sid, (project, from_cwd) in decided.items():
        if from_cwd:
            for folder in folders[sid]:
                if folder and folder != project:
                    aliases.setdefault(folder, set()).add(project)
    if aliases:
        conn.execute(text("INSERT INTO project_aliases (alias, project_key) "
                          "VALUES (:alias, :project_key) ON CONFLICT DO NOTHING"),
                     [{"alias": a, "project_key": p} for a, ps in aliases.items() for p in ps])
    # A session whose records name no cwd keeps its folder's name; a summary-only file (no
    # session) takes the one project that name stands for, if it stands for one.
    unique = {a: next(iter(ps)) for a, ps in aliases.items() if len(ps) == 1}
    for sid, (project, from_cwd) in list(decided.items()):
        if not from_cwd and sid not in counted and project in unique:
            decided[sid] = (unique[project], False)
    moves = [{"project": p, "session": sid} for sid, (p, _) in decided.items()]
    for sql in ("UPDATE messages SET project_key = :project "
                "WHERE session_id = :session AND project_key != :project",
                "UPDATE session_summaries SET project_key = :project "
                "WHERE session_id = :session AND project_key != :project"):
        if moves:
            conn.execute(text(sql), moves)
    for alias, project in unique.items():
        params = {"alias": alias, "project": project}
        conn.execute(text("UPDATE messages SET project_key = :project "
                          "WHERE session_id = '' AND project_key = :alias"), params)
        conn.execute(text("UPDATE parse_errors SET project_key = :project "
                          "WHERE project_key = :alias"), params)
    # Every change names what its message, parse error or session now does.
    conn.exec_driver_sql(
        "UPDATE changes SET project_key = coalesce((SELECT m.project_key FROM messages m "
        "WHERE m.seq = changes.seq), project_key) WHERE kind = 'message'")
    conn.exec_driver_sql(
        "UPDATE changes SET project_key = coalesce((SELECT e.project_key FROM parse_errors e "
        "WHERE e.seq = changes.seq), project_key) WHERE kind = 'parse_error'")
    conn.exec_driver_sql(
        "UPDATE changes SET project_key = coalesce((SELECT m.project_key FROM messages m "
        "WHERE m.session_id = changes.session_id LIMIT 1), project_key) "
        "WHERE kind NOT IN ('message', 'parse_error')")


def refold(conn: Connection) -> tuple[int, int]:
    """Fold every stored record into its session again, and the sessions into their
    projects. Returns (sessions, projects) changed."""
    fold = folding.SessionFold()
    after = 0
    columns = (_m.c.seq, _m.c.session_id, _m.c.project_key, _m.c.cwd, _m.c.git_branch,
               _m.c.version, _m.c.format, _m.c.timestamp, _m.c.type)
    while True:
        page = conn.execute(select(*columns).where(_m.c.seq > after).order_by(_m.c.seq)
                            .limit(PAGE * 10)).mappings().all()
        if not page:
            break
        after = page[-1]["seq"]
        for row in page:
            fold.add(row)
    return fold.replace(conn), folding.refresh_projects(conn)
