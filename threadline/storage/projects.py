"""Which project each stored record belongs to.

A project is the working directory the assistant ran in: a session's project is the `cwd`
of its first record that names one (Claude Code's launch directory, which its project
folder's name escapes; Codex's `session_meta` cwd). Every record of a session belongs to
the session's project, so a Claude Code subagent file (`<session>/subagents/agent-*.jsonl`,
records of the parent session) belongs to its parent's project, and a Codex rollout to its
own working directory, not to the date folders it is filed under.

Ingest names each file's project by its folder: the first folder under the root it was
found in (`project_key` on what it sends; also part of the storage key of a line without
uuid, see normalize.message_key, so it stays as it is). Here that name is:
- the fallback for sessions whose records name no working directory (Gemini CLI chats): the
  project stays named after its folder (the project hash);
- an alias of the project (`project_aliases`): wherever a project is given
  (names.resolve_project) the old key still works, e.g. `-home-alice-code-app`;
- the project of records outside any session (summary-only files, parse errors), through
  that alias when it names exactly one project at the time they are written (a label for
  filters, nothing is counted by it).

A session whose first records name no cwd (a file that starts with snapshots, or a batch
cut before the first record that does) is filed under the fallback until a record names
one; then its stored records, changes and analysis summary are moved to the project that
cwd names (`relabel`), and the projects both sides are derived again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, text

from threadline.storage import dialect, schema
from threadline.storage.folding import NOT_SESSION_RECORDS


def key_of_cwd(cwd: str) -> str:
    """The project key of a working directory: the path, without trailing separators."""
    stripped = cwd.rstrip("/\\")
    if not stripped or stripped.endswith(":"):  # "/" or a Windows drive root "C:\"
        return cwd
    return stripped


class Aliases:
    """What the folder names ingest gives stand for, read once per transaction."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._unique: dict[str, str] = {}

    def project_of(self, folder_key: str) -> str:
        """The project a folder name stands for: the one project it is an alias of, else
        itself (an unknown folder, or one holding several projects)."""
        if not folder_key:
            return folder_key
        found = self._unique.get(folder_key)
        if found is None:
            named = [r[0] for r in self._conn.execute(_ALIAS_OF, {"alias": folder_key})]
            found = self._unique[folder_key] = named[0] if len(named) == 1 else folder_key
        return found


def assign(conn: Connection, rows: list[dict], errors: Iterable[dict] = ()) -> set[str]:
    """Give each new message row (and parse error row) its project, in place, recording the
    folder names as aliases. Returns the projects that sessions moved away from (their
    rows must be derived again, see folding.refresh_projects)."""
    aliases = Aliases(conn)
    by_session: dict[str, list[dict]] = {}
    for row in rows:
        if row["session_id"]:
            by_session.setdefault(row["session_id"], []).append(row)
        else:
            row["project_key"] = aliases.project_of(row["project_key"])
    for row in errors:
        row["project_key"] = aliases.project_of(row["project_key"])
    if not by_session:
        return set()
    # Plain SQL, one parameter holding the list: this runs for every batch written.
    where, params = dialect.any_of(conn, "session_id", list(by_session), "sessions")
    stored = {sid: (project, cwd) for sid, project, cwd in conn.execute(
        text(f"SELECT session_id, project_key, cwd FROM sessions WHERE {where}"), params)}
    moved_from: set[str] = set()
    new_aliases: set[tuple[str, str]] = set()
    for sid, session_rows in by_session.items():
        old_project, old_cwd = stored.get(sid, ("", ""))
        from_cwd = bool(old_cwd)
        if from_cwd:
            project = old_project
        else:
            cwd = next((r["cwd"] for r in session_rows
                        if r["cwd"] and r["type"] not in NOT_SESSION_RECORDS), "")
            from_cwd = bool(cwd)
            if cwd:
                project = key_of_cwd(cwd)
            elif old_project:
                project = old_project
            elif any(r["type"] not in NOT_SESSION_RECORDS for r in session_rows):
                project = session_rows[0]["project_key"]  # its folder's name, until a cwd
            else:  # summary lines only: no session of their own
                project = aliases.project_of(session_rows[0]["project_key"])
        if old_project and old_project != project:
            relabel(conn, sid, project)
            moved_from.add(old_project)
        folders = set()
        for row in session_rows:
            folders.add(row["project_key"])
            row["project_key"] = project
        if from_cwd:
            new_aliases.update((f, project) for f in folders if f and f != project)
    if new_aliases:
        conn.execute(_ADD_ALIAS, [{"alias": a, "project_key": p} for a, p in new_aliases])
    return moved_from


_ADD_ALIAS = text("INSERT INTO project_aliases (alias, project_key) "
                  "VALUES (:alias, :project_key) ON CONFLICT DO NOTHING")
_ALIAS_OF = text("SELECT project_key FROM project_aliases WHERE alias = :alias LIMIT 2")


def relabel(conn: Connection, session_id: str, project: str) -> None:
    """Move a session's stored records, changes and analysis summary to `project`."""
    params = {"project": project, "session": session_id}
    conn.execute(text("UPDATE messages SET project_key = :project "
                      "WHERE session_id = :session AND project_key != :project"), params)
    conn.execute(text("UPDATE changes SET project_key = :project "
                      "WHERE session_id = :session AND project_key != :project"), params)
    conn.execute(text("UPDATE session_summaries SET project_key = :project "
                      "WHERE session_id = :session AND project_key != :project"), params)


def of_sessions(conn: Connection, session_ids: Iterable[str]) -> dict[str, str]:
    """The stored project of each of these sessions that is stored."""
    s = schema.sessions
    wanted = list(set(session_ids))
    out: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        out.update((r.session_id, r.project_key) for r in conn.execute(
            select(s.c.session_id, s.c.project_key).where(
                s.c.session_id.in_(wanted[i:i + 500]))))
    return out


def name_analysis(conn: Connection, updates: list[dict]) -> None:
    """Give each analysis update (writes.write_analysis's rows) its session's project, in
    place: analysis learnt the project from records sent before it was decided."""
    known = of_sessions(conn, (u["session_id"] for u in updates))
    aliases = Aliases(conn)
    for u in updates:
        project = known.get(u["session_id"]) or aliases.project_of(u["project_key"])
        u["project_key"] = project
        if u["summary"] is not None:
            u["summary"]["project_key"] = project
