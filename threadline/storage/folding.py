"""Folding messages into their sessions, and sessions into their projects.

One set of rules for every path that builds these rows: the writer folds each batch's new
messages into the stored rows (`SessionFold.merge`), reparse and schema upgrades fold every
stored message again and replace the rows (`SessionFold.replace`). A project's row is
derived from its sessions' rows (`refresh_projects`); the writer merges the new spans into it
instead, which comes to the same while no session leaves the project.

A session's row, over its messages in sequence order:
- `project_key`: the messages' own (projects.assign gives every message of a session the
  same one);
- `cwd`, `git_branch`, `version`: from the latest record naming them;
- `format`: from the first record;
- `first_timestamp` .. `last_timestamp`: over every record with a timestamp;
- `message_count`: the records counted.
`summary` records are not counted: a summary names another conversation (its title, see
titles.py), so a file holding only summaries is no session.

A project's row: its key, `cwd` (the key itself when its sessions name a working directory;
"" for a project named after a folder), and its sessions' time span.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select, text

from threadline.storage import schema

# Record types that belong to no session of their own.
NOT_SESSION_RECORDS = frozenset({"summary"})


def counts_for_session(row: dict) -> bool:
    return bool(row["session_id"]) and row["type"] not in NOT_SESSION_RECORDS


def _span(agg: dict, ts: str) -> None:
    if ts:
        if agg["first_timestamp"] is None or ts < agg["first_timestamp"]:
            agg["first_timestamp"] = ts
        if agg["last_timestamp"] is None or ts > agg["last_timestamp"]:
            agg["last_timestamp"] = ts


class SessionFold:
    """Session rows folded from message rows, in the order they are added."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict] = {}

    def add(self, row: dict) -> None:
        if not counts_for_session(row):
            return
        sid = row["session_id"]
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = {
                "session_id": sid, "project_key": row["project_key"], "cwd": "",
                "git_branch": "", "version": "", "format": row["format"],
                "first_timestamp": None, "last_timestamp": None, "message_count": 0}
        s["message_count"] += 1
        s["project_key"] = row["project_key"]
        for name in ("cwd", "git_branch", "version"):
            if row[name]:
                s[name] = row[name]
        if not s["format"]:
            s["format"] = row["format"]
        _span(s, row["timestamp"])

    def projects(self) -> set[str]:
        return {s["project_key"] for s in self.sessions.values()}

    def merge(self, conn: Connection) -> None:
        """Merge into the stored rows, sessions and their projects: the writer's fold of new
        messages only. Merging a project's span and cwd gives what `refresh_projects`
        derives as long as no session left the project (the writer refreshes those)."""
        if not self.sessions:
            return
        conn.execute(_MERGE_SESSION, list(self.sessions.values()))
        projects: dict[str, dict] = {}
        for s in self.sessions.values():
            key = s["project_key"]
            if not key:
                continue
            p = projects.get(key)
            if p is None:
                p = projects[key] = {"key": key, "cwd": "", "first_timestamp": None,
                                     "last_timestamp": None}
            if s["cwd"]:
                p["cwd"] = key
            for ts in (s["first_timestamp"], s["last_timestamp"]):
                _span(p, ts or "")
        if projects:
            conn.execute(_MERGE_PROJECT, list(projects.values()))

    def replace(self, conn: Connection) -> int:
        """Make the stored rows exactly these (the fold was over every stored message):
        rows that differ are rewritten, missing ones added, the others (sessions no record
        makes any more) deleted. Returns how many rows changed."""
        s = schema.sessions
        stored = {r["session_id"]: dict(r) for r in conn.execute(select(s)).mappings()}
        changed = 0
        for sid, values in self.sessions.items():
            old = stored.pop(sid, None)
            if old is None:
                conn.execute(s.insert().values(**values))
            elif any(old[k] != v for k, v in values.items()):
                conn.execute(s.update().where(s.c.session_id == sid).values(**values))
            else:
                continue
            changed += 1
        gone = list(stored)
        for i in range(0, len(gone), 500):
            conn.execute(s.delete().where(s.c.session_id.in_(gone[i:i + 500])))
        return changed + len(gone)


# The spans merge NULL-aware with CASE (a comparison with NULL is not true, so a NULL on
# either side keeps the other): SQLite's two-argument min()/max() are LEAST()/GREATEST()
# in PostgreSQL, and CASE reads the same in both.
_MERGE_SESSION = text("""
INSERT INTO sessions (session_id, project_key, cwd, git_branch, version, format,
                      first_timestamp, last_timestamp, message_count)
VALUES (:session_id, :project_key, :cwd, :git_branch, :version, :format,
        :first_timestamp, :last_timestamp, :message_count)
ON CONFLICT (session_id) DO UPDATE SET
  project_key = excluded.project_key,
  cwd = CASE WHEN excluded.cwd != '' THEN excluded.cwd ELSE sessions.cwd END,
  git_branch = CASE WHEN excluded.git_branch != '' THEN excluded.git_branch
                    ELSE sessions.git_branch END,
  version = CASE WHEN excluded.version != '' THEN excluded.version ELSE sessions.version END,
  format = CASE WHEN sessions.format = '' THEN excluded.format ELSE sessions.format END,
  first_timestamp = CASE WHEN sessions.first_timestamp IS NULL
                              OR excluded.first_timestamp < sessions.first_timestamp
                         THEN excluded.first_timestamp ELSE sessions.first_timestamp END,
  last_timestamp = CASE WHEN sessions.last_timestamp IS NULL
                             OR excluded.last_timestamp > sessions.last_timestamp
                        THEN excluded.last_timestamp ELSE sessions.last_timestamp END,
  message_count = sessions.message_count + excluded.message_count
""")


_MERGE_PROJECT = text("""
INSERT INTO projects (key, cwd, first_timestamp, last_timestamp)
VALUES (:key, :cwd, :first_timestamp, :last_timestamp)
ON CONFLICT (key) DO UPDATE SET
  cwd = CASE WHEN excluded.cwd != '' THEN excluded.cwd ELSE projects.cwd END,
  first_timestamp = CASE WHEN projects.first_timestamp IS NULL
                              OR excluded.first_timestamp < projects.first_timestamp
                         THEN excluded.first_timestamp ELSE projects.first_timestamp END,
  last_timestamp = CASE WHEN projects.last_timestamp IS NULL
                             OR excluded.last_timestamp > projects.last_timestamp
                        THEN excluded.last_timestamp ELSE projects.last_timestamp END
""")


def refresh_projects(conn: Connection, keys: Iterable[str] | None = None) -> int:
    """Derive the rows of these projects (every project: None) from their sessions; a
    project no session belongs to any more loses its row. Returns how many rows changed."""
    p, s = schema.projects, schema.sessions
    wanted = None if keys is None else sorted({k for k in keys if k})
    if wanted is not None and not wanted:
        return 0
    derived = (select(s.c.project_key.label("key"),
                      func.max(s.c.cwd).label("cwd"),
                      func.min(s.c.first_timestamp).label("first_timestamp"),
                      func.max(s.c.last_timestamp).label("last_timestamp"))
               .where(s.c.project_key != "").group_by(s.c.project_key))
    current = select(p)
    if wanted is not None:
        derived = derived.where(s.c.project_key.in_(wanted))
        current = current.where(p.c.key.in_(wanted))
    new = {}
    for r in conn.execute(derived).mappings():
        # The key is the working directory itself, when the sessions name one.
        new[r["key"]] = {"key": r["key"], "cwd": r["key"] if r["cwd"] else "",
                         "first_timestamp": r["first_timestamp"],
                         "last_timestamp": r["last_timestamp"]}
    old = {r["key"]: dict(r) for r in conn.execute(current).mappings()}
    changed = [k for k in new.keys() | old.keys() if new.get(k) != old.get(k)]
    if changed:
        conn.execute(p.delete().where(p.c.key.in_(changed)))
        rows = [new[k] for k in changed if k in new]
        if rows:
            conn.execute(p.insert(), rows)
    return len(changed)
