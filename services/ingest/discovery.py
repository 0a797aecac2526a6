"""Finding transcript files under the configured roots, and naming their project.

A transcript is any `*.jsonl` file below a root, at any depth: Claude Code keeps sessions in
`<root>/<escaped cwd>/<session>.jsonl` and subagents in `<session>/subagents/` (and
`subagents/workflows/wf_<id>/`), Codex in `<root>/YYYY/MM/DD/rollout-*.jsonl`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from threadline.records import CLAUDE_CODE, CODEX

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Transcript:
    path: str
    project_key: str
    format: str


def is_transcript(path: str) -> bool:
    return path.endswith(SUFFIX)


def project_key(root: Path, path: Path) -> str:
    """The first path component under the root (for ~/.claude/projects, the escaped cwd).

    A file directly in a root belongs to a project named after the root's folder; a root that
    is itself a file (`threadline import one.jsonl`) to the folder that holds it.
    """
    if path == root:
        return root.parent.name
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else root.name


def source_format(path: str) -> str:
    # Every line is recognised on its own by the parser; this only labels the file.
    return CODEX if os.path.basename(path).startswith("rollout-") else CLAUDE_CODE


def transcript_at(roots: Iterable[Path], path: str) -> Transcript | None:
    """The transcript at `path` if it is a `*.jsonl` file under one of the roots."""
    if not is_transcript(path):
        return None
    candidate = Path(path)
    for root in roots:
        if candidate.is_relative_to(root) and (candidate != root or root.is_file()):
            return Transcript(path, project_key(root, candidate), source_format(path))
    return None


def _walk(root: Path) -> Iterator[str]:
    def on_error(exc: OSError) -> None:
        log.warning("cannot list %s: %s", exc.filename, exc.strerror)

    for folder, dirs, files in os.walk(root, onerror=on_error):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(SUFFIX):
                yield os.path.join(folder, name)


def discover(roots: Iterable[Path], under: Path | None = None) -> list[Transcript]:
    """Every transcript under the roots (or only under `under`, a folder inside one of them)."""
    roots = list(roots)
    found: dict[str, Transcript] = {}
    for root in roots:
        start = root
        if under is not None:
            if not under.is_relative_to(root):
                continue
            start = under
        if start.is_file() and is_transcript(str(start)):
            found.setdefault(str(start), Transcript(str(start), project_key(root, start),
                                                    source_format(str(start))))
            continue
        if not start.is_dir():
            continue
        for path in _walk(start):
            if path not in found and os.path.isfile(path):
                found[path] = Transcript(path, project_key(root, Path(path)), source_format(path))
    return list(found.values())
