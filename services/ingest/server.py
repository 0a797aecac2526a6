"""Starting and stopping the ingest service.

Order matters for correctness: the store's durable offsets are loaded (retrying until the
store answers) before any file is read, so a restart resumes where the store left off; the
watcher starts before the first scan, so a file created during the scan is not missed.
With `follow` off (`threadline import`) there is no watcher and no rescan: everything that
exists is read once (unterminated last lines included), and the service reports idle once
all of it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from services.ingest import discovery, parser
from services.ingest.ingestor import Ingestor, Status
from services.ingest.sender import Sender, load_durable_offsets
from services.ingest.servicer import SERVICE_NAME, IngestServicer, registrar
from services.ingest.watcher import Watcher
from threadline import auth, bootstrap, redaction
from threadline.config import Settings

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.05


class Running:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.roots = tuple(Path(os.path.abspath(r)) for r in settings.roots)
        self.ingestor = Ingestor(settings.batch_lines, final=not settings.follow,
                                 max_line_bytes=settings.max_line_bytes,
                                 quiet_seconds=settings.tail_quiet_seconds)
        self.security = auth.for_server(settings)
        self.sender = Sender(settings.analysis_addr, self.ingestor, settings.max_in_flight,
                             on_progress=self._progress, security=self.security)
        self.watcher: Watcher | None = None
        self.service: bootstrap.Service | None = None
        self.port = 0
        # Set once durable offsets are loaded and the first scan is done.
        self.ready = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    # -- public ------------------------------------------------------------------------------

    async def status(self) -> Status:
        return await asyncio.to_thread(self.ingestor.status, [str(r) for r in self.roots],
                                       self.ready)

    async def wait_idle(self) -> None:
        """Return once every file is fully read and every byte acknowledged by the store."""
        while not (self.ready and self.ingestor.idle()):
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), IDLE_POLL_SECONDS)

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.service is not None:
            await self.service.stop()
        # A task may spawn another (the watcher a folder scan) while these end: until none left.
        while tasks := [t for t in self._tasks if not t.done()]:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- background work ---------------------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    def _progress(self) -> None:
        self._changed.set()

    async def _run(self) -> None:
        durable = await load_durable_offsets(self.settings.store_addr, self.security)
        self.ingestor.resume_from(durable)
        log.info("resuming from %d durable offsets", len(durable))
        if self.settings.follow:
            self.watcher = Watcher(self.roots, self.settings.watch_debounce_ms,
                                   self.settings.watch_step_ms, self._on_files, self._on_folder,
                                   self._on_problems)
            self._spawn(self.watcher.run())
        self._spawn(self.sender.run())
        missing = [r for r in self.roots if not r.is_dir()]
        if missing and not self.settings.follow:
            log.warning("transcript roots not found: %s", ", ".join(map(str, missing)))
        await self._scan(None)
        self.ready = True
        self._progress()
        if self.settings.follow:
            self._spawn(self._rescan_forever())
            self._spawn(self._finish_quiet_tails())

    async def _scan(self, under: Path | None, urgent: bool = False) -> None:
        problems: list[discovery.Problem] = []
        found = await asyncio.to_thread(discovery.discover, self.roots, under, problems)
        self._on_problems(problems)
        added = self.ingestor.track(found, urgent=urgent)
        if added:
            log.info("tracking %d new transcript files under %s", added, under or "the roots")
        self.sender.notify()

    async def _rescan_forever(self) -> None:
        # Safety net for events the watcher missed (overflowed queues, network filesystems).
        while True:
            await asyncio.sleep(self.settings.rescan_seconds)
            await self._scan(None)
            self.ingestor.touch_all()
            self.sender.notify()

    async def _finish_quiet_tails(self) -> None:
        # A last line without its newline is read once its file has been quiet for
        # `tail_quiet_seconds` (see the tailer); look at waiting ones a few times that long.
        interval = min(1.0, max(0.01, self.settings.tail_quiet_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            self.ingestor.touch_waiting_tails()
            if self.ingestor.has_work():
                self.sender.notify()

    def _on_files(self, paths: list[str]) -> None:
        problems: list[discovery.Problem] = []
        for path in paths:
            if not self.ingestor.touch(path):
                found = discovery.transcript_at(self.roots, path, problems)
                if found is not None and os.path.isfile(path):
                    self.ingestor.track([found], urgent=True)
        self._on_problems(problems)
        self.sender.notify()

    def _on_problems(self, problems: list[discovery.Problem]) -> None:
        # Logged once here, stored and streamed as parse errors (see wire.problem_error).
        new = self.ingestor.report(problems)
        for problem in new:
            log.warning("not reading %s: %s (%s)", problem.path, problem.detail, problem.reason)
        if new:
            self.sender.notify()

    def _on_folder(self, folder: Path) -> None:
        self._spawn(self._scan(folder, urgent=True))


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ingest task failed", exc_info=task.exception())


def load_redactor(settings: Settings) -> redaction.Redactor:
    """The redaction the parser applies: built-in rules plus the `redact_patterns` file's."""
    path = settings.redact_patterns
    return redaction.from_file_text(path.read_text() if path else None, str(path))


async def start(settings: Settings) -> Running:
    parser.use_redactor(load_redactor(settings))
    running = Running(settings)
    servicer = IngestServicer(running.status)
    running.service = await bootstrap.create_server(
        [registrar(servicer)], [SERVICE_NAME], host=settings.host, port=settings.port,
        security=running.security)
    running.port = running.service.port
    running._spawn(running._run())
    return running
