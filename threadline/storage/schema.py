"""The store's tables, indexes and connection settings (SQLAlchemy Core).

Layout choices, each for insert throughput (every index costs ~15% of it):
 - `messages.seq` is the INTEGER PRIMARY KEY (the rowid), so rows are appended in sequence order
   and looking a change up by sequence costs nothing; `messages.key` (the Message.key analysis
   computed) is a UNIQUE column, which is what makes writes idempotent.
 - the only secondary index on messages is (session_id, seq), for paging through one session.
 - `changes` is a narrow append-only log of every sequence number, so the change feed replays
   with one ordered range scan whatever the kind of change.
Enumerations (role, format, block kind) are stored as their names ("user", "claude_code"), so
the database reads well without the protobuf contract.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    UniqueConstraint,
    inspect,
)

from threadline.storage.dialect import BigInt, Text

metadata = MetaData()

# A project is the working directory its sessions ran in (threadline/storage/projects.py); its
# row is derived from its sessions' rows, one per project key in use.
projects = Table(
    "projects", metadata,
    Column("key", Text, primary_key=True),
    Column("cwd", Text, nullable=False, default=""),
    # NULL while unknown, so SQLite's min()/max() can merge them with coalesce().
    Column("first_timestamp", Text),
    Column("last_timestamp", Text),
)

sessions = Table(
    "sessions", metadata,
    Column("session_id", Text, primary_key=True),
    # The cwd of the session's first record naming one; failing that, the folder ingest
    # named (see projects.py). Every message of the session carries the same.
    Column("project_key", Text, nullable=False, default=""),
    Column("cwd", Text, nullable=False, default=""),
    Column("git_branch", Text, nullable=False, default=""),
    Column("version", Text, nullable=False, default=""),
    Column("format", Text, nullable=False, default=""),
    Column("first_timestamp", Text),
    Column("last_timestamp", Text),
    Column("message_count", Integer, nullable=False, default=0),
)

Index("sessions_project", sessions.c.project_key)

# The keys projects were known by before they were named by their working directory (the
# transcript folder ingest names, e.g. Claude Code's `-home-alice-code-app`): still accepted
# wherever a project is given. One alias may name several projects.
project_aliases = Table(
    "project_aliases", metadata,
    Column("alias", Text, primary_key=True),
    Column("project_key", Text, primary_key=True),
)

# Claude Code `summary` lines: the title of the conversation whose last message has the uuid
# `leaf_uuid` (a message of another file, as a rule). The first one stored for a leaf is kept.
summary_titles = Table(
    "summary_titles", metadata,
    Column("leaf_uuid", Text, primary_key=True),
    Column("title", Text, nullable=False),
)

messages = Table(
    "messages", metadata,
    Column("seq", BigInt, primary_key=True, autoincrement=False),
    Column("key", Text, nullable=False, unique=True),
    Column("uuid", Text, nullable=False),
    Column("parent_uuid", Text, nullable=False),
    Column("logical_parent_uuid", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("project_key", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("is_sidechain", Boolean, nullable=False),
    Column("type", Text, nullable=False),
    Column("subtype", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("cwd", Text, nullable=False),
    Column("git_branch", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("api_message_id", Text, nullable=False),
    Column("stop_reason", Text, nullable=False),
    Column("is_meta", Boolean, nullable=False),
    Column("text", Text, nullable=False),
    # Why the parser did not fully understand the record; "" when it did (Message.drift).
    Column("drift", Text, nullable=False, default=""),
    # threadline's reply tree, set by analysis (Message.thread_parent_uuid and the rest).
    Column("thread_parent_uuid", Text, nullable=False, default=""),
    Column("thread_parent_source", Text, nullable=False, default=""),
    Column("thread_relation", Text, nullable=False, default=""),
    Column("thread_confidence", Float, nullable=False, default=0.0),
    # JSON array of plain block dicts (see rows.py); only non-default fields are written.
    Column("content_json", LargeBinary, nullable=False),
    # Usage columns are NULL when the record carried no usage.
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cache_creation_input_tokens", Integer),
    Column("cache_creation_5m_tokens", Integer),
    Column("cache_creation_1h_tokens", Integer),
    Column("cache_read_input_tokens", Integer),
    Column("service_tier", Text),
    Column("reasoning_output_tokens", Integer),
    Column("source_path", Text, nullable=False),
    Column("source_byte_offset", BigInt, nullable=False),
    Column("source_line_number", Integer, nullable=False),
    Column("source_byte_length", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
)
Index("messages_session_seq", messages.c.session_id, messages.c.seq)

tool_calls = Table(
    "tool_calls", metadata,
    Column("tool_use_id", Text, primary_key=True),
    Column("session_id", Text, nullable=False, default=""),
    Column("name", Text, nullable=False, default=""),
    Column("use_message_key", Text, nullable=False, default=""),
    Column("result_message_key", Text, nullable=False, default=""),
    Column("input_json", LargeBinary, nullable=False, default=b""),
    Column("is_error", Boolean, nullable=False, default=False),
    Column("started_at", Text, nullable=False, default=""),
    Column("finished_at", Text, nullable=False, default=""),
    # The subagent a Task/Agent call started (toolUseResult.agentId), "" for other tools.
    Column("agent_id", Text, nullable=False, default=""),
)

# Analysis results (threadline/v1/analysis_types.proto), written in the batch's transaction.
turns = Table(
    "turns", metadata,
    Column("key", Text, primary_key=True),
    Column("session_id", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("intent", Text, nullable=False),
    Column("intent_confidence", Float, nullable=False),
    Column("intent_evidence", Text, nullable=False),
    Column("sentiment", Float, nullable=False),
    Column("urgency", Float, nullable=False),
    Column("clarity", Float, nullable=False),
    Column("complexity", Float, nullable=False),
    Column("similarity_previous", Float, nullable=False),
    Column("word_count", Integer, nullable=False),
    Column("segment_index", Integer, nullable=False),
    Column("excerpt", Text, nullable=False),
)
Index("turns_session", turns.c.session_id, turns.c.timestamp)

segments = Table(
    "segments", metadata,
    Column("session_id", Text, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("start_key", Text, nullable=False),
    Column("end_key", Text, nullable=False),
    Column("first_timestamp", Text, nullable=False),
    Column("last_timestamp", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("keywords_json", Text, nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("prompt_count", Integer, nullable=False),
    Column("tool_call_count", Integer, nullable=False),
    Column("boundary_reason", Text, nullable=False),
    Column("boundary_score", Float, nullable=False),
    Column("coherence", Float, nullable=False),
)

relationships = Table(
    "relationships", metadata,
    Column("source_key", Text, primary_key=True),
    Column("target_key", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("session_id", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("evidence", Text, nullable=False),
)
Index("relationships_session", relationships.c.session_id)

session_summaries = Table(
    "session_summaries", metadata,
    Column("session_id", Text, primary_key=True),
    Column("project_key", Text, nullable=False, default=""),
    Column("messages", Integer, nullable=False, default=0),
    Column("prompts", Integer, nullable=False, default=0),
    Column("assistant_messages", Integer, nullable=False, default=0),
    Column("interruptions", Integer, nullable=False, default=0),
    Column("response_seconds_sum", Float, nullable=False, default=0.0),
    Column("responses", Integer, nullable=False, default=0),
    Column("first_timestamp", Text, nullable=False, default=""),
    Column("last_timestamp", Text, nullable=False, default=""),
    Column("branches", Integer, nullable=False, default=0),
    Column("compactions", Integer, nullable=False, default=0),
    Column("subagents", Integer, nullable=False, default=0),
    Column("resumed_from", Text, nullable=False, default=""),
    Column("sentiment_sum", Float, nullable=False, default=0.0),
    Column("segments", Integer, nullable=False, default=0),
)

# How far the analysis follower got: every message up to `seq` is analysed, by analysis
# `version` (threadline/storage/reanalysis.py). One row.
analysis_progress = Table(
    "analysis_progress", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInt, nullable=False),
    Column("version", Integer, nullable=False, default=0),
)

sources = Table(
    "sources", metadata,
    Column("path", Text, primary_key=True),
    Column("identity", Text, nullable=False),
    Column("project_key", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("head_sha256", Text, nullable=False),
    Column("head_length", Integer, nullable=False),
    Column("offset", BigInt, nullable=False),
    Column("line_count", Integer, nullable=False),
    # The session in effect at `offset` (SourceOffset.session_id), committed with it.
    Column("session_id", Text, nullable=False, default=""),
    # sha256 of the bytes just before `offset` (SourceOffset.tail_sha256), committed with it.
    Column("tail_sha256", Text, nullable=False, default=""),
)

parse_errors = Table(
    "parse_errors", metadata,
    Column("seq", BigInt, primary_key=True, autoincrement=False),
    Column("path", Text, nullable=False),
    Column("byte_offset", BigInt, nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("byte_length", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("excerpt", LargeBinary, nullable=False),
    Column("project_key", Text, nullable=False),
    UniqueConstraint("path", "byte_offset"),
)

# Change kinds as stored in `changes.kind`.
MESSAGE = "message"
PARSE_ERROR = "parse_error"
# A session's reply tree / analysis changed; `ref` is the session id.
THREAD_UPDATED = "thread_updated"
ANALYSIS_UPDATED = "analysis_updated"

changes = Table(
    "changes", metadata,
    Column("seq", BigInt, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),
    # messages.key for a message; "path:byte_offset" for a parse error; the session id for
    # thread_updated / analysis_updated.
    Column("ref", Text, nullable=False),
    Column("project_key", Text, nullable=False),
    Column("session_id", Text, nullable=False),
)


def add_missing_columns(conn) -> list[str]:
    """Bring a database written by an earlier version up to this schema.

    Schema changes are additive only (new tables, new columns with a default), so upgrading
    is `create_all` for tables plus `ALTER TABLE ... ADD COLUMN` for each column this version
    declares and the file lacks. Returns the columns added, as "table.column".
    """
    added = []
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            default = column.default.arg if column.default is not None else None
            if column.nullable or default is None:
                ddl = f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
            else:
                literal = "''" if default == "" else repr(int(default))
                ddl = (f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} "
                       f"NOT NULL DEFAULT {literal}")
            conn.exec_driver_sql(ddl)
            added.append(f"{table.name}.{column.name}")
    return added


def configure_writer(dbapi_connection: sqlite3.Connection) -> None:
    """Pragmas of the one read-write connection; must run before any transaction starts.

    WAL can only be switched on outside a transaction, so this runs on the raw DB-API connection
    as soon as it is opened. The automatic checkpoint is switched off because it runs inside
    the commit that crosses the threshold and can stall it for 100+ ms; the store's checkpoint
    thread runs checkpoints off the write path instead (see writer.Checkpointer).
    """
    # Transactions are begun explicitly (BEGIN IMMEDIATE), never implicitly by the sqlite3 module.
    dbapi_connection.isolation_level = None
    mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch the database to WAL (got {mode!r})")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    dbapi_connection.execute("PRAGMA busy_timeout=5000")
    dbapi_connection.execute("PRAGMA cache_size=-8192")  # 8 MiB: keeps index pages hot
    dbapi_connection.execute("PRAGMA temp_store=MEMORY")


def configure_reader(dbapi_connection: sqlite3.Connection) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA busy_timeout=5000")
    dbapi_connection.execute("PRAGMA query_only=1")
