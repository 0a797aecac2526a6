"""Following the roots with watchfiles, including roots that do not exist yet.

watchfiles' defaults group changes for 50 ms or more; live latency is the main figure here,
so `debounce`/`step` come from the settings (10 ms / 1 ms reports an append in about 2 ms).
The native watcher runs in a thread and stops when `stop_event` is set; a root that does not
exist yet is checked for every couple of seconds, and the watch restarts once it appears.

One folder the watcher may not read anywhere under a root makes watchfiles' recursive watch
fail as a whole (its notify backend adds a watch per folder and gives up on the first
`PermissionError`; samuelcolvin/watchfiles#147). Rather than retrying that forever, the watch
then goes around such folders (`plan_watches`): the folders on the way to one are watched
each on its own, every other folder below them recursively, and the unreadable ones are
reported as problems. A folder created next to an unreadable one, or a change of an
unreadable one's permissions, rebuilds that plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles
from watchfiles import Change

from services.ingest.discovery import UNREADABLE, Problem, folder_project_key, is_transcript

log = logging.getLogger(__name__)

ROOT_POLL_SECONDS = 2.0
RETRY_SECONDS = 1.0


def _wanted(change: Change, path: str) -> bool:
    # New folders too: files created in them before the native watch covers them are found
    # by scanning the folder.
    return is_transcript(path) or (change == Change.added and os.path.isdir(path))


@dataclass(slots=True)
class WatchPlan:
    """How to watch roots holding folders the watcher cannot read (see the module docstring)."""

    recursive: list[Path] = field(default_factory=list)
    # Watched alone (their entries, not below): a folder with an unreadable one below it.
    single: list[Path] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)


def plan_watches(roots: Sequence[Path]) -> WatchPlan:
    """Walk the roots for folders that cannot be read; watch everything else."""
    plan = WatchPlan()
    blocked: set[str] = set()
    for root in roots:
        if not root.is_dir():
            plan.recursive.append(root)
            continue
        found: list[tuple[str, str]] = []

        def on_error(exc: OSError) -> None:
            found.append((str(exc.filename), exc.strerror or str(exc)))  # noqa: B023

        for folder, dirs, _files in os.walk(root, onerror=on_error):
            for name in dirs:
                # notify follows links to folders; os.walk does not: check those here.
                path = os.path.join(folder, name)
                if os.path.islink(path) and os.path.isdir(path) and not os.access(path, os.R_OK):
                    found.append((path, "permission denied"))
        if not found:
            plan.recursive.append(root)
            continue
        unreadable = {path for path, _ in found}
        for path, reason in found:
            plan.unreadable.append(Problem(path, UNREADABLE,
                                           f"cannot list or watch the folder: {reason}",
                                           folder_project_key(root, Path(path))))
            parent = Path(path).parent
            while parent.is_relative_to(root):
                blocked.add(str(parent))
                if parent == root:
                    break
                parent = parent.parent
        for folder in sorted(b for b in blocked if Path(b).is_relative_to(root)):
            plan.single.append(Path(folder))
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if (entry.is_dir() and entry.path not in blocked
                        and entry.path not in unreadable):
                    plan.recursive.append(Path(entry.path))
    return plan


class Watcher:
    """Calls `on_files` with changed transcript paths, `on_folder` with each new folder or root,
    `on_problems` with folders it cannot watch."""

    def __init__(self, roots: Sequence[Path], debounce_ms: int, step_ms: int,
                 on_files: Callable[[list[str]], None], on_folder: Callable[[Path], None],
                 on_problems: Callable[[list[Problem]], None] = lambda _problems: None):
        self.roots = list(roots)
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.on_files = on_files
        self.on_folder = on_folder
        self.on_problems = on_problems
        self._stopping = False
        self._restart = asyncio.Event()
        self._announced: set[Path] = set()
        self._refused = ""

    def stop(self) -> None:
        self._stopping = True
        self._restart.set()

    async def run(self) -> None:
        watched: set[Path] = set()
        first = True
        while not self._stopping:
            self._restart = asyncio.Event()
            # A root may be a folder or a single transcript file; both can be watched.
            present = [r for r in self.roots if r.exists()]
            missing = [r for r in self.roots if r not in present]
            for root in missing:
                if root not in self._announced:
                    self._announced.add(root)
                    log.info("transcript root %s does not exist (yet); checking every %.0f s",
                             root, ROOT_POLL_SECONDS)
            if not first:
                for root in present:
                    if root not in watched:
                        log.info("transcript root %s appeared", root)
                        self.on_folder(root)
            first = False
            watched = set(present)
            poll = asyncio.create_task(self._wait_for_roots(missing)) if missing else None
            try:
                if present:
                    try:
                        await self._watch(present)
                    except PermissionError as exc:
                        # Said once per cause: each new folder beside it plans again.
                        level = logging.DEBUG if str(exc) == self._refused else logging.WARNING
                        self._refused = str(exc)
                        log.log(level, "cannot watch every folder under %s (%s); watching "
                                "around the unreadable ones", ", ".join(map(str, present)), exc)
                        await self._watch_around(present)
                else:
                    await self._restart.wait()
            except Exception:
                # A root removed under the watcher, inotify limits...: log, wait, start again.
                log.exception("watching %s failed; retrying", present)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                if poll is not None:
                    poll.cancel()

    async def _watch(self, roots: list[Path], recursive: bool = True,
                     replan: frozenset[str] = frozenset()) -> None:
        def wanted(change: Change, path: str) -> bool:
            return _wanted(change, path) or path in replan

        async for changes in watchfiles.awatch(
                *roots, debounce=self.debounce_ms, step=self.step_ms,
                stop_event=self._restart, recursive=recursive,
                watch_filter=wanted if replan else _wanted):
            files = []
            for _change, path in changes:
                if is_transcript(path):
                    files.append(path)
                else:
                    self.on_folder(Path(path))
                    if not recursive:
                        # A new folder beside an unreadable one, or an unreadable one whose
                        # permissions changed: plan the watches again.
                        self._restart.set()
            if files:
                self.on_files(files)

    async def _watch_around(self, roots: list[Path]) -> None:
        """Watch the roots around the folders that cannot be read (see the module docstring)."""
        plan = await asyncio.to_thread(plan_watches, roots)
        self.on_problems(plan.unreadable)
        # Changes made while the recursive watch failed: look at everything once.
        for root in roots:
            self.on_folder(root)
        replan = frozenset(p.path for p in plan.unreadable)
        stop = self._restart
        watches = [self._watch(plan.recursive)] if plan.recursive else []
        if plan.single:
            watches.append(self._watch(plan.single, recursive=False, replan=replan))
        if not watches:  # nothing readable (a root itself is not): look again in a while
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ROOT_POLL_SECONDS)
            return
        tasks = [asyncio.ensure_future(w) for w in watches]
        try:
            await asyncio.gather(*tasks)
        finally:
            stop.set()  # one failed (or we are stopping): end the other one too
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_for_roots(self, missing: list[Path]) -> None:
        while True:
            await asyncio.sleep(ROOT_POLL_SECONDS)
            if any(r.exists() for r in missing):
                self._restart.set()
                return
