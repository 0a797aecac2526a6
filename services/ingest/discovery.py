"""Finding transcript files under the configured roots, and naming their project.

A transcript is any `*.jsonl` file below a root, at any depth: Claude Code keeps sessions in
`<root>/<escaped cwd>/<session>.jsonl` and subagents in `<session>/subagents/` (and
`subagents/workflows/wf_<id>/`), Codex in `<root>/YYYY/MM/DD/rollout-*.jsonl`, Gemini CLI in
`<root>/<project hash>/chats/session-*.jsonl` (subagents in `chats/<session>/*.jsonl`). Gemini's
legacy chats are single JSON documents, `chats/session-*.json`: those are transcripts too, read
whole (see the tailer).

A file's format (`source_format`) comes from its path; the parser still recognises every line
on its own and only leans on the file's format where a line alone is ambiguous.

Symbolic links below a root are never followed: one pointing out of the root (a
`leak.jsonl -> ../outside/id_key`) could hand any file the user can read to whoever reads
the transcripts, so it is reported as a `Problem` (`symlink_outside_root`) instead; one
pointing inside the root is skipped, its target being read under its own path (so nothing is
read twice). A root that is itself a link is followed: the user named it. A folder or file
that cannot be read is reported too (`unreadable`), not only logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from threadline.domain.records import CLAUDE_CODE, CODEX, GEMINI

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
DOCUMENT_SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class Transcript:
    path: str
    project_key: str
    format: str
    # A root named as a file itself: opened even if it is a symbolic link.
    is_root: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """A file or folder under a root that is not read, and why (reported, not just logged)."""

    path: str
    reason: str  # "symlink_outside_root" or "unreadable"
    detail: str
    project_key: str = ""


SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"
UNREADABLE = "unreadable"


def within(root: Path, path: str) -> bool:
    """Whether `path`, every link in it resolved, is the root or inside it (resolved too)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _link_problem(root: Path, path: str) -> Problem | None:
    """A link below the root: a problem when it leads out of the root, else None (skipped)."""
    if within(root, path):
        return None
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    project = (folder_project_key if os.path.isdir(path) else project_key)(root, Path(path))
    return Problem(path, SYMLINK_OUTSIDE_ROOT,
                   f"symbolic link to {target}, outside the root {root}: not read", project)


def is_transcript(path: str) -> bool:
    return path.endswith(SUFFIX) or is_document(path)


def is_document(path: str) -> bool:
    """A Gemini CLI legacy chat: `chats/session-*.json`, one JSON document."""
    if not path.endswith(DOCUMENT_SUFFIX):
        return False
    folder, name = os.path.split(path)
    return name.startswith("session-") and os.path.basename(folder) == "chats"


def project_key(root: Path, path: Path) -> str:
    """The first path component under the root (for ~/.claude/projects, the escaped cwd).

    A file directly in a root belongs to a project named after the root's folder; a root that
    is itself a file (`threadline import one.jsonl`) to the folder that holds it.
    """
    if path == root:
        return root.parent.name
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else root.name


def folder_project_key(root: Path, folder: Path) -> str:
    """The project a folder under the root belongs to (a top-level folder is one)."""
    parts = folder.relative_to(root).parts
    return parts[0] if parts else root.name


def source_format(path: str) -> str:
    """The file's format by its path (the parser's hint for lines a line alone cannot place)."""
    folder, name = os.path.split(path)
    if name.startswith("rollout-"):
        return CODEX
    if is_document(path) or (os.path.basename(folder) == "chats" and name.startswith("session-")):
        return GEMINI
    parent = os.path.dirname(folder)
    # Gemini subagent chats: chats/<parent sessionId>/<sessionId>.jsonl
    if os.path.basename(parent) == "chats" and f"{os.sep}.gemini{os.sep}" in path:
        return GEMINI
    return CLAUDE_CODE


def transcript_at(roots: Iterable[Path], path: str,
                  problems: list[Problem] | None = None) -> Transcript | None:
    """The transcript at `path` if it is a transcript file under one of the roots and no link
    leads it out of that root (such a path is added to `problems`)."""
    roots = list(roots)
    candidate = Path(path)
    if not is_transcript(path):
        # A JSON chat document named as a root itself (`threadline import session.json`).
        if not (path.endswith(DOCUMENT_SUFFIX) and candidate in roots):
            return None
    for root in roots:
        if candidate == root and root.is_file():
            return Transcript(path, project_key(root, candidate), source_format(path), True)
        if candidate.is_relative_to(root) and candidate != root:
            if not within(root, path) or os.path.islink(path):
                problem = _link_problem(root, path)
                if problem is not None and problems is not None:
                    problems.append(problem)
                return None
            return Transcript(path, project_key(root, candidate), source_format(path))
    return None


def _walk(root: Path, start: Path, problems: list[Problem]) -> Iterator[str]:
    def on_error(exc: OSError) -> None:
        # Reported (and logged once) by whoever receives the problems; every scan finds it.
        log.debug("cannot list %s: %s", exc.filename, exc.strerror)
        problems.append(Problem(str(exc.filename), UNREADABLE,
                                f"cannot list the folder: {exc.strerror}",
                                folder_project_key(root, Path(exc.filename))))

    for folder, dirs, files in os.walk(start, onerror=on_error):
        dirs.sort()
        for name in dirs:
            path = os.path.join(folder, name)
            # os.walk does not descend into links; one leading out of the root is reported.
            if os.path.islink(path) and (problem := _link_problem(root, path)) is not None:
                problems.append(problem)
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                if (problem := _link_problem(root, path)) is not None:
                    problems.append(problem)
                continue
            if is_transcript(path):
                yield path


def discover(roots: Iterable[Path], under: Path | None = None,
             problems: list[Problem] | None = None) -> list[Transcript]:
    """Every transcript under the roots (or only under `under`, a folder inside one of them).

    What is found but not read (links out of a root, unreadable folders) is added to
    `problems` when given."""
    roots = list(roots)
    problems = [] if problems is None else problems
    found: dict[str, Transcript] = {}
    for root in roots:
        start = root
        if under is not None:
            if not under.is_relative_to(root):
                continue
            start = under
        if start != root and (os.path.islink(start) or not within(root, str(start))):
            if (problem := _link_problem(root, str(start))) is not None:
                problems.append(problem)
            continue
        if start.is_file() and (is_transcript(str(start)) or start.suffix == DOCUMENT_SUFFIX):
            found.setdefault(str(start), Transcript(str(start), project_key(root, start),
                                                    source_format(str(start)), start == root))
            continue
        if not start.is_dir():
            continue
        for path in _walk(root, start, problems):
            if path not in found and os.path.isfile(path):
                found[path] = Transcript(path, project_key(root, Path(path)), source_format(path))
    return list(found.values())
