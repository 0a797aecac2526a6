"""Parsing the stored lines again with the current parser, in place.

Every stored message keeps the exact line it came from (`raw`), so an improved parser reaches
old data without the original files: `reparse(db_path)` reads each stored line again
(`parser.reparse_line`, as the format it was stored with) and rewrites what the parser derives
from it exactly as a fresh import would store it, because it builds rows with the same code
(`convert.message_to_pb`, then `rows.message_row`).

Kept as stored: `seq`, `key`, `raw`, the source position, `session_id`, `project_key` and
the thread columns. These came from the line's context (its file, the records before it,
analysis), not from the line. Derived again: every other message column; the tool calls
named by messages whose content or timestamp changed (each such call is rebuilt from every
stored message naming it, in sequence order, as the store's upserts built it); each
session's and project's cwd, branch, version, format, time span and message count (folded
with the writer's rules, folding.py).

A stored line that the current parser rejects outright keeps its row unchanged and is
reported: deleting a message is not this command's call. Parse errors are not revisited:
only an excerpt of their line is stored, so turning them into records needs the original
files (import them again).

Concurrency: this is maintenance for when the services are stopped. It takes the database's
writer lock (threadline/dblock.py), so it refuses at once, naming the holder, while a store,
`up` or `import` has the database. The database is then opened
in SQLite's EXCLUSIVE locking mode, which gets its lock only while no other connection has the
file open (a running store keeps its writer and readers open), and keeps it to the end.
When the lock does not come within `wait_seconds`, `DatabaseInUse` is raised and nothing is
changed. All changes are one transaction: an interrupted run leaves the database as it was.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from services.analysis import normalize
from services.ingest import parser
from services.store import rows
from services.store.writer import upsert_tool_calls
from threadline import convert, dblock
from threadline.domain.records import LineError, Position, Record, ToolCall
from threadline.storage import folding, schema
from threadline.storage import migrations as upgrade
from threadline.storage.errors import DatabaseMissing, StoreError

# Columns that hold the line's context rather than what the parser read from the line.
KEPT = frozenset({"seq", "key", "raw", "source_path", "source_byte_offset",
                  "source_line_number", "source_byte_length", "session_id", "project_key",
                  # threadline's reply tree: set by analysis from the file's order.
                  "thread_parent_uuid", "thread_parent_source", "thread_relation",
                  "thread_confidence"})
DERIVED = tuple(c.name for c in schema.messages.c if c.name not in KEPT)
# Rows read at a time: raw lines can be large (images), so keep a page modest.
PAGE = 200
# Unparsable lines listed in the report (all are counted).
LISTED = 20
_m = schema.messages
_t = schema.tool_calls


class DatabaseInUse(StoreError):
    def __init__(self, path: object, waited: float, holder: str = ""):
        if holder:  # a threadline writer holds the database's lock (dblock.py)
            message = (f"database {path} is in use by {holder}; stop the services and run "
                       "reparse again")
        else:
            message = (f"{path} is open in another process (a running store?); stop the "
                       f"services and run reparse again (waited {waited:g} s for the lock)")
        super().__init__(message)
        self.path = path


@dataclass(slots=True)
class Unparsable:
    """A stored line the current parser no longer turns into a record."""

    seq: int
    path: str
    line_number: int
    reason: str
    detail: str


@dataclass(slots=True)
class Report:
    messages: int = 0
    changed: int = 0
    # Rows changed, per column.
    columns: Counter = field(default_factory=Counter)
    # Non-empty drift values over all messages, before and after.
    drift_before: Counter = field(default_factory=Counter)
    drift_after: Counter = field(default_factory=Counter)
    tool_calls_rebuilt: int = 0
    tool_calls_changed: int = 0
    sessions_updated: int = 0
    projects_updated: int = 0
    unparsable: int = 0
    unparsable_examples: list[Unparsable] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "messages": self.messages, "changed": self.changed,
            "columns": dict(self.columns.most_common()),
            "drift": {"before": dict(self.drift_before.most_common()),
                      "after": dict(self.drift_after.most_common())},
            "tool_calls": {"rebuilt": self.tool_calls_rebuilt,
                           "changed": self.tool_calls_changed},
            "sessions_updated": self.sessions_updated,
            "projects_updated": self.projects_updated,
            "unparsable": self.unparsable,
            "unparsable_examples": [
                {"seq": u.seq, "path": u.path, "line_number": u.line_number,
                 "reason": u.reason, "detail": u.detail} for u in self.unparsable_examples],
            "columns_added": self.columns_added,
            "dry_run": self.dry_run, "seconds": round(self.seconds, 3),
        }


def parse_stored(raw: bytes, position: Position, format: str) -> Record | LineError:
    """The current parser's reading of one stored line, as the format it was stored with
    (a Gemini chat document is stored as one record per message, each message's own JSON)."""
    result = parser.reparse_line(raw, position, format)
    if isinstance(result, list):
        if len(result) == 1:
            return result[0]
        return LineError(position, "not_one_record",
                         f"the stored line now reads as {len(result)} records",
                         parser.excerpt(raw))
    return result


def reparse(db_path: Path | str, dry_run: bool = False, wait_seconds: float = 2.0) -> Report:
    """Parse every stored line again and update the derived columns (see the module doc)."""
    started = time.monotonic()
    if not Path(db_path).is_file():
        raise DatabaseMissing(db_path)
    try:  # refused at once while a store, import or `up` has the database
        lock = dblock.acquire(Path(db_path), "threadline reparse")
    except dblock.DatabaseLocked as exc:
        raise DatabaseInUse(db_path, 0, holder=exc.holder) from None
    try:
        return _reparse_locked(Path(db_path), dry_run, wait_seconds, started)
    finally:
        lock.release()


def _reparse_locked(db_path: Path, dry_run: bool, wait_seconds: float,
                    started: float) -> Report:
    engine = _open(db_path, wait_seconds)
    try:
        conn = engine.connect()
        try:
            transaction = conn.begin()
        except OperationalError as exc:
            conn.close()  # now: an open connection would keep its lock on the file
            if isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig):
                raise DatabaseInUse(db_path, wait_seconds) from None
            raise
        with conn, transaction:
            report = _reparse(conn)
            report.dry_run = dry_run
            if dry_run:
                transaction.rollback()
    finally:
        engine.dispose()
    report.seconds = time.monotonic() - started
    return report


def _open(path: Path, wait_seconds: float) -> Engine:
    if not path.is_file():
        raise DatabaseMissing(path)

    def configure(c: sqlite3.Connection) -> None:
        c.isolation_level = None
        c.execute(f"PRAGMA busy_timeout={max(0, int(wait_seconds * 1000))}")
        # Taken at the first access and held until the connection closes: no store can
        # open the file meanwhile, and none may have it open now.
        c.execute("PRAGMA locking_mode=EXCLUSIVE")

    engine = create_engine("sqlite://", poolclass=NullPool,
                           creator=lambda: sqlite3.connect(str(path), check_same_thread=False))
    event.listen(engine, "connect", lambda c, _record: configure(c))
    event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN EXCLUSIVE"))
    return engine


def _reparse(conn: Connection) -> Report:
    report = Report()
    report.columns_added = upgrade.upgrade(conn)
    update = _update_sql()
    fold = folding.SessionFold()
    touched: set[str] = set()
    for page in _pages(conn):
        updates = []
        for old in page:
            report.messages += 1
            if old["drift"]:
                report.drift_before[old["drift"]] += 1
            new, message = _reparsed(old, report)
            fold.add(new)
            if new["drift"]:
                report.drift_after[new["drift"]] += 1
            changed = [c for c in DERIVED if new[c] != old[c]]
            if not changed:
                continue
            report.changed += 1
            report.columns.update(changed)
            updates.append({**{c: new[c] for c in DERIVED}, "seq": old["seq"]})
            if "content_json" in changed or "timestamp" in changed:
                touched.update(_stored_tool_ids(old["content_json"]))
                touched.update(c.tool_use_id for c in _tool_halves(message))
        if updates:
            conn.exec_driver_sql(update, updates)
    if touched:
        report.tool_calls_rebuilt, report.tool_calls_changed = _rebuild_tool_calls(conn, touched)
    report.sessions_updated = fold.replace(conn)
    report.projects_updated = folding.refresh_projects(conn)
    return report


def _pages(conn: Connection) -> Iterator[list[dict]]:
    after = 0
    while True:
        page = [dict(r) for r in conn.execute(
            select(_m).where(_m.c.seq > after).order_by(_m.c.seq).limit(PAGE)).mappings()]
        if not page:
            return
        yield page
        after = page[-1]["seq"]


def _reparsed(old: dict, report: Report):
    """The row a fresh import would store for this line (and its protobuf message), or the
    stored row itself when the line no longer parses."""
    position = Position(old["source_path"], old["source_byte_offset"],
                        old["source_line_number"], old["source_byte_length"])
    result = parse_stored(old["raw"], position, old["format"])
    if isinstance(result, Record):
        result.key = old["key"]
        result.session_id = old["session_id"]
        result.project_key = old["project_key"]
        try:
            message = convert.message_to_pb(result)
        except (ValueError, TypeError) as exc:  # as ingest does (wire.batch_to_pb)
            result = LineError(position, "unrepresentable", repr(exc)[:500], b"")
        else:
            row = rows.message_row(message)
            row["seq"] = old["seq"]
            return row, message
    report.unparsable += 1
    if len(report.unparsable_examples) < LISTED:
        report.unparsable_examples.append(Unparsable(
            old["seq"], old["source_path"], old["source_line_number"], result.reason,
            result.detail))
    return old, None


def _update_sql() -> str:
    assignments = ", ".join(f'"{c}" = :{c}' for c in DERIVED)
    return f"UPDATE messages SET {assignments} WHERE seq = :seq"


# --- tool calls ------------------------------------------------------------------------------

def _tool_halves(message) -> list[ToolCall]:
    """The tool-call halves analysis derives from a message (as its normalise() does)."""
    if message is None:
        return []
    out = []
    for b in message.content:
        if b.kind == convert.BLOCK_TO_PB["tool_use"] and b.tool_use_id:
            out.append(normalize.tool_use(b.tool_use_id, message.session_id, b.tool_name,
                                          b.tool_input_json, message.key, message.timestamp))
        elif b.kind == convert.BLOCK_TO_PB["tool_result"] and b.tool_use_id:
            out.append(normalize.tool_result(b.tool_use_id, message.session_id, b.is_error,
                                             message.key, message.timestamp, b.agent_id))
    return out


def _stored_tool_ids(content_json: bytes) -> set[str]:
    return {d["tool_use_id"] for d in _blocks(content_json)
            if d.get("kind") in ("tool_use", "tool_result") and d.get("tool_use_id")}


def _blocks(content_json: bytes) -> list[dict]:
    try:
        blocks = orjson.loads(content_json)
    except orjson.JSONDecodeError:
        return []
    return [d for d in blocks if isinstance(d, dict)] if isinstance(blocks, list) else []


def _rebuild_tool_calls(conn: Connection, ids: set[str]) -> tuple[int, int]:
    """Rebuild the rows of these tool calls from every stored message naming them, applying
    the halves in sequence order as the store did. Returns (rebuilt, changed)."""
    wanted = sorted(ids)
    before = _tool_rows(conn, wanted)
    halves = []
    after = 0
    columns = (_m.c.seq, _m.c.key, _m.c.session_id, _m.c.timestamp, _m.c.content_json)
    while True:
        page = conn.execute(select(*columns).where(_m.c.seq > after).order_by(_m.c.seq)
                            .limit(PAGE * 10)).all()
        if not page:
            break
        after = page[-1].seq
        for m in page:
            if b'"tool_use_id"' not in m.content_json:
                continue
            for d in _blocks(m.content_json):
                tool_use_id = d.get("tool_use_id")
                if tool_use_id not in ids:
                    continue
                kind = d.get("kind")
                if kind == "tool_use":
                    call = normalize.tool_use(
                        tool_use_id, m.session_id, d.get("tool_name", ""),
                        d.get("tool_input_json", "").encode(), m.key, m.timestamp)
                elif kind == "tool_result":
                    call = normalize.tool_result(
                        tool_use_id, m.session_id, d.get("is_error", False), m.key,
                        m.timestamp, d.get("agent_id", ""))
                else:
                    continue
                halves.append(rows.tool_call_row(convert.tool_call_to_pb(call)))
    for i in range(0, len(wanted), 500):
        conn.execute(_t.delete().where(_t.c.tool_use_id.in_(wanted[i:i + 500])))
    if halves:
        upsert_tool_calls(conn, halves)
    now = _tool_rows(conn, wanted)
    changed = sum(before.get(k) != now.get(k) for k in wanted)
    return len(now), changed


def _tool_rows(conn: Connection, ids: list[str]) -> dict[str, dict]:
    out = {}
    for i in range(0, len(ids), 500):
        out.update((r["tool_use_id"], dict(r)) for r in conn.execute(
            select(_t).where(_t.c.tool_use_id.in_(ids[i:i + 500]))).mappings())
    return out
