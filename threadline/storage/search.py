"""Full-text search over stored messages: a contentless SQLite FTS5 index and its queries.

What is indexed. Each message is one row of `message_search` (rowid = `messages.seq`), split
into columns by where the words are: `prompt` (the text of user messages), `response` (the
text of every other role's messages), `thinking`, `tool_input` (a tool call's input JSON) and
`tool_result` (a tool's output). The text comes from the stored `content_json`, which the
parser has already redacted (threadline/redaction.py: secrets never reach a stored text, so
they never reach the index either); the raw lines are never indexed.

Contentless (`content=''`): the index keeps words and positions but no copy of the text, so
text is not stored twice. Two consequences, both handled here:
- FTS5's `snippet()` needs the text. A query asks the index only for the best rowids; the
  texts of those few hits are then computed from `messages` with the same SQL that indexed
  them and put into a small in-memory FTS5 table of the same shape, where `snippet()` runs
  with the same match expression (`_Snippets`).
- Removing a row from a contentless index needs the exact values it was indexed with. The
  triggers on `messages` (update of content or role, delete) compute them from the old row
  with that same SQL, so a reparse or a migration that rewrites or drops rows keeps the index
  in step. New rows are indexed by `index_messages`, which the writer calls in the
  transaction that inserts them (once per group commit, outside the batches' savepoints:
  FTS5 writes a segment at each savepoint), with the texts split in Python from the rows it holds
  (`indexed_texts`, the same split as the SQL, which a test holds them to): three times
  cheaper than splitting them again in SQL, and the split is most of what the index costs a
  write. A database whose messages predate the index gets it filled once (`ensure`, from
  the migrations); `rebuild` refills it from scratch.

Ranking: bm25 with column weights (`WEIGHTS`: a word in a prompt counts most, in a tool's
output least), then the most recent message first. Scoring every match of a word found in
half the messages costs time in proportion to them (~3 us each), so a query matching more
than `CANDIDATES` messages ranks its `CANDIDATES` most recent matches (most recently stored;
filters applied first) and says so (`SearchResult.recent_only`): search latency stays
bounded on any size of database, and a common word finds what was said lately.

Everything SQLite-specific about search lives in this module. Search needs SQLite for now;
on another backend `search` raises `SearchUnavailable` naming it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from sqlalchemy import Connection

from threadline.storage import names
from threadline.storage.errors import InvalidArgument, StoreError
from threadline.storage.search_query import COLUMNS, Query, Term, parse

log = logging.getLogger(__name__)

TABLE = "message_search"
# bm25 weights, in the order of COLUMNS.
WEIGHTS = {"prompt": 4.0, "response": 2.0, "thinking": 1.0, "tool_input": 1.0,
           "tool_result": 0.5}
TOKENIZER = "unicode61 remove_diacritics 2"
DEFAULT_LIMIT = 20
CANDIDATES = 1000
# FTS5 merges its segments once this many are at one level (its default is 4). Every batch
# the writer commits ends a savepoint, which writes a segment; merging less eagerly made
# indexing the generated corpus about 30% cheaper, for a few more segments per query.
AUTOMERGE = 8
MMAP_BYTES = 1 << 30
MAX_LIMIT = 500
SNIPPET_TOKENS = 16
# Marks of a highlighted stretch inside snippet text (control characters: a transcript's own
# are replaced by spaces before snippets are cut, and the tokenizer reads both as spaces).
_OPEN, _CLOSE = "\x02", "\x03"


class SearchUnavailable(StoreError):
    """Search asked of a database it does not support yet (full text needs SQLite)."""


@dataclass(slots=True)
class SearchHit:
    """One message found. `snippet` is a list of (text, highlighted) stretches; `columns` the
    columns the query matched in; `ordinal` the message's position in its session (1 = the
    first stored)."""

    seq: int
    key: str
    uuid: str
    session_id: str
    project_key: str
    timestamp: str
    role: str
    type: str
    model: str
    ordinal: int
    score: float
    columns: list[str] = field(default_factory=list)
    snippet: list[tuple[str, bool]] = field(default_factory=list)


@dataclass(slots=True)
class SearchResult:
    hits: list[SearchHit]
    # More messages match than were returned.
    more: bool
    # More than CANDIDATES messages match: these are the best of the most recent ones.
    recent_only: bool
    # The FTS5 expression the query became (for explaining a result).
    expression: str


# --- the index's columns, as SQL over one message row ---------------------------------------

def _column_sql(m: str, j: str) -> str:
    """The five indexed texts of message `m`, from its content blocks `j` (json_each rows),
    aggregated; blocks of one column are joined by a newline. The same text serves removal
    (triggers), rebuilds and snippets, so they cannot disagree; the writer's Python split
    (`indexed_texts`) is held to it by a test."""
    kind, text = f"{j}.value ->> 'kind'", f"{j}.value ->> 'text'"
    parts = {
        "prompt": f"CASE WHEN {kind} = 'text' AND {m}.role = 'user' THEN {text} END",
        "response": f"CASE WHEN {kind} = 'text' AND {m}.role != 'user' THEN {text} END",
        "thinking": f"CASE WHEN {kind} = 'thinking' THEN {text} END",
        "tool_input": f"CASE WHEN {kind} IN ('tool_use', 'server_tool_use') "
                      f"THEN {j}.value ->> 'tool_input_json' END",
        "tool_result": f"CASE WHEN {kind} = 'tool_result' THEN {text} END",
    }
    return ", ".join(f"coalesce(group_concat({parts[c]}, char(10)), '')" for c in COLUMNS)


_BLOCKS = "json_each(CAST({m}.content_json AS TEXT)) AS j"
_COLUMN_LIST = ", ".join(COLUMNS)
_INDEX_RANGE = (
    f"INSERT INTO {TABLE} (rowid, {_COLUMN_LIST}) "
    f"SELECT m.seq, {_column_sql('m', 'j')} "
    f"FROM messages AS m LEFT JOIN {_BLOCKS.format(m='m')} "
    "WHERE m.seq BETWEEN ? AND ? GROUP BY m.seq")
_TEXTS_OF = (
    f"SELECT m.seq, {_column_sql('m', 'j')} "
    f"FROM messages AS m LEFT JOIN {_BLOCKS.format(m='m')} "
    "WHERE m.seq IN (SELECT value FROM json_each(?)) GROUP BY m.seq")


def _row_values(row: str) -> str:
    """The indexed values of `row` (old/new in a trigger): an aggregate over its blocks with
    no GROUP BY, so a message without blocks still gives its one row of empty texts."""
    return f"SELECT {_column_sql(row, 'j')} FROM {_BLOCKS.format(m=row)}"


_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({_COLUMN_LIST}, content='', "
    f"tokenize='{TOKENIZER}')",
    f"INSERT INTO {TABLE} ({TABLE}, rank) VALUES ('automerge', {AUTOMERGE})",
    # Removal from a contentless index takes the values the row was indexed with.
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ad AFTER DELETE ON messages BEGIN "
    f"INSERT INTO {TABLE} ({TABLE}, rowid, {_COLUMN_LIST}) "
    f"SELECT 'delete', old.seq, * FROM ({_row_values('old')}); END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_au AFTER UPDATE OF content_json, role ON messages "
    f"BEGIN "
    f"INSERT INTO {TABLE} ({TABLE}, rowid, {_COLUMN_LIST}) "
    f"SELECT 'delete', old.seq, * FROM ({_row_values('old')}); "
    f"INSERT INTO {TABLE} (rowid, {_COLUMN_LIST}) "
    f"SELECT new.seq, * FROM ({_row_values('new')}); END",
)


# --- keeping the index --------------------------------------------------------------------

def _require_sqlite(conn: Connection) -> None:
    backend = conn.dialect.name
    if backend != "sqlite":
        raise SearchUnavailable(f"full-text search needs SQLite for now; this store runs on "
                                f"{backend}")


def exists(conn: Connection) -> bool:
    return conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).first() is not None


def ensure(conn: Connection) -> bool:
    """Create the index and its triggers when missing, indexing the messages already stored
    (a database from before search: done once). Returns whether it was created. A no-op on
    other backends (search is SQLite-only for now)."""
    if conn.dialect.name != "sqlite" or exists(conn):
        return False
    for ddl in _DDL:
        conn.exec_driver_sql(ddl)
    started = time.monotonic()
    indexed = _index_all(conn)
    if indexed:
        log.info("full-text index built over the %d stored messages in %.1f s", indexed,
                 time.monotonic() - started)
    return True


def rebuild(conn: Connection) -> int:
    """Empty the index and index every stored message again (for a damaged index, or after
    the indexed columns change). Returns the messages indexed."""
    _require_sqlite(conn)
    ensure(conn)
    conn.exec_driver_sql(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('delete-all')")
    return _index_all(conn)


def _index_all(conn: Connection) -> int:
    last = conn.exec_driver_sql("SELECT max(seq) FROM messages").scalar() or 0
    # In ranges, so a large database is indexed in bounded memory.
    step, indexed = 50_000, 0
    for first in range(1, last + 1, step):
        indexed += conn.exec_driver_sql(_INDEX_RANGE, (first, first + step - 1)).rowcount
    return indexed


def _ends_text_at_nul() -> bool:
    """Whether this SQLite's JSON functions end a string at an escaped NUL (`\\u0000`), as
    3.40 does: the Python split must then do the same to agree with the SQL one."""
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        return probe.execute("""SELECT length('["a\\u0000b"]' ->> '$[0]')""").fetchone()[0] == 1


_SQL_ENDS_TEXT_AT_NUL = _ends_text_at_nul()
_INSERT = f"INSERT INTO {TABLE} (rowid, {_COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?)"


def index_messages(conn: Connection, rows: list[dict]) -> None:
    """Index message rows just inserted in this transaction (the writer's call); each has
    its `seq`, `role` and `content_json`. Nothing on other backends: search is SQLite-only
    for now (`ensure` creates no index there)."""
    if not rows or conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql(_INSERT, [(row["seq"], *indexed_texts(row["role"],
                                                               row["content_json"]))
                                   for row in rows])


def indexed_texts(role: str, content_json: bytes | str) -> tuple[str, str, str, str, str]:
    """A message's five indexed texts, exactly as `_column_sql` computes them: the blocks of
    each column in order, joined by a newline; a block without the field is left out."""
    prompt: list[str] = []
    response: list[str] = []
    thinking: list[str] = []
    tool_input: list[str] = []
    tool_result: list[str] = []
    text_column = prompt if role == "user" else response
    for block in orjson.loads(content_json):
        kind = block.get("kind")
        if kind == "text":
            column, name = text_column, "text"
        elif kind == "thinking":
            column, name = thinking, "text"
        elif kind in ("tool_use", "server_tool_use"):
            column, name = tool_input, "tool_input_json"
        elif kind == "tool_result":
            column, name = tool_result, "text"
        else:
            continue
        value = block.get(name)
        if value is not None:
            column.append(value.split("\x00", 1)[0] if _SQL_ENDS_TEXT_AT_NUL else value)
    return ("\n".join(prompt), "\n".join(response), "\n".join(thinking),
            "\n".join(tool_input), "\n".join(tool_result))


# --- querying --------------------------------------------------------------------------------

def _quote(term: Term) -> str:
    """A term as an FTS5 string: always quoted (a `"` inside doubled), so nothing a user
    types is read as FTS5 syntax (NEAR, AND, column filters, `^`, `*`)."""
    # NUL would end the expression early inside FTS5; it separates words anyway.
    quoted = '"' + term.text.replace('"', '""').replace("\x00", " ") + '"'
    return quoted + " *" if term.prefix else quoted


def expression(query: Query) -> str:
    """The FTS5 match expression of a parsed query."""
    found = " AND ".join(_quote(t) for t in query.terms)
    if query.columns:
        found = "{" + " ".join(query.columns) + "} : (" + found + ")"
    for term in query.excluded:
        found = f"({found}) NOT {_quote(term)}"
    return found


def search(conn: Connection, text: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
    """The messages matching the query `text` (see search_query.py), best first.

    QueryError (an InvalidArgument) when the query cannot be understood; InvalidArgument for
    an ambiguous session prefix or project name; SearchUnavailable off SQLite."""
    _require_sqlite(conn)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    query = parse(text)
    match = expression(query)
    if not exists(conn):  # a database from before search that no store has opened since
        raise SearchUnavailable("this database has no search index yet: the store builds it "
                                "when it starts, or run `threadline search --rebuild`")
    where, params = _filters(conn, query)
    # Matches are read from the index first and looked up in `messages` one by one: CROSS
    # JOIN keeps SQLite from turning it around (probing the index once per message of a
    # session or a tool is a hundred times slower).
    join = " CROSS JOIN messages AS m ON m.seq = s.rowid" if "m." in where else ""
    # Those lookups read pages all over `messages`: mapped, they cost no system call each.
    conn.exec_driver_sql(f"PRAGMA mmap_size = {MMAP_BYTES}")
    # The CANDIDATES-th most recent match, if there are that many: FTS5 walks its matches
    # in rowid order without scoring them, so this is cheap.
    floor = conn.exec_driver_sql(
        f"SELECT s.rowid FROM {TABLE} AS s{join} WHERE {TABLE} MATCH ?{where} "
        "ORDER BY s.rowid DESC LIMIT 1 OFFSET ?", (match, *params, CANDIDATES - 1)).scalar()
    weights = ", ".join(str(WEIGHTS[c]) for c in COLUMNS)
    found = conn.exec_driver_sql(
        f"SELECT s.rowid, bm25({TABLE}, {weights}) AS score "
        f"FROM {TABLE} AS s CROSS JOIN messages AS m ON m.seq = s.rowid "
        f"WHERE {TABLE} MATCH ? AND s.rowid >= ?{where} "
        "ORDER BY score, m.timestamp DESC, m.seq DESC LIMIT ?",
        (match, floor or 0, *params, limit + 1)).all()
    hits = _hits(conn, [(seq, score) for seq, score in found[:limit]], match)
    return SearchResult(hits, len(found) > limit, floor is not None, match)


def _filters(conn: Connection, query: Query) -> tuple[str, list]:
    """SQL conditions on a match `s` (and its message `m`, looked up only when a condition
    names it). A session's or a tool's messages are few: they are listed once (from
    indexes) and each match is checked against the list, without reading its message."""
    where: list[str] = []
    params: list = []
    if query.project:
        where.append("m.project_key = ?")
        params.append(names.resolve_project(conn, query.project))
    if query.session:
        session = names.resolve_session(conn, query.session)
        # The session's sequence range, from the (session_id, seq) index: FTS5 then reads
        # only the matches inside it.
        first, last = conn.exec_driver_sql(
            "SELECT min(seq), max(seq) FROM messages WHERE session_id = ?", (session,)).one()
        where.append("s.rowid BETWEEN ? AND ?")
        params.extend([first or 0, last or 0])
        where.append("+s.rowid IN (SELECT seq FROM messages WHERE session_id = ?)")
        params.append(session)
    if query.roles:
        where.append(f"m.role IN ({', '.join('?' for _ in query.roles)})")
        params.extend(query.roles)
    if query.tool:
        # Both halves of a call: the message that made it and the one holding its result.
        where.append("+s.rowid IN (SELECT seq FROM messages WHERE key IN ("
                     "SELECT use_message_key FROM tool_calls WHERE name = ? COLLATE NOCASE "
                     "UNION ALL SELECT result_message_key FROM tool_calls "
                     "WHERE name = ? COLLATE NOCASE))")
        params.extend([query.tool, query.tool])
    if query.model:
        where.append("m.model LIKE ? ESCAPE '\\'")
        escaped = (query.model.replace("\\", "\\\\").replace("%", "\\%")
                   .replace("_", "\\_"))
        params.append(f"%{escaped}%")
    # Stored timestamps are ISO-8601 in UTC, so they compare as text.
    if query.since:
        where.append("m.timestamp >= ?")
        params.append(query.since.isoformat())
    if query.until:
        where.append("m.timestamp < ?")
        params.append((query.until + timedelta(days=1)).isoformat())
    return "".join(f" AND {w}" for w in where), params


def _hits(conn: Connection, found: list[tuple[int, float]], match: str) -> list[SearchHit]:
    if not found:
        return []
    seqs = [seq for seq, _ in found]
    listed = "[" + ",".join(map(str, seqs)) + "]"
    rows = {r.seq: r for r in conn.exec_driver_sql(
        "SELECT seq, key, uuid, session_id, project_key, timestamp, role, type, model, "
        "(SELECT count(*) FROM messages AS o WHERE o.session_id = m.session_id "
        " AND o.seq <= m.seq) AS ordinal "
        "FROM messages AS m WHERE seq IN (SELECT value FROM json_each(?))", (listed,))}
    texts = {r[0]: r[1:] for r in conn.exec_driver_sql(_TEXTS_OF, (listed,))}
    snippets = _snippets().cut(texts, match)
    hits = []
    for seq, score in found:
        r = rows[seq]
        columns, snippet = snippets.get(seq, ([], []))
        hits.append(SearchHit(seq=seq, key=r.key, uuid=r.uuid, session_id=r.session_id,
                              project_key=r.project_key, timestamp=r.timestamp, role=r.role,
                              type=r.type, model=r.model, ordinal=r.ordinal, score=score,
                              columns=columns, snippet=snippet))
    return hits


class _Snippets:
    """An in-memory FTS5 table shaped like the index, holding a query's hits only: FTS5's
    snippet() needs the text, which the contentless index does not keep. One per thread (an
    SQLite connection belongs to the thread that uses it)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:")
        self._db.execute(f"CREATE VIRTUAL TABLE hits USING fts5({_COLUMN_LIST}, "
                         f"tokenize='{TOKENIZER}')")

    def cut(self, texts: dict[int, tuple[str, ...]], match: str
            ) -> dict[int, tuple[list[str], list[tuple[str, bool]]]]:
        db = self._db
        db.execute("DELETE FROM hits")
        clean = str.maketrans({_OPEN: " ", _CLOSE: " "})
        db.executemany(f"INSERT INTO hits (rowid, {_COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?)",
                       [(seq, *(t.translate(clean) for t in values))
                        for seq, values in texts.items()])
        marked = ", ".join(f"instr(highlight(hits, {i}, '{_OPEN}', ''), '{_OPEN}') > 0"
                           for i in range(len(COLUMNS)))
        out = {}
        for seq, snippet, *in_column in db.execute(
                f"SELECT rowid, snippet(hits, -1, '{_OPEN}', '{_CLOSE}', '…', "
                f"{SNIPPET_TOKENS}), {marked} FROM hits WHERE hits MATCH ?", (match,)):
            columns = [c for c, hit in zip(COLUMNS, in_column, strict=True) if hit]
            out[seq] = (columns, _stretches(snippet or ""))
        return out


_local = threading.local()


def _snippets() -> _Snippets:
    cutter = getattr(_local, "snippets", None)
    if cutter is None:
        cutter = _local.snippets = _Snippets()
    return cutter


def _stretches(snippet: str) -> list[tuple[str, bool]]:
    """snippet() text with its marks as (text, highlighted) stretches."""
    out: list[tuple[str, bool]] = []
    rest = snippet
    while rest:
        start = rest.find(_OPEN)
        if start < 0:
            out.append((rest, False))
            break
        end = rest.find(_CLOSE, start)
        end = len(rest) if end < 0 else end
        if start:
            out.append((rest[:start], False))
        out.append((rest[start + 1:end], True))
        rest = rest[end + 1:]
    return out
