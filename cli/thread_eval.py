"""`threadline eval threading PATH...`: how well threadline rebuilds Claude Code's reply tree.

Every Claude Code `*.jsonl` transcript under the PATHs is copied with its parent links removed
(`parentUuid`, `logicalParentUuid`, `isSidechain`, `agentId` deleted from each JSON line;
every other line kept as it is, so line numbers stay), the copies are imported into a fresh
database with `threadline import` (the real pipeline: ingest, analysis, store), and each
stored record of type user, assistant, system, progress or attachment is scored: is its
`thread_parent_uuid` the `parentUuid` that was removed? A root (`parentUuid` null) counts as
correct when its stored thread parent is empty too, and as a miss when threadline gave it a
parent; `roots` and `roots ok` say how many roots there are and how many came out right.
A line that carries no link field at all (none of the four above) has no truth and is not
scored.

A parent that is not in the file at all (a truncated history) cannot be inferred and counts
as a miss; `unreachable` says how many there are. A record whose uuid was already stored from
another file (a resumed session replays history) is stored once, from whichever file was read
first, and scored there. Figures per folder (the first path component under each PATH) and
overall.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import select

from cli.db import reading
from threadline.storage import schema

REMOVED = ("parentUuid", "logicalParentUuid", "isSidechain", "agentId")
SCORED_TYPES = frozenset({"user", "assistant", "system", "progress", "attachment"})


@dataclass
class Truth:
    folder: str
    parent: str  # the removed parentUuid, "" for null
    reachable: bool  # the parent is a record of the same file (or there is none)


@dataclass
class FolderScore:
    total: int = 0
    correct: int = 0
    unreachable: int = 0
    roots: int = 0  # records whose removed parentUuid was null
    roots_correct: int = 0  # ... that were stored with no thread parent either

    def add(self, other: FolderScore) -> None:
        self.total += other.total
        self.correct += other.correct
        self.unreachable += other.unreachable
        self.roots += other.roots
        self.roots_correct += other.roots_correct

    @property
    def percent(self) -> float:
        return round(100.0 * self.correct / self.total, 2) if self.total else 0.0

    def as_dict(self) -> dict:
        return {"total": self.total, "correct": self.correct, "unreachable": self.unreachable,
                "roots": self.roots, "roots_correct": self.roots_correct,
                "percent": self.percent}


def _transcripts(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, its path relative to the copy root) for each .jsonl under root (or root itself)."""
    if root.is_file():
        yield root, root.name
        return
    for path in sorted(root.rglob("*.jsonl")):
        yield path, f"{root.name}/{path.relative_to(root).as_posix()}"


def strip_links(paths: Iterable[Path], dest: Path) -> dict[tuple[str, int], Truth]:
    """Copy the transcripts without parent links into `dest`; the truth per (path, line)."""
    truth: dict[tuple[str, int], Truth] = {}
    for root in paths:
        for source, relative in _transcripts(root):
            parts = relative.split("/")
            folder = parts[1] if len(parts) > 2 else parts[0]
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            lines = source.read_bytes().split(b"\n")
            parents: dict[int, str] = {}
            uuids: set[str] = set()
            out = []
            for number, line in enumerate(lines, 1):
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    out.append(line)
                    continue
                if not isinstance(obj, dict) or not any(k in obj for k in REMOVED):
                    out.append(line)
                    continue
                parent = obj.get("parentUuid")
                parents[number] = parent if isinstance(parent, str) else ""
                if isinstance(obj.get("uuid"), str):
                    uuids.add(obj["uuid"])
                for name in REMOVED:
                    obj.pop(name, None)
                out.append(orjson.dumps(obj))
            target.write_bytes(b"\n".join(out))
            stored_path = str(target.resolve())
            for number, parent in parents.items():
                truth[(stored_path, number)] = Truth(folder, parent,
                                                     not parent or parent in uuids)
    return truth


def import_copies(folder: Path, db: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "import", "--db", str(db), "--json", str(folder)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"threadline import failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def score(db: Path, truth: dict[tuple[str, int], Truth]) -> dict[str, FolderScore]:
    m = schema.messages
    folders: dict[str, FolderScore] = {}
    with reading(db) as conn:
        rows = conn.execute(select(m.c.source_path, m.c.source_line_number, m.c.type,
                                   m.c.format, m.c.thread_parent_uuid))
        for path, line, kind, fmt, parent in rows:
            if kind not in SCORED_TYPES or fmt != "claude_code":
                continue
            t = truth.get((path, line))
            if t is None:
                continue
            s = folders.setdefault(t.folder, FolderScore())
            s.total += 1
            s.correct += parent == t.parent  # a root: both empty
            s.unreachable += not t.reachable
            if not t.parent:
                s.roots += 1
                s.roots_correct += not parent
    overall = FolderScore()
    for s in folders.values():
        overall.add(s)
    return {**dict(sorted(folders.items())), "overall": overall}


def evaluate(paths: list[Path]) -> dict[str, FolderScore]:
    with tempfile.TemporaryDirectory(prefix="threadline-thread-eval-") as tmp:
        copies = Path(tmp) / "stripped"
        truth = strip_links(paths, copies)
        if not truth:
            return {"overall": FolderScore()}
        import_copies(copies, Path(tmp) / "eval.db")
        return score(Path(tmp) / "eval.db", truth)


def table(scores: dict[str, FolderScore]) -> str:
    width = max(len(k) for k in scores)
    lines = ["  (a root counts as correct when both the removed parentUuid and the stored thread "
             "parent are empty)",
             f"  {'folder'.ljust(width)}  {'records':>8}  {'unreach':>7}  {'roots':>6}  "
             f"{'roots ok':>8}  {'correct':>8}  {'percent':>7}"]
    for name, s in scores.items():
        lines.append(f"  {name.ljust(width)}  {s.total:>8}  {s.unreachable:>7}  {s.roots:>6}  "
                     f"{s.roots_correct:>8}  {s.correct:>8}  {s.percent:>6.2f}%")
    return "\n".join(lines)


def as_json(scores: dict[str, FolderScore]) -> dict:
    return {name: s.as_dict() for name, s in scores.items()}
