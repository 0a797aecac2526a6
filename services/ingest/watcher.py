"""Following the roots with watchfiles, including roots that do not exist yet.

watchfiles' defaults group changes for 50 ms or more; live latency is the main figure here,
so `debounce`/`step` come from the settings (10 ms / 1 ms reports an append in about 2 ms).
The native watcher runs in a thread and stops when `stop_event` is set; a root that does not
exist yet is checked for every couple of seconds, and the watch restarts once it appears.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles
from watchfiles import Change

from services.ingest.discovery import is_transcript

log = logging.getLogger(__name__)

ROOT_POLL_SECONDS = 2.0
RETRY_SECONDS = 1.0


def _wanted(change: Change, path: str) -> bool:
    # New folders too: files created in them before the native watch covers them are found
    # by scanning the folder.
    return is_transcript(path) or (change == Change.added and os.path.isdir(path))


class Watcher:
    """Calls `on_files` with changed transcript paths, `on_folder` with each new folder or root."""

    def __init__(self, roots: Sequence[Path], debounce_ms: int, step_ms: int,
                 on_files: Callable[[list[str]], None], on_folder: Callable[[Path], None]):
        self.roots = list(roots)
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.on_files = on_files
        self.on_folder = on_folder
        self._stopping = False
        self._restart = asyncio.Event()
        self._announced: set[Path] = set()

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
                    await self._watch(present)
                else:
                    await self._restart.wait()
            except Exception:
                # A root removed under the watcher, inotify limits...: log, wait, start again.
                log.exception("watching %s failed; retrying", present)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                if poll is not None:
                    poll.cancel()

    async def _watch(self, roots: list[Path]) -> None:
        async for changes in watchfiles.awatch(
                *roots, debounce=self.debounce_ms, step=self.step_ms,
                stop_event=self._restart, recursive=True, watch_filter=_wanted):
            files = []
            for _change, path in changes:
                if is_transcript(path):
                    files.append(path)
                else:
                    self.on_folder(Path(path))
            if files:
                self.on_files(files)

    async def _wait_for_roots(self, missing: list[Path]) -> None:
        while True:
            await asyncio.sleep(ROOT_POLL_SECONDS)
            if any(r.exists() for r in missing):
                self._restart.set()
                return
